"""A pair of aiortc peer connections talking over a data channel, the server one on the
shared port (`sfu.rtc.udpmux`), and a STUN binding request made by hand, for the tests of
single-port mode and ICE-lite."""

from __future__ import annotations

import asyncio

import aioice.stun
from aiortc import RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

from sfu.rtc.ice import nominated_datagram_transport, share_port
from tests.sfu.rtc.introspect import LOOPBACK_ONLY


class Pair:
    """An aiortc client (its own socket) and a server peer on the shared port, talking over a
    data channel."""

    def __init__(self) -> None:
        self.client = RTCPeerConnection(LOOPBACK_ONLY)
        self.server = RTCPeerConnection(LOOPBACK_ONLY)
        self.to_server: asyncio.Queue[str] = asyncio.Queue()
        self.client.addTransceiver("audio")  # an ICE restart needs a bundled media transport
        self.channel = self.client.createDataChannel("probe")

        @self.server.on("datachannel")
        def _channel(channel: object) -> None:
            channel.on("message", self.to_server.put_nowait)  # type: ignore[attr-defined]

    async def connect(self) -> None:
        await self.client.setLocalDescription(await self.client.createOffer())
        await self.server.setRemoteDescription(self.client.localDescription)
        share_port(self.server)
        await self.server.setLocalDescription(await self.server.createAnswer())
        await self.client.setRemoteDescription(self.server.localDescription)
        opened = asyncio.Event()
        self.channel.on("open", opened.set)
        await asyncio.wait_for(opened.wait(), 10)

    async def roundtrip(self, text: str) -> None:
        self.channel.send(text)
        assert await asyncio.wait_for(self.to_server.get(), 10) == text

    def server_candidate_ports(self) -> set[int]:
        sdp = self.server.localDescription.sdp
        return {
            candidate_from_sdp(line[len("a=candidate:") :]).port
            for line in sdp.splitlines()
            if line.startswith("a=candidate:")
        }

    def server_ufrag(self) -> str:
        (ufrag,) = {
            line.split(":", 1)[1]
            for line in self.server.localDescription.sdp.splitlines()
            if line.startswith("a=ice-ufrag:")
        }
        return ufrag

    def client_address(self) -> tuple[str, int]:
        dtls = self.client.sctp.transport
        selected = nominated_datagram_transport(dtls)
        assert selected is not None
        return selected[0].get_extra_info("sockname")[:2]

    async def close(self) -> None:
        await self.client.close()
        await self.server.close()


def binding_request(username: str, password: str) -> bytes:
    """A STUN binding request as an ICE peer sends it, signed with `password`."""
    request = aioice.stun.Message(
        message_method=aioice.stun.Method.BINDING, message_class=aioice.stun.Class.REQUEST
    )
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(password.encode())
    return bytes(request)
