"""Egress: one viewer's sender fed with already-serialized RTP.

`RtpEgress` sends RTP for one sender synchronously (SRTP protect into a reused libsrtp buffer,
then `sendto` on the nominated ICE pair; on a shared port with batched sends, protected in place
in its sendmmsg slot), answers NACK from a bounded history, reports PLI/FIR, and reads RR;
`ParkedTrack` keeps the stock send loop asleep while SR/SDES still go out.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from struct import pack, unpack_from
from typing import Any

from aiortc import RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    unpack_remb_fci,
)

from sfu.rtc.sdp import negotiated_rtp
from sfu.rtc.transport import DatagramPath, RtpProtect

EGRESS_HISTORY_SIZE = 512
"""Packets kept per video slot to answer NACK (a power of two); about 4 s at 1 Mbit/s."""
EGRESS_MAX_WRITE_BUFFER_BYTES = 256 * 1024
"""Above this many bytes queued in a viewer's socket transport, new packets are dropped."""
RTT_SMOOTHING = 0.85
"""Weight of the previous round-trip time in the running average (as aiortc's sender)."""

_NTP_EPOCH_OFFSET_S = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)


class ParkedTrack(MediaStreamTrack):
    """A track whose `recv()` waits until the track stops: it keeps aiortc's send loop asleep.

    `RTCRtpSender._run_rtp` awaits `track.recv()` forever instead of polling, so a sender fed by
    `RtpEgress` costs nothing there, while its RTCP loop still sends SR and SDES.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._stopped: asyncio.Future[None] | None = None

    async def recv(self) -> Any:
        """Wait until the track is stopped, then raise `MediaStreamError` (never a frame)."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._stopped is None:
            self._stopped = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._stopped)
        raise MediaStreamError

    def stop(self) -> None:
        """End the track and wake the parked `recv()`."""
        super().stop()
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)


@dataclass(frozen=True)
class EgressStats:
    """Counters of one viewer's outgoing track and what the viewer reported back."""

    packets_sent: int
    bytes_sent: int
    packets_dropped: int
    packets_retransmitted: int
    nacks_received: int
    keyframe_requests_received: int
    rtt_s: float | None
    fraction_lost: float | None
    packets_lost: int | None
    jitter_s: float | None
    remb_bps: int | None
    reports_received: int = 0
    """Receiver reports about this track so far (a new one since the last look is news)."""

    @classmethod
    def plain(
        cls,
        *,
        packets_sent: int,
        bytes_sent: int,
        keyframe_requests_received: int = 0,
        report: RtcpReceiverInfo | None = None,
        clock_rate: int = 90_000,
        rtt_s: float | None = None,
    ) -> EgressStats:
        """Stats of an egress over plain RTP (a pipe, a SIP leg): nothing is retransmitted or
        dropped; loss and jitter come from the far end's last receiver report, if any."""
        return cls(
            packets_sent=packets_sent,
            bytes_sent=bytes_sent,
            packets_dropped=0,
            packets_retransmitted=0,
            nacks_received=0,
            keyframe_requests_received=keyframe_requests_received,
            rtt_s=rtt_s,
            fraction_lost=report.fraction_lost / 256 if report else None,
            packets_lost=report.packets_lost if report else None,
            jitter_s=report.jitter / clock_rate if report else None,
            remb_bps=None,
        )


class RtpEgress:
    """Send already-serialized RTP for one viewer's `RTCRtpSender`, synchronously.

    `send()` stores the packet in a bounded history, SRTP-protects it and hands it to the socket
    of the nominated ICE pair; if more than `max_write_buffer_bytes` wait in that socket's
    transport (a slow or vanished viewer), the packet is dropped rather than queued. RTCP for the
    sender is taken over: NACK is answered from the history (as RTX when negotiated), PLI/FIR
    call `on_keyframe_request`, RR feeds RTT, loss and jitter. The sender gets a `ParkedTrack`
    and its direction is made to send. `close()` undoes the hooks.
    """

    __slots__ = (
        "_addr",
        "_closed",
        "_fraction_lost",
        "_history_headers",
        "_history_payloads",
        "_jitter_s",
        "_mask",
        "_max_write_buffer_bytes",
        "_name",
        "_packets_lost",
        "_path",
        "_protect",
        "_remb_bps",
        "_reports_received",
        "_rtt_s",
        "_rtx_pt",
        "_rtx_seq",
        "_sender",
        "_sr_lsr",
        "_sr_sent_at",
        "_srtp",
        "_stock_handle_rtcp",
        "_transport",
        "bytes_sent",
        "clock_rate",
        "keyframe_requests_received",
        "kind",
        "last_rtp_ts",
        "last_sent_at",
        "nacks_received",
        "on_keyframe_request",
        "packets_dropped",
        "packets_retransmitted",
        "packets_sent",
        "params",
        "rtx_ssrc",
        "ssrc",
    )

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        *,
        history_size: int = EGRESS_HISTORY_SIZE,
        max_write_buffer_bytes: int = EGRESS_MAX_WRITE_BUFFER_BYTES,
    ) -> None:
        if history_size & (history_size - 1):
            raise ValueError("history_size must be a power of two")
        sender = transceiver.sender
        self.kind = transceiver.kind
        self.params = negotiated_rtp(transceiver)
        self.on_keyframe_request: Callable[[], None] = _no_keyframe_request
        self.clock_rate = self.params.codecs[0].clock_rate if self.params.codecs else 90000
        # touches RTCRtpSender._ssrc / ._rtx_ssrc, the SSRCs aiortc announced in the SDP
        self.ssrc: int = sender._ssrc
        self.rtx_ssrc: int = sender._rtx_ssrc
        self._sender = sender
        self._max_write_buffer_bytes = max_write_buffer_bytes
        uses_nack = any(codec.nack for codec in self.params.codecs)
        size = history_size if uses_nack else 0
        self._mask = size - 1 if size else 0
        self._history_headers: list[bytes | None] = [None] * size
        self._history_payloads: list[bytes] = [b""] * size
        self._rtx_pt = {
            c.payload_type: c.rtx_payload_type
            for c in self.params.codecs
            if c.rtx_payload_type is not None
        }
        self._rtx_seq = random.randint(0, 0x7FFF)
        self._path: DatagramPath | None = None
        # bound by _bind() from the path, cleared when the DTLS transport changes state
        self._transport: asyncio.DatagramTransport | None = None
        self._addr: tuple[str, int] = ("", 0)
        self._protect: RtpProtect | None = None
        # on a shared port whose sends are batched: the SRTP session's srtp_t and the viewer's
        # C socket address, so that send() protects straight into the batch (None otherwise)
        self._srtp: Any = None
        self._name = b""
        self._closed = False
        # what the viewer sees and reports
        self.packets_sent = 0
        self.bytes_sent = 0
        self.packets_dropped = 0
        self.packets_retransmitted = 0
        self.nacks_received = 0
        self.keyframe_requests_received = 0
        self.last_rtp_ts = 0
        self.last_sent_at: float | None = None  # time.monotonic() of the last sent packet
        self._rtt_s: float | None = None
        self._fraction_lost: float | None = None
        self._packets_lost: int | None = None
        self._jitter_s: float | None = None
        self._remb_bps: int | None = None
        self._reports_received = 0
        self._sr_lsr: int | None = None
        self._sr_sent_at = 0.0

        if not isinstance(sender.track, ParkedTrack):
            # this sender is fed by send() from now on: nothing for the stock loop to encode
            sender.replaceTrack(ParkedTrack(self.kind))
        if transceiver.direction in ("recvonly", "inactive"):
            transceiver.direction = "sendonly"
        # touches RTCRtpSender._handle_rtcp_packet (awaited by RTCDtlsTransport for RTCP routed
        # to this SSRC) and RTCRtpSender._send_rtcp (used by its SR/SDES/BYE loop); instance
        # attributes shadow both methods for this sender only
        self._stock_handle_rtcp = sender._handle_rtcp_packet
        sender._handle_rtcp_packet = self._handle_rtcp_packet
        sender._send_rtcp = self._send_sender_rtcp

    # the per-packet path

    def send(self, header: bytes, payload: bytes, seq: int, rtp_ts: int, now: float) -> bool:
        """Send one RTP packet (`header` + `payload`, sequence number `seq`).

        `now` is `time.monotonic()` at the packet's arrival; it dates `rtp_ts` for the sender
        report. Returns False when the packet was dropped (not connected yet, socket backlog
        above the bound, or SRTP refused it); it is still kept for retransmission.
        """
        mask = self._mask
        if mask:
            index = seq & mask
            self._history_headers[index] = header
            self._history_payloads[index] = payload
        self.last_rtp_ts = rtp_ts
        self.last_sent_at = now
        transport = self._transport
        if transport is None:
            if not self._bind():
                self.packets_dropped += 1
                return False
            transport = self._transport
            assert transport is not None
        srtp = self._srtp
        batch = transport.batch if srtp is not None else None  # type: ignore[attr-defined]
        if batch is not None:
            # a shared port's batch: the backlog read without a call, the packet protected in
            # its slot of the batch (no copy of its own)
            if (
                transport.socket_sender.queued_bytes > self._max_write_buffer_bytes  # type: ignore[attr-defined]
                or not batch.add_srtp(header, payload, srtp, self._name, self._addr)
            ):
                self.packets_dropped += 1
                return False
        else:
            if transport.get_write_buffer_size() > self._max_write_buffer_bytes:
                self.packets_dropped += 1
                return False
            data = self._protect(header, payload)  # type: ignore[misc]
            if data is None:
                self.packets_dropped += 1
                return False
            transport.sendto(data, self._addr)
        self.packets_sent += 1
        self.bytes_sent += len(payload)
        return True

    @property
    def ready(self) -> bool:
        """True once the viewer's transport is connected and the sender has started."""
        if self._closed:
            return False
        return self._transport is not None or self._bind()

    def stats(self) -> EgressStats:
        """A snapshot of the counters and of the viewer's last receiver report."""
        return EgressStats(
            packets_sent=self.packets_sent,
            bytes_sent=self.bytes_sent,
            packets_dropped=self.packets_dropped,
            packets_retransmitted=self.packets_retransmitted,
            nacks_received=self.nacks_received,
            keyframe_requests_received=self.keyframe_requests_received,
            rtt_s=self._rtt_s,
            fraction_lost=self._fraction_lost,
            packets_lost=self._packets_lost,
            jitter_s=self._jitter_s,
            remb_bps=self._remb_bps,
            reports_received=self._reports_received,
        )

    def close(self) -> None:
        """Stop sending and give the sender back its stock RTCP handling."""
        if self._closed:
            return
        self._closed = True
        sender = self._sender
        for name in ("_handle_rtcp_packet", "_send_rtcp"):
            if name in vars(sender):
                delattr(sender, name)
        if self._path is not None:
            self._path.close()
        self._transport = None
        self._protect = None
        self._srtp = None
        self._mask = 0
        self._history_headers = []
        self._history_payloads = []
        track = sender.track
        if isinstance(track, ParkedTrack):
            track.stop()

    # binding to the transport

    def _bind(self) -> bool:
        if self._closed:
            return False
        # touches RTCRtpSender.__started, set once send() has registered the sender with its
        # DTLS transport (after the handshake), so the viewer's side is about to accept media
        if not self._sender._RTCRtpSender__started:
            return False
        path = self._path
        if path is None or path.dtls is not self._sender.transport:
            if path is not None:
                path.close()
            path = self._path = DatagramPath(self._sender.transport)
            path.on_unbind = self._unbind
        if not path.resolve():
            return False
        self._transport, self._addr, self._protect = path.transport, path.addr, path.protect
        batch = getattr(path.transport, "batch", None)
        name = batch.sockaddr_for(path.addr) if batch is not None else None
        handle = getattr(path.protect, "handle", None)
        self._srtp, self._name = (handle, name) if name is not None else (None, b"")
        return True

    def _unbind(self) -> None:
        self._transport = None

    # RTCP

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpRtpfbPacket):
            if packet.fmt == RTCP_RTPFB_NACK:
                self.nacks_received += 1
                for seq in packet.lost:
                    self.retransmit(seq)
        elif isinstance(packet, RtcpPsfbPacket):
            if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                self.keyframe_requests_received += 1
                self.on_keyframe_request()
            elif packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    return
                if self.ssrc in ssrcs:
                    self._remb_bps = bitrate
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            self._handle_reports(packet)
            # aiortc's own handler keeps getStats() of the sender meaningful
            await self._stock_handle_rtcp(packet)

    def _handle_reports(self, packet: RtcpRrPacket | RtcpSrPacket) -> None:
        for report in packet.reports:
            if report.ssrc != self.ssrc:
                continue
            self._reports_received += 1
            self._fraction_lost = report.fraction_lost / 256
            self._packets_lost = report.packets_lost
            self._jitter_s = report.jitter / self.clock_rate if self.clock_rate else None
            if report.lsr and report.lsr == self._sr_lsr:
                rtt = time.monotonic() - self._sr_sent_at - report.dlsr / 65536
                if rtt >= 0:
                    previous = self._rtt_s
                    self._rtt_s = (
                        rtt
                        if previous is None
                        else RTT_SMOOTHING * previous + (1 - RTT_SMOOTHING) * rtt
                    )

    def retransmit(self, seq: int) -> bool:
        """Resend packet `seq` from the history (as RTX when negotiated); False if not held."""
        mask = self._mask
        if not mask:
            return False
        header = self._history_headers[seq & mask]
        if header is None or unpack_from("!H", header, 2)[0] != seq:
            return False
        payload = self._history_payloads[seq & mask]
        rtx_pt = self._rtx_pt.get(header[1] & 0x7F)
        if rtx_pt is not None:
            rtx_header = (
                bytes((header[0] & 0xDF, (header[1] & 0x80) | rtx_pt))
                + pack("!H", self._rtx_seq)
                + header[4:8]
                + pack("!I", self.rtx_ssrc)
                + header[12:]
            )
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            header, payload = rtx_header, header[2:4] + payload
        transport = self._transport
        if transport is None:
            return False
        data = self._protect(header, payload)  # type: ignore[misc]
        if data is None:
            return False
        transport.sendto(data, self._addr)
        self.packets_retransmitted += 1
        return True

    async def _send_sender_rtcp(self, packets: list[AnyRtcpPacket]) -> None:
        # replaces RTCRtpSender._send_rtcp: the stock SR carries counters of the stock send
        # loop, which never runs here, so each SR is rewritten from this egress's counters
        # rebinding here once per report also follows a change of the nominated pair
        if not self._bind():
            return
        path = self._path
        assert path is not None
        now_wall = time.time()
        now = time.monotonic()
        ntp = int((now_wall + _NTP_EPOCH_OFFSET_S) * (1 << 32))
        data = b""
        for packet in packets:
            if isinstance(packet, RtcpSrPacket) and packet.ssrc == self.ssrc:
                rtp_ts = self.last_rtp_ts
                if self.last_sent_at is not None:
                    elapsed = max(now - self.last_sent_at, 0.0)
                    rtp_ts = (rtp_ts + int(elapsed * self.clock_rate)) & 0xFFFFFFFF
                packet.sender_info = RtcpSenderInfo(
                    ntp_timestamp=ntp,
                    rtp_timestamp=rtp_ts,
                    packet_count=self.packets_sent & 0xFFFFFFFF,
                    octet_count=self.bytes_sent & 0xFFFFFFFF,
                )
                self._sr_lsr = (ntp >> 16) & 0xFFFFFFFF
                self._sr_sent_at = now
                # touches RTCRtpSender.__packet_count / __octet_count so getStats() agrees
                self._sender._RTCRtpSender__packet_count = self.packets_sent
                self._sender._RTCRtpSender__octet_count = self.bytes_sent
            data += bytes(packet)
        if data:
            path.send_rtcp(data)


def _no_keyframe_request() -> None:
    pass
