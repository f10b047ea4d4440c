"""ICE-lite on the shared port (`sfu.rtc.icelite`): the server peer says `a=ice-lite`, sends no
checks of its own, takes the pair the aiortc client nominates, and keeps consent by the
client's checks alone; and the aioice/aiortc internals it relies on, asserted one by one."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aioice
import aioice.ice
import aioice.stun
import aiortc
import aiortc.rtcpeerconnection
import aiortc.sdp
import pytest

import sfu.rtc.icelite as icelite
from sfu.rtc.ice import close_shared_port, open_shared_port, use_host_addresses
from sfu.rtc.icelite import is_lite
from sfu.rtc.udpmux import SharedPortProtocol, SharedUdpPort
from tests.sfu.rtc.introspect import parameters, source_of
from tests.sfu.rtc.shared_pairs import Pair


def test_icelite_hooks_exist() -> None:
    # aiortc: a gatherer's parameters say ice-lite, written as a session attribute; a peer
    # that reads it in an answer stays controlling and does not nominate aggressively
    assert "iceLite" in aiortc.RTCIceParameters.__dataclass_fields__
    assert "media.ice = iceGatherer.getLocalParameters()" in source_of(
        aiortc.rtcpeerconnection.add_transport_description
    )
    assert 'lines += ["a=ice-lite"]' in source_of(aiortc.sdp.SessionDescription.__str__)
    assert "self._connection.remote_is_lite = remoteParameters.iceLite" in source_of(
        aiortc.RTCIceTransport.start
    )
    assert "await self._connection.connect()" in source_of(aiortc.RTCIceTransport.start)
    assert "nominate = self.ice_controlling and not self.remote_is_lite" in source_of(
        aioice.Connection.check_start
    )
    assert "iceTransport._connection.ice_controlling = media.ice.iceLite" in source_of(
        aiortc.RTCPeerConnection.setRemoteDescription
    )
    # aioice: what the lite connect() and check_incoming() stand in for
    received = source_of(aioice.Connection.request_received)
    assert "message.check_message_integrity(self.local_password" in received
    assert "protocol.send_stun(response, addr)" in received
    assert "self._early_checks.append((message, addr, protocol))" in received
    assert "self.check_incoming(message, addr, protocol)" in received
    assert parameters(aioice.Connection.check_incoming) == ["message", "addr", "protocol"]
    assert parameters(aioice.Connection._find_pair) == ["protocol", "remote_candidate"]
    assert parameters(aioice.Connection.add_remote_candidate) == ["remote_candidate"]
    assert "if not self._check_list_done:" in source_of(aioice.Connection.close)
    assert "self._check_list_state.put_nowait(ICE_FAILED)" in source_of(aioice.Connection.close)
    assert "self._query_consent_task.cancel()" in source_of(aioice.Connection.close)
    assert "if not self._local_candidates_end:" in source_of(aioice.Connection.connect)
    assert (aioice.ice.ICE_COMPLETED, aioice.ice.ICE_FAILED) == (1, 2)
    assert aioice.ice.CandidatePair.State.SUCCEEDED.name == "SUCCEEDED"
    assert "self._network_host = host" in source_of(aioice.Candidate.__init__)


@pytest.fixture
async def lite_port() -> AsyncIterator[SharedUdpPort]:
    use_host_addresses(["127.0.0.1"])
    port = await open_shared_port("127.0.0.1", 0, ice_lite=True)
    yield port
    close_shared_port()
    use_host_addresses(None)


def count_requests(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """STUN requests the shared port's connections send (their checks), recorded."""
    sent: list[object] = []
    stock = SharedPortProtocol.request

    async def request(self: SharedPortProtocol, *args: object, **kwargs: object) -> object:
        sent.append(args[0])
        return await stock(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SharedPortProtocol, "request", request)
    return sent


def ice_connection(pc: aiortc.RTCPeerConnection) -> aioice.Connection:
    return pc.sctp.transport.transport._connection


@pytest.mark.integration
async def test_icelite_answers_checks_sends_none_and_takes_the_nomination(
    lite_port: SharedUdpPort, pairs: list[Pair], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = count_requests(monkeypatch)
    pairs.append(Pair())
    pair = pairs[0]
    await pair.connect()
    await pair.roundtrip("over the nominated pair")
    assert "a=ice-lite" in pair.server.localDescription.sdp.splitlines()
    server, client = ice_connection(pair.server), ice_connection(pair.client)
    assert is_lite(server) and not is_lite(client)
    # the client read it: controlling, nominating by regular nomination
    assert client.remote_is_lite and client.ice_controlling and not server.ice_controlling
    assert sent == []  # not one check from the lite side
    (selected,) = server._nominated.values()
    assert selected.nominated and selected.remote_candidate.type == "prflx"
    assert selected.remote_addr == client._nominated[1].local_addr


@pytest.mark.integration
async def test_icelite_keeps_consent_by_the_peer_s_checks_and_drops_a_silent_peer(
    lite_port: SharedUdpPort, pairs: list[Pair], monkeypatch: pytest.MonkeyPatch
) -> None:
    # consent window 0.6 s; the client checks every 0.16-0.24 s (aioice reads these each round)
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.2)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 3)
    monkeypatch.setattr(icelite, "LITE_CONSENT_MIN_S", 0.6)
    pairs.append(Pair())
    pair = pairs[0]
    await pair.connect()
    server, client = ice_connection(pair.server), ice_connection(pair.client)
    await asyncio.sleep(2.0)  # more than three windows: the client's checks kept it
    assert pair.server.connectionState == "connected"
    await pair.roundtrip("still consented")
    # the client goes silent (no more checks): the server closes within a window or so
    assert client._query_consent_task is not None
    client._query_consent_task.cancel()
    silent_at = asyncio.get_running_loop().time()
    while server._nominated and asyncio.get_running_loop().time() - silent_at < 5:
        await asyncio.sleep(0.05)
    gone_after = asyncio.get_running_loop().time() - silent_at
    assert not server._nominated, "the silent peer kept its consent"
    assert 0.4 <= gone_after <= 2.0, gone_after


async def test_icelite_consent_window_has_a_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 1.0)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 3)
    # shorter than peers' own check interval: the floor keeps live peers
    assert icelite.consent_window_s() == icelite.LITE_CONSENT_MIN_S
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 5.0)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 6)
    assert icelite.consent_window_s() == 30.0


@pytest.mark.integration
async def test_icelite_moves_to_a_pair_the_peer_nominates_later(
    lite_port: SharedUdpPort, pairs: list[Pair]
) -> None:
    """A nomination from another address of the peer (its network changed) selects that pair,
    and the DTLS transport is told, so the SFU's own sends bind to it."""
    pairs.append(Pair())
    pair = pairs[0]
    await pair.connect()
    server = ice_connection(pair.server)
    client = ice_connection(pair.client)
    told: list[str] = []
    pair.server.sctp.transport.on("statechange", lambda: told.append("statechange"))
    request = aioice.stun.Message(
        message_method=aioice.stun.Method.BINDING, message_class=aioice.stun.Class.REQUEST
    )
    request.attributes["USERNAME"] = f"{server.local_username}:{client.local_username}"
    request.attributes["PRIORITY"] = 1
    request.attributes["ICE-CONTROLLING"] = 1
    request.attributes["USE-CANDIDATE"] = None
    request.add_message_integrity(server.local_password.encode())
    moved = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        moved.bind(("127.0.0.1", 0))
        moved.settimeout(2)
        moved.sendto(bytes(request), lite_port.sockname)
        answer = aioice.stun.parse_message(await asyncio.to_thread(moved.recv, 2048))
        new_address = moved.getsockname()
    finally:
        moved.close()
    assert answer.message_class == aioice.stun.Class.RESPONSE
    assert server._nominated[1].remote_addr == new_address
    assert told == ["statechange"]
