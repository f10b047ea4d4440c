"""Ingest: one publisher's receiver turned into a packet source.

`RtpIngest` replaces one receiver's RTP handler: statistics for RTCP RR, RTX unwrapping and
NACK generation stay, depayloading, the jitter buffer and the decoder are skipped; each parsed
`RtpPacket` goes to a callback. It can also send PLI (and REMB) to the publisher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpTransceiver
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

from sfu.rtc.sdp import is_rtx
from sfu.rtc.transport import DatagramPath

RtpCallback = Callable[[RtpPacket], None]


@dataclass(frozen=True)
class IngestStats:
    """Reception statistics of one publisher track (the media SSRC, RTX excluded)."""

    packets_received: int
    packets_lost: int
    jitter_s: float
    nacks_sent: int
    plis_sent: int
    rembs_sent: int


class RtpIngest:
    """Turn one `RTCRtpReceiver` into a packet source: parsed RTP to a callback, no decoding.

    Installed on the receiver instance (its `_handle_rtp_packet` is replaced), so other
    receivers in the process are untouched. Keeps what aiortc's RTCP needs (per-SSRC statistics
    for receiver reports), unwraps RTX and sends NACK for lost video packets, so each hop repairs
    its own losses. After `close()` the receiver discards packets.
    """

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        on_rtp: RtpCallback,
        *,
        max_bitrate_bps: int | None = None,
    ) -> None:
        receiver = transceiver.receiver
        self.kind = transceiver.kind
        self._receiver = receiver
        self._on_rtp = on_rtp
        self._path: DatagramPath | None = None
        # touches RTCRtpReceiver private state (name-mangled `__x` attributes): the payload type
        # → codec map and RTX SSRC map that receive() fills, the per-SSRC StreamStatistics its
        # RTCP loop turns into receiver reports, the video NACK generator and the RTCP SSRC;
        # the containers are created in __init__ and filled in place, so references stay valid
        self._codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs
        self._rtx_ssrc: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc
        self._streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams
        self._nack_generator = receiver._RTCRtpReceiver__nack_generator
        # the receiver's remote bitrate estimator (video only): publishers learn from our REMB
        # how much the path takes, since aiortc offers no transport-cc
        self._estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
        # a thumbnail's publisher is asked for no more than this, whatever the path takes
        self._max_bitrate_bps = max_bitrate_bps
        self._apt: dict[int, int | None] = {}  # payload type → RTX apt (None: not RTX)
        self.media_ssrc: int | None = None
        self.nacks_sent = 0
        self.plis_sent = 0
        self.rembs_sent = 0
        # touches RTCRtpReceiver._handle_rtp_packet, the coroutine RTCDtlsTransport awaits for
        # every routed RTP packet; an instance attribute shadows the method for this one only
        receiver._handle_rtp_packet = self._handle_rtp_packet
        if receiver.transport is not None:
            route_by_mid(receiver.transport._rtp_router)

    def close(self) -> None:
        """Stop handing packets on; the receiver discards them from now on.

        The stock handler is not put back: it would start decoding whatever still arrives
        before the peer connection closes.
        """
        self._receiver._handle_rtp_packet = _discard_rtp_packet
        self._on_rtp = _ignore_rtp
        if self._path is not None:
            self._path.close()
            self._path = None

    def stats(self) -> IngestStats:
        """Statistics of the media SSRC received so far."""
        stream = self._streams.get(self.media_ssrc) if self.media_ssrc is not None else None
        clock_rate = stream._clockrate if stream is not None else 0
        return IngestStats(
            packets_received=stream.packets_received if stream else 0,
            packets_lost=max(stream.packets_lost, 0) if stream else 0,
            jitter_s=(stream.jitter / clock_rate) if stream and clock_rate else 0.0,
            nacks_sent=self.nacks_sent,
            plis_sent=self.plis_sent,
            rembs_sent=self.rembs_sent,
        )

    def send_pli(self) -> bool:
        """Ask the publisher for a keyframe (RFC 4585 §6.3.1); False if it cannot be sent yet."""
        media_ssrc = self.media_ssrc
        rtcp_ssrc = self._rtcp_ssrc()
        if media_ssrc is None or rtcp_ssrc is None:
            return False
        packet = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=rtcp_ssrc, media_ssrc=media_ssrc)
        if self._send_rtcp(bytes(packet)):
            self.plis_sent += 1
            return True
        return False

    # the per-packet path

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        # same signature as RTCRtpReceiver._handle_rtp_packet; the await is aiortc's, the work
        # below is synchronous
        self.handle(packet, arrival_time_ms)

    def handle(self, packet: RtpPacket, arrival_time_ms: int | None = None) -> None:
        """Process one parsed RTP packet as the replaced handler does (public for benchmarks)."""
        # touches RTCRtpReceiver._enabled, which the transceiver direction sets
        if not self._receiver._enabled:
            return
        pt = packet.payload_type
        try:
            apt = self._apt[pt]
        except KeyError:
            apt = self._learn_payload_type(pt)
            if apt == -1:
                return
        stream = self._streams.get(packet.ssrc)
        if stream is None:
            codec = self._codecs[pt]
            stream = self._streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if self._estimator is not None and arrival_time_ms is not None:
            self._estimate_bandwidth(packet, arrival_time_ms)
        if apt is not None:
            original_ssrc = self._rtx_ssrc.get(packet.ssrc)
            if original_ssrc is None or len(packet.payload) < 2:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
        else:
            self.media_ssrc = packet.ssrc
        generator = self._nack_generator
        if generator is not None and generator.add(packet):
            self._send_nack(packet.ssrc, sorted(generator.missing))
        self._on_rtp(packet)

    def _estimate_bandwidth(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        abs_send_time = packet.extensions.abs_send_time
        if abs_send_time is None:
            return
        remb = self._estimator.add(
            abs_send_time=abs_send_time,
            arrival_time_ms=arrival_time_ms,
            payload_size=len(packet.payload) + packet.padding_size,
            ssrc=packet.ssrc,
        )
        rtcp_ssrc = self._rtcp_ssrc()
        if remb is None or rtcp_ssrc is None:
            return
        bitrate, ssrcs = remb
        if self._max_bitrate_bps is not None:
            bitrate = min(bitrate, self._max_bitrate_bps)
        feedback = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs)
        )
        if self._send_rtcp(bytes(feedback)):
            self.rembs_sent += 1

    def _learn_payload_type(self, pt: int) -> int | None:
        codec = self._codecs.get(pt)
        if codec is None:
            return -1  # unknown payload type: dropped, as aiortc does
        apt: int | None = None
        if is_rtx(codec):
            candidate = codec.parameters.get("apt")
            if not isinstance(candidate, int) or candidate not in self._codecs:
                return -1
            apt = candidate
        self._apt[pt] = apt
        return apt

    def _rtcp_ssrc(self) -> int | None:
        # touches RTCRtpReceiver.__rtcp_ssrc, the sender SSRC aiortc puts in its own RTCP
        return self._receiver._RTCRtpReceiver__rtcp_ssrc

    def _send_nack(self, media_ssrc: int, lost: list[int]) -> None:
        rtcp_ssrc = self._rtcp_ssrc()
        if rtcp_ssrc is None or not lost:
            return
        packet = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=rtcp_ssrc, media_ssrc=media_ssrc)
        packet.lost = lost
        if self._send_rtcp(bytes(packet)):
            self.nacks_sent += 1

    def _send_rtcp(self, data: bytes) -> bool:
        if self._path is None:
            self._path = DatagramPath(self._receiver.transport)
        return self._path.send_rtcp(data)


async def _discard_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
    pass


def route_by_mid(router: RtpRouter) -> None:
    """Let `router` (one DTLS transport's) route a packet of an unknown SSRC by its MID header
    extension (RFC 8843 §9.2), as browsers do, before aiortc's own rule.

    aiortc 1.16 routes by the SSRCs of the offer, else by payload type when one receiver has
    it. Chromium lists no SSRC for a track added with `sendEncodings` (the thumbnail of
    `whip.js`), and both camera m-lines share their payload types: without this, every packet
    of the thumbnail would be dropped. Installed once per router; idempotent.
    """
    # touches RtpRouter.route_rtp (shadowed on the instance), .ssrc_table and .mid_table
    if getattr(router, "_sfu_routes_by_mid", False):
        return
    stock = router.route_rtp
    ssrc_table, mid_table = router.ssrc_table, router.mid_table

    def route_rtp(packet: RtpPacket) -> Any:
        if packet.ssrc not in ssrc_table:
            mid = packet.extensions.mid
            receiver = mid_table.get(mid) if mid is not None else None
            if receiver is not None:
                ssrc_table[packet.ssrc] = receiver
        return stock(packet)

    router.route_rtp = route_rtp  # type: ignore[method-assign]
    router._sfu_routes_by_mid = True  # type: ignore[attr-defined]


def _ignore_rtp(packet: RtpPacket) -> None:
    pass
