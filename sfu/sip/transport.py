"""The RTP side of one SIP stream: its UDP sockets, symmetric RTP, SDES-SRTP and RTCP.

- Sockets: RTP on an even port of the worker's media range and RTCP on the next, or one
  socket when RTCP is muxed (RFC 5761).
- Symmetric RTP (RFC 4961): packets go to the SDP address until the far end's RTP arrives,
  then to where it comes from. Only the SDP address's host, or the address latched, is heard.
- SRTP/SRTCP (RFC 3711) with the SDES keys of the SDP, through libsrtp (pylibsrtp).
- Receive statistics (RFC 3550 §6.4.1, A.3, A.8) for our receiver reports and the leg's link
  quality; the far end's reports give the loss it sees of what we send.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc.rtp import (
    RtcpPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
)
from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session

log = logging.getLogger(__name__)

SOCKET_BUFFER_BYTES = 262144
_RTCP_TYPES = range(192, 224)  # RFC 5761 §4
_SRTP_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
_NTP_EPOCH_OFFSET_S = 2208988800  # 1900 → 1970


class NoSipPort(OSError):
    """No free port (pair) in the worker's media range."""


def is_rtcp(data: bytes) -> bool:
    return len(data) >= 2 and data[1] in _RTCP_TYPES


def ntp_now() -> int:
    now = time.time() + _NTP_EPOCH_OFFSET_S
    return (int(now) << 32) | int((now % 1) * (1 << 32))


class Srtp:
    """SDES-keyed SRTP of one stream: our key protects what we send, theirs what we receive."""

    def __init__(self, suite: str, local_key: bytes, remote_key: bytes) -> None:
        profile = _SRTP_PROFILES[suite]
        self._tx = Session(Policy(local_key, Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
        self._rx = Session(Policy(remote_key, Policy.SSRC_ANY_INBOUND, srtp_profile=profile))

    def protect(self, data: bytes, rtcp: bool) -> bytes:
        return self._tx.protect_rtcp(data) if rtcp else self._tx.protect(data)

    def unprotect(self, data: bytes, rtcp: bool) -> bytes | None:
        try:
            return self._rx.unprotect_rtcp(data) if rtcp else self._rx.unprotect(data)
        except SrtpError:
            return None  # forged, replayed or keyed otherwise: dropped


@dataclass
class ReceiveStats:
    """RFC 3550 A.1/A.3/A.8 bookkeeping of the stream received."""

    clock_rate: int
    ssrc: int | None = None
    base_seq: int = 0
    max_seq: int = 0
    cycles: int = 0
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    jitter: float = 0.0  # in timestamp units
    _transit: int | None = None
    last_sr: int = 0  # middle 32 bits of the far end's last SR NTP time
    last_sr_at: float = 0.0

    def update(self, seq: int, timestamp: int, ssrc: int, now: float) -> None:
        if ssrc != self.ssrc:
            self.ssrc, self.base_seq, self.max_seq = ssrc, seq, seq
            self.cycles = self.received = self.expected_prior = self.received_prior = 0
            self._transit = None
        elif 0 < (seq - self.max_seq) & 0xFFFF < 0x8000:
            if seq < self.max_seq:
                self.cycles += 1 << 16
            self.max_seq = seq
        self.received += 1
        arrival = int(now * self.clock_rate)
        transit = arrival - timestamp
        if self._transit is not None:
            d = abs(((transit - self._transit) + (1 << 31)) % (1 << 32) - (1 << 31))
            self.jitter += (d - self.jitter) / 16
        self._transit = transit

    @property
    def expected(self) -> int:
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received) if self.ssrc is not None else 0

    @property
    def loss_ratio(self) -> float | None:
        """Packets never received over those expected, since the stream began."""
        if self.ssrc is None or self.expected <= 0:
            return None
        return min(1.0, self.lost / self.expected)

    @property
    def jitter_s(self) -> float:
        return self.jitter / self.clock_rate

    def report(self, now: float) -> RtcpReceiverInfo | None:
        """One report block (RFC 3550 §6.4.1) and the interval counters moved on."""
        if self.ssrc is None:
            return None
        expected_interval = self.expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior, self.received_prior = self.expected, self.received
        lost_interval = expected_interval - received_interval
        fraction = (lost_interval << 8) // expected_interval if lost_interval > 0 else 0
        dlsr = int((now - self.last_sr_at) * 65536) if self.last_sr else 0
        return RtcpReceiverInfo(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            packets_lost=min(self.lost, 0x7FFFFF),
            highest_sequence=(self.cycles + self.max_seq) & 0xFFFFFFFF,
            jitter=int(self.jitter) & 0xFFFFFFFF,
            lsr=self.last_sr,
            dlsr=dlsr & 0xFFFFFFFF,
        )


@dataclass
class RemoteReport:
    """What the far end last said of our stream (its receiver report)."""

    fraction_lost: float | None = None
    packets_lost: int | None = None
    jitter_s: float | None = None
    rtt_s: float | None = None


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self._on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._on_datagram(data, addr)
        except Exception:  # one bad packet must not stop the socket
            log.exception("SIP media packet from %s failed", addr[0])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


async def _bind_one(host: str, port: int, protocol: _Socket) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol, local_addr=(host, port))
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)


def _candidate_ports(port_range: tuple[int, int] | None) -> list[int]:
    if port_range is None:
        return [0] * 20  # the kernel's choice; a taken odd neighbour means another try
    low, high = port_range
    evens = list(range(low + (low % 2), high + 1, 2))
    start = random.randrange(len(evens)) if evens else 0
    return evens[start:] + evens[:start]


class RtpTransport:
    """The UDP sockets of one SIP stream, with latching, SRTP and RTCP bookkeeping.

    `on_rtp(data, now)` receives each RTP packet (decrypted), `on_rtcp(data)` each RTCP one.
    """

    def __init__(
        self,
        *,
        on_rtp: Callable[[bytes, float], None],
        on_rtcp: Callable[[bytes], None],
        clock_rate: int,
    ) -> None:
        self._on_rtp = on_rtp
        self._on_rtcp = on_rtcp
        self._rtp = _Socket(self._rtp_datagram)
        self._rtcp: _Socket | None = None
        self.remote: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self._allowed_host: str | None = None
        self._latched = False
        self.srtp: Srtp | None = None
        self.stats = ReceiveStats(clock_rate)
        self.remote_report = RemoteReport()
        # told of each receiver report of the far end about our stream (metrics)
        self.on_report: Callable[[RemoteReport], None] | None = None
        self.ssrc = random.getrandbits(32)
        self.cname = f"confbridge-{self.ssrc:08x}".encode()
        self.packets_sent = 0
        self.octets_sent = 0
        self.last_rtp_ts = 0
        self.dropped = 0
        self.closed = False

    async def bind(self, host: str, port_range: tuple[int, int] | None, *, mux: bool) -> None:
        """Bind RTP (even port) and RTCP (port + 1, unless `mux`) in `port_range`."""
        for port in _candidate_ports(port_range):
            try:
                await _bind_one(host, port, self._rtp)
            except OSError:
                continue
            if self.local_port % 2:  # the kernel's choice was odd: RTP takes even ports
                self._rtp.close()
                self._rtp = _Socket(self._rtp_datagram)
                continue
            if mux:
                return
            rtcp = _Socket(self._rtcp_datagram)
            try:
                await _bind_one(host, self.local_port + 1, rtcp)
            except OSError:
                self._rtp.close()
                self._rtp = _Socket(self._rtp_datagram)
                continue
            self._rtcp = rtcp
            return
        where = f"{port_range[0]}-{port_range[1]}" if port_range else "ephemeral"
        raise NoSipPort(f"no free UDP port pair ({where}) on {host} for a SIP leg")

    @property
    def local_port(self) -> int:
        assert self._rtp.transport is not None
        return int(self._rtp.transport.get_extra_info("sockname")[1])

    @property
    def local_rtcp_port(self) -> int | None:
        if self._rtcp is None or self._rtcp.transport is None:
            return None
        return int(self._rtcp.transport.get_extra_info("sockname")[1])

    def use_mux(self) -> None:
        """The answer muxes RTCP: the separate socket is not needed."""
        if self._rtcp is not None:
            self._rtcp.close()
            self._rtcp = None

    def connect(
        self,
        remote: tuple[str, int] | None,
        remote_rtcp: tuple[str, int] | None,
        srtp: Srtp | None,
    ) -> None:
        """Where the far end's SDP says it receives, and the keys, if any."""
        self.remote, self.remote_rtcp, self.srtp = remote, remote_rtcp, srtp
        self._allowed_host = remote[0] if remote else None
        self._latched = False

    # receiving

    def _heard(self, addr: tuple[str, int]) -> bool:
        if self._latched and self.remote is not None and addr[:2] == self.remote:
            return True
        return addr[0] == self._allowed_host

    def _rtp_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.closed or not self._heard(addr):
            self.dropped += 1
            return
        if is_rtcp(data):  # muxed RTCP
            self._rtcp_datagram(data, addr)
            return
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        if self.srtp is not None:
            clear = self.srtp.unprotect(data, rtcp=False)
            if clear is None:
                self.dropped += 1
                return
            data = clear
        if not self._latched:
            # symmetric RTP: answer where the far end really sends from (its NAT's mapping)
            self.remote = (addr[0], addr[1])
            if self.remote_rtcp is None or self._rtcp is None:
                self.remote_rtcp = self.remote
            self._latched = True
        now = time.monotonic()
        seq = (data[2] << 8) | data[3]
        timestamp = int.from_bytes(data[4:8], "big")
        ssrc = int.from_bytes(data[8:12], "big")
        self.stats.update(seq, timestamp, ssrc, now)
        self._on_rtp(data, now)

    def _rtcp_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.closed or not self._heard(addr) or not is_rtcp(data):
            return
        if self.srtp is not None:
            clear = self.srtp.unprotect(data, rtcp=True)
            if clear is None:
                return
            data = clear
        if self._rtcp is not None and self._latched:
            self.remote_rtcp = (addr[0], addr[1])
        try:
            packets = RtcpPacket.parse(data)
        except ValueError:
            return
        now = time.monotonic()
        for packet in packets:
            if isinstance(packet, RtcpSrPacket):
                self.stats.last_sr = (packet.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF
                self.stats.last_sr_at = now
            if isinstance(packet, RtcpSrPacket | RtcpRrPacket):
                for report in packet.reports:
                    if report.ssrc == self.ssrc:
                        self._take_report(report)
        self._on_rtcp(data)

    def _take_report(self, report: RtcpReceiverInfo) -> None:
        rtt = None
        if report.lsr:
            middle = (ntp_now() >> 16) & 0xFFFFFFFF
            rtt = max(0, (middle - report.lsr - report.dlsr) & 0xFFFFFFFF) / 65536
        self.remote_report = RemoteReport(
            fraction_lost=report.fraction_lost / 256,
            packets_lost=report.packets_lost,
            jitter_s=report.jitter / self.stats.clock_rate,
            rtt_s=rtt if rtt is not None and rtt < 60 else None,
        )
        if self.on_report is not None:
            self.on_report(self.remote_report)

    # sending

    def send_rtp(self, packet: bytes, rtp_ts: int) -> None:
        """Send one RTP packet (protected when SRTP is on)."""
        transport = self._rtp.transport
        if self.closed or transport is None or self.remote is None:
            return
        if self.srtp is not None:
            packet = self.srtp.protect(packet, rtcp=False)
        transport.sendto(packet, self.remote)
        self.packets_sent += 1
        self.octets_sent += len(packet) - 12
        self.last_rtp_ts = rtp_ts

    def send_report(self) -> None:
        """A compound RTCP packet: SR (or RR before we sent), our report block, SDES CNAME."""
        target = self.remote_rtcp
        sock = self._rtcp if self._rtcp is not None else self._rtp
        if self.closed or sock.transport is None or target is None:
            return
        block = self.stats.report(time.monotonic())
        reports = [block] if block is not None else []
        if self.packets_sent:
            info = RtcpSenderInfo(
                ntp_timestamp=ntp_now(),
                rtp_timestamp=self.last_rtp_ts,
                packet_count=self.packets_sent & 0xFFFFFFFF,
                octet_count=self.octets_sent & 0xFFFFFFFF,
            )
            first: RtcpSrPacket | RtcpRrPacket = RtcpSrPacket(self.ssrc, info, reports)
        else:
            first = RtcpRrPacket(self.ssrc, reports)
        sdes = RtcpSdesPacket([RtcpSourceInfo(self.ssrc, [(1, self.cname)])])
        self.send_rtcp(bytes(first) + bytes(sdes))

    def send_rtcp(self, data: bytes) -> None:
        """Send one compound RTCP packet (protected when SRTP is on), e.g. PLI and FIR."""
        target = self.remote_rtcp
        sock = self._rtcp if self._rtcp is not None else self._rtp
        if self.closed or sock.transport is None or target is None:
            return
        if self.srtp is not None:
            data = self.srtp.protect(data, rtcp=True)
        sock.transport.sendto(data, target)

    def close(self) -> None:
        self.closed = True
        self._rtp.close()
        if self._rtcp is not None:
            self._rtcp.close()
