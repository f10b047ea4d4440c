"""Pipes between workers: one room served by several workers (the idea of mediasoup's
`pipeToRouter`).

The worker that holds a room's publishers (the origin) sends every source of the room, as it
forwards it to a viewer, over plain RTP on loopback or a private network to each worker that
extends the room (an edge); no DTLS or SRTP, nothing decoded. The edge feeds each stream into a
`Source` of its own room, so its viewers' slots switch among them exactly as at the origin; the
floor is the origin's, mirrored. Keyframe requests travel back up the pipe as RTCP PLI.

- `PipeOut` (origin): one UDP socket, one `Slot` per origin source, each with a `PipeEgress`
  that sends plain RTP to the edge under its own SSRC; PLI from the edge reach the source.
- `PipeIn` (edge): one UDP socket; RTP is parsed (header extensions at fixed ids) and pushed
  into the `Source` registered for its SSRC; `Source.request_keyframe` sends PLI back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable, Iterable
from typing import Literal

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    HeaderExtensionsMap,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtpPacket,
)
from pydantic import AwareDatetime, BaseModel, Field

from confbridge_kernel.contracts import FloorState
from sfu.codecs import EXT_ABS_SEND_TIME, EXT_AUDIO_LEVEL, RtpCodec
from sfu.forwarding import Slot, Source
from sfu.rtc.egress import EgressStats
from sfu.rtc.sdp import NegotiatedRtp

log = logging.getLogger(__name__)

PIPE_EXTENSIONS = {EXT_AUDIO_LEVEL: 1, EXT_ABS_SEND_TIME: 2}
"""Header extension ids on a pipe: both ends use these, nothing is negotiated."""
PIPE_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
"""Pipes carry every source of a room in one socket: room for bursts (keyframes)."""
PIPE_REQUEST_TIMEOUT_S = 5.0
_RTCP_PACKET_TYPES = range(192, 224)  # RFC 5761 §4: RTP and RTCP on one port


def extend_path(room: str) -> str:
    """Control plane → edge: serve the room for its origin."""
    return f"/rooms/{room}/pipe"


def pipe_out_path(room: str) -> str:
    """Edge → origin: open a pipe to me."""
    return f"/rooms/{room}/pipe-out"


def pipe_state_path(room: str) -> str:
    """Origin → edge: what the pipe carries now, and the floor."""
    return f"/rooms/{room}/pipe-state"


def _is_rtcp(data: bytes) -> bool:
    return len(data) >= 2 and data[1] in _RTCP_PACKET_TYPES


class PipedCodec(BaseModel):
    mime_type: str
    clock_rate: int = Field(gt=0)
    payload_type: int = Field(ge=0, le=127)
    channels: int | None = None
    parameters: dict[str, str | int] = Field(default_factory=dict)

    def rtp_codec(self) -> RtpCodec:
        return RtpCodec(
            mime_type=self.mime_type,
            clock_rate=self.clock_rate,
            payload_type=self.payload_type,
            channels=self.channels,
            parameters=self.parameters,
        )


class PipedSource(BaseModel):
    """One origin source as announced to an edge: whose, what kind, which SSRC and formats."""

    site_id: int
    kind: Literal["audio", "video"]
    ssrc: int = Field(ge=0, lt=2**32)
    codecs: list[PipedCodec] = Field(min_length=1)
    content: bool = Field(
        default=False, description="the room's content (sfu.content), not the site's camera"
    )


class PipeRequest(BaseModel):
    """Edge → origin: open a pipe to this address."""

    edge_node_id: str = Field(min_length=1, max_length=100)
    edge_addr: tuple[str, int]
    edge_url: str = Field(description="the edge's admin API, for state updates")


class PipeState(BaseModel):
    """Origin → edge: where the pipe comes from, what it carries, and the floor."""

    origin_addr: tuple[str, int]
    sources: list[PipedSource]
    floor: FloorState


class ExtendRoom(BaseModel):
    """Control plane → edge: serve this room for the origin at `origin_url`.

    `token` is a relay grant for the room: the edge shows it to the origin to get the pipe,
    and the origin shows it back with every pipe state (each checks it as its own: no secret
    is shared between nodes).
    """

    origin_url: str
    occurrence_id: int
    chair_site_id: int
    ends_at: AwareDatetime
    token: str = Field(min_length=1)


class _PipeEnd(asyncio.DatagramProtocol):
    """One end of a pipe: a UDP socket with room for bursts."""

    transport: asyncio.DatagramTransport | None = None

    async def bind(self, host: str) -> None:
        loop = asyncio.get_running_loop()
        transport, _protocol = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(host, 0)
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PIPE_SOCKET_BUFFER_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIPE_SOCKET_BUFFER_BYTES)
        self.transport = transport

    @property
    def local_addr(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def _close_socket(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


# --- origin side ---------------------------------------------------------------------------------


class PipeEgress:
    """A `SlotEgress` that sends plain RTP down a pipe (no SRTP; the pipe is a trusted link)."""

    def __init__(self, out: PipeOut, kind: str, codecs: tuple[RtpCodec, ...]) -> None:
        self.kind = kind
        self.ssrc = random.getrandbits(32)
        self.params = NegotiatedRtp(
            kind=kind, mid=None, codecs=codecs, header_extensions=PIPE_EXTENSIONS
        )
        self.clock_rate = codecs[0].clock_rate
        self.on_keyframe_request: Callable[[], None] = lambda: None
        self._out = out
        self._packets = 0
        self._bytes = 0
        self._keyframe_requests = 0
        self._closed = False

    @property
    def ready(self) -> bool:
        return not self._closed and self._out.transport is not None

    def send(self, header: bytes, payload: bytes, seq: int, rtp_ts: int, now: float) -> bool:
        transport = self._out.transport
        if self._closed or transport is None:
            return False
        transport.sendto(header + payload, self._out.edge_addr)
        self._packets += 1
        self._bytes += len(payload)
        return True

    def keyframe_requested(self) -> None:
        self._keyframe_requests += 1
        self.on_keyframe_request()

    def stats(self) -> EgressStats:
        return EgressStats.plain(
            packets_sent=self._packets,
            bytes_sent=self._bytes,
            keyframe_requests_received=self._keyframe_requests,
        )

    def close(self) -> None:
        self._closed = True


class PipeOut(_PipeEnd):
    """The origin's end of one pipe: a slot per piped source, PLI from the edge handled."""

    def __init__(self, edge_node_id: str, edge_addr: tuple[str, int]) -> None:
        self.edge_node_id = edge_node_id
        self.edge_addr = edge_addr
        # origin Source → (slot, its egress, the site it belongs to)
        self._slots: dict[Source, tuple[Slot, PipeEgress, int]] = {}
        self._content: Source | None = None  # the one of them that is the room's content

    @classmethod
    async def open(cls, edge_node_id: str, edge_addr: tuple[str, int], host: str) -> PipeOut:
        pipe = cls(edge_node_id, edge_addr)
        await pipe.bind(host)
        return pipe

    def sync(
        self, sources: Iterable[tuple[int, Source]], content: tuple[int, Source] | None = None
    ) -> list[PipedSource]:
        """Pipe exactly these (site id, source) pairs, and the room's `content` (its site and
        source) if someone presents; returns what the edge should know."""
        wanted = dict((source, site_id) for site_id, source in sources if not source.closed)
        self._content = None
        if content is not None and not content[1].closed:
            self._content = content[1]
            wanted[content[1]] = content[0]
        for source in [s for s in self._slots if s not in wanted]:
            slot, egress, _site = self._slots.pop(source)
            slot.close()
            egress.close()
        for source, site_id in wanted.items():
            if source in self._slots:
                # a relayed track names another site when the floor moves (sfu.cascade)
                slot, egress, _site = self._slots[source]
                self._slots[source] = (slot, egress, site_id)
            else:
                codecs = tuple(
                    RtpCodec(
                        mime_type=c.mime_type,
                        clock_rate=c.clock_rate,
                        payload_type=c.payload_type,
                        channels=c.channels,
                        parameters=c.parameters,
                    )
                    for c in source.codecs
                )
                egress = PipeEgress(self, source.kind, codecs)
                slot = Slot(egress, label=f"pipe to {self.edge_node_id}")
                slot.switch_to(source)
                self._slots[source] = (slot, egress, site_id)
        return [
            PipedSource(
                site_id=site_id,
                kind=source.kind,  # type: ignore[arg-type]
                ssrc=egress.ssrc,
                content=source is self._content,
                codecs=[
                    PipedCodec(
                        mime_type=c.mime_type,
                        clock_rate=c.clock_rate,
                        payload_type=c.payload_type,
                        channels=c.channels,
                        parameters=dict(c.parameters),
                    )
                    for c in egress.params.codecs
                ],
            )
            for source, (_slot, egress, site_id) in self._slots.items()
        ]

    def keepalive(self) -> None:
        """An empty receiver report: the edge takes a silent pipe as a dead origin, and a room
        whose publishers are all muted sends no RTP."""
        if self.transport is not None:
            self.transport.sendto(bytes(RtcpRrPacket(ssrc=0)), self.edge_addr)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr[:2] != self.edge_addr or not _is_rtcp(data):
            return
        try:
            packets = RtcpPacket.parse(data)
        except ValueError:
            return
        for packet in packets:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
                for _slot, egress, _site in self._slots.values():
                    if egress.ssrc == packet.media_ssrc:
                        egress.keyframe_requested()

    def close(self) -> None:
        for slot, egress, _site in self._slots.values():
            slot.close()
            egress.close()
        self._slots.clear()
        self._close_socket()


# --- edge side -----------------------------------------------------------------------------------


class PipeIn(_PipeEnd):
    """The edge's end of one pipe: RTP from the origin into the sources registered by SSRC."""

    def __init__(self) -> None:
        self.origin_addr: tuple[str, int] | None = None
        self._sources: dict[int, Source] = {}
        self._extensions = HeaderExtensionsMap()
        self._extensions.configure(
            RTCRtpParameters(
                headerExtensions=[
                    RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri)
                    for uri, ext_id in PIPE_EXTENSIONS.items()
                ]
            )
        )
        self.packets = 0
        self.keepalives = 0
        self._heard_at = time.monotonic()
        self._heard_count = 0

    @classmethod
    async def open(cls, host: str) -> PipeIn:
        pipe = cls()
        await pipe.bind(host)
        return pipe

    def source_for(self, piped: PipedSource, label: str) -> Source:
        """The edge source fed by `piped`'s SSRC (made on first use)."""
        source = self._sources.get(piped.ssrc)
        if source is None or source.closed:
            source = Source(
                piped.kind,
                [codec.rtp_codec() for codec in piped.codecs],
                send_pli=lambda ssrc=piped.ssrc: self._send_pli(ssrc),
                label=label,
            )
            self._sources[piped.ssrc] = source
        return source

    def silent_for(self, now: float) -> float:
        """Seconds since the origin was last heard, as of `now` (`time.monotonic()`); called
        once a second, so no packet pays for a clock read."""
        heard = self.packets + self.keepalives
        if heard != self._heard_count:
            self._heard_count, self._heard_at = heard, now
        return now - self._heard_at

    def sources(self) -> list[Source]:
        return list(self._sources.values())

    def retire(self, keep: set[int]) -> list[Source]:
        """Close the sources whose SSRC the origin no longer pipes; returns them."""
        retired = [self._sources.pop(ssrc) for ssrc in [s for s in self._sources if s not in keep]]
        for source in retired:
            source.close()
        return retired

    def _send_pli(self, media_ssrc: int) -> bool:
        if self.transport is None or self.origin_addr is None:
            return False
        self.transport.sendto(
            bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=0, media_ssrc=media_ssrc)),
            self.origin_addr,
        )
        return True

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # only the origin feeds the room: anything else on this port is dropped
        if addr[:2] != self.origin_addr:
            return
        if _is_rtcp(data):
            self.keepalives += 1
            return
        try:
            packet = RtpPacket.parse(data, self._extensions)
        except ValueError:
            return
        source = self._sources.get(packet.ssrc)
        if source is not None:
            self.packets += 1
            source.push(packet)

    def close(self) -> None:
        for source in self._sources.values():
            source.close()
        self._sources.clear()
        self._close_socket()
