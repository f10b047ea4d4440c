"""The video half of a SIP leg: a room system's H.264 over plain RTP into the room, and the
room's programme back out, forwarded packet by packet like a WebRTC session's (nothing decoded).

- Ingress: the leg hands every video RTP packet to `SipVideo.on_rtp()`. Parameter sets are
  kept (`sfu.sip.h264.ParameterSets`) and put in front of an IDR that comes without them, then
  the packet goes into a room `Source`. The insertion happens here, before the Source, so every
  slot sees one stream with continuous numbering: the leg's incoming sequence numbers are
  shifted by one more for each packet inserted (`SeqShift`), and a viewer's slot maps them as
  it maps any publisher's. Inserting on a slot's egress instead would need a second offset per
  slot and would break the slot's `in_seq + offset` rule that keeps upstream loss a gap.
- Egress: a `Slot` whose `SipEgress` sends plain RTP through the leg's `send_rtp`, with the
  leg's negotiated payload type and our SSRC, and no header extensions unless negotiated. A
  source in a codec the leg did not negotiate (a VP8 publisher) is transcoded to H.264 for this
  leg only (`sfu.sip.video_transcode`), until the slot gets H.264 again.
- RTCP: a PLI or FIR from the room system (RFC 4585 §6.3.1, RFC 5104 §4.3.1) asks the slot's
  source for a keyframe (while transcoding, our encoder makes the IDR); a keyframe request from
  the room sends the room system both, since room systems differ in which they honour. Its
  receiver reports give the egress loss and, on our SRs (`rtcp_report()`, sent by the leg every
  RTCP_REPORT_INTERVAL_S), the round trip.

In the room a leg is one more participant (`Room.add_plain`): an ingest peer with its sources
and an egress peer with its slots, routed by the floor like any WebRTC session.
"""

from __future__ import annotations

import logging
import random
import secrets
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
)

from confbridge_kernel.contracts import PeerRole
from sfu.codecs import H264, RtpCodec
from sfu.errors import SfuError
from sfu.forwarding import SEQ_REORDER_WINDOW, Slot, Source
from sfu.room import Peer, Room
from sfu.rtc.egress import EgressStats
from sfu.rtc.sdp import NegotiatedRtp
from sfu.sip.h264 import WEBRTC_PROFILE_LEVEL_ID, ParameterSets, parse_profile_level_id
from sfu.sip.video_transcode import VideoTranscoder

log = logging.getLogger(__name__)

H264_CLOCK_RATE = 90_000
RTCP_REPORT_INTERVAL_S = 5.0
"""How often the leg should send `SipVideo.rtcp_report()` (RFC 3550 §6.2's minimum)."""
_NTP_EPOCH_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01
_SDES_CNAME = 1
_FIR_ENTRY = struct.Struct("!IB3x")  # RFC 5104 §4.3.1.1: SSRC, seq nr, reserved


class SeqShift:
    """Sequence numbers of a stream into which packets are inserted: each input number moves
    up by the count of insertions made before it, so a packet that arrives late (reordered)
    still lands on its own number, not on an inserted packet's."""

    __slots__ = ("_base", "_last_mark", "_marks", "_newest")

    def __init__(self) -> None:
        self._base = 0
        self._marks: list[int] = []  # input numbers something was inserted in front of
        self._last_mark = -1  # the latest of them
        self._newest = -1

    def insert_before(self, seq: int) -> int:
        """Make room in front of input `seq`; returns the number for the inserted packet."""
        out = self.map(seq)
        self._marks.append(seq)
        if self._last_mark < 0 or (seq - self._last_mark) & 0xFFFF < 0x8000:
            self._last_mark = seq
        return out

    def map(self, seq: int) -> int:
        """The output number of input `seq`."""
        if self._newest < 0 or (seq - self._newest) & 0xFFFF < 0x8000:
            self._newest = seq
            # marks far behind the newest packet apply to everything still to come
            while self._marks and (seq - self._marks[0]) & 0xFFFF > SEQ_REORDER_WINDOW:
                self._marks.pop(0)
                self._base += 1
        marks = self._marks
        if not marks or (seq - self._last_mark) & 0xFFFF < 0x8000:
            return (seq + self._base + len(marks)) & 0xFFFF  # after them all: most packets
        offset = self._base + sum(1 for m in marks if (seq - m) & 0xFFFF < 0x8000)
        return (seq + offset) & 0xFFFF


class IncomingStream:
    """Reception of the room system's stream as RFC 3550 §6.4.1 and A.3, A.8 count it: loss
    from sequence numbers, interarrival jitter, and its last SR, for our receiver reports."""

    __slots__ = (
        "_expected_prior",
        "_first_seq",
        "_highest",
        "_received_prior",
        "_sr_at",
        "_sr_lsr",
        "_transit",
        "jitter",
        "received",
    )

    def __init__(self) -> None:
        self.received = 0
        self.jitter = 0.0  # in RTP timestamp units
        self._first_seq = -1
        self._highest = -1  # extended (with wraps) highest sequence number received
        self._transit: float | None = None
        self._expected_prior = 0
        self._received_prior = 0
        self._sr_lsr = 0
        self._sr_at = 0.0

    @property
    def expected(self) -> int:
        return self._highest - self._first_seq + 1 if self._first_seq >= 0 else 0

    @property
    def lost(self) -> int:
        return max(self.expected - self.received, 0)

    def count(self, packet: RtpPacket, now: float) -> None:
        self.received += 1
        transit = now * H264_CLOCK_RATE - packet.timestamp
        if self._transit is not None:
            self.jitter += (abs(transit - self._transit) - self.jitter) / 16
        self._transit = transit
        seq = packet.sequence_number
        if self._first_seq < 0:
            self._first_seq = self._highest = seq
            return
        step = (seq - self._highest) & 0xFFFF
        if 0 < step < 0x8000:
            self._highest += step

    def sender_report(self, ntp_timestamp: int, now: float) -> None:
        self._sr_lsr, self._sr_at = (ntp_timestamp >> 16) & 0xFFFFFFFF, now

    def block(self, ssrc: int, now: float) -> RtcpReceiverInfo:
        """A report block about this stream, since the previous one."""
        expected, received = self.expected, self.received
        expected_interval = expected - self._expected_prior
        lost_interval = expected_interval - (received - self._received_prior)
        self._expected_prior, self._received_prior = expected, received
        fraction = (lost_interval << 8) // expected_interval if lost_interval > 0 else 0
        return RtcpReceiverInfo(
            ssrc=ssrc,
            fraction_lost=min(fraction, 255),
            packets_lost=min(self.lost, 0x7FFFFF),
            highest_sequence=self._highest & 0xFFFFFFFF,
            jitter=int(self.jitter),
            lsr=self._sr_lsr,
            dlsr=int((now - self._sr_at) * 65536) if self._sr_lsr else 0,
        )


@dataclass(frozen=True)
class SipVideoStats:
    """Counters of a leg's video, each way, with the room system's last receiver report."""

    packets_received: int
    bytes_received: int
    packets_lost: int
    """Incoming packets never received (from sequence numbers)."""
    parameter_sets_inserted: int
    keyframe_requests_sent: int
    packets_sent: int
    bytes_sent: int
    keyframe_requests_received: int
    fraction_lost: float | None
    """What the room system last reported of our stream (0..1), None before its first RR."""
    remote_packets_lost: int | None
    jitter_s: float | None
    rtt_s: float | None
    """From the room system's report on our last SR; None before."""


class SipEgress:
    """A `SlotEgress` that sends plain RTP to the room system through the leg's socket."""

    def __init__(
        self,
        send_rtp: Callable[[bytes], object],
        ssrc: int,
        codec: RtpCodec,
        header_extensions: Mapping[str, int] | None = None,
        *,
        label: str = "SIP",
    ) -> None:
        self.kind = "video"
        self.label = label
        self.ssrc = ssrc
        self.params = NegotiatedRtp(
            kind="video", mid=None, codecs=(codec,), header_extensions=header_extensions or {}
        )
        self.clock_rate = codec.clock_rate
        self.on_keyframe_request: Callable[[], None] = lambda: None
        self._send_rtp = send_rtp
        self._packets = 0
        self._bytes = 0
        self._keyframe_requests = 0
        self._closed = False
        self._last_ts = 0
        self._last_at: float | None = None
        self._sr_lsr = -1  # the middle 32 bits of our last SR's NTP time, for the RTT
        self._sr_sent_at = 0.0
        self.rtt_s: float | None = None
        self.report: RtcpReceiverInfo | None = None
        """The room system's last report about our stream."""
        self.transcoder: VideoTranscoder | None = None
        """The slot's transcoder while its source is in a codec we did not negotiate."""
        self.transcoders_started = 0

    @property
    def ready(self) -> bool:
        return not self._closed

    def send(self, header: bytes, payload: bytes, seq: int, rtp_ts: int, now: float) -> bool:
        if self._closed:
            return False
        self._send_rtp(header + payload)
        self._packets += 1
        self._bytes += len(payload)
        self._last_ts, self._last_at = rtp_ts, now
        return True

    def sender_info(self, now: float, ntp: int) -> RtcpSenderInfo | None:
        """What an SR says of our stream at `now` (`time.monotonic()`), None before any
        packet; remembers the SR for the RTT its answer gives."""
        if self._last_at is None:
            return None
        elapsed = round(max(now - self._last_at, 0.0) * self.clock_rate)
        self._sr_lsr, self._sr_sent_at = (ntp >> 16) & 0xFFFFFFFF, now
        return RtcpSenderInfo(
            ntp_timestamp=ntp,
            rtp_timestamp=(self._last_ts + elapsed) & 0xFFFFFFFF,
            packet_count=self._packets & 0xFFFFFFFF,
            octet_count=self._bytes & 0xFFFFFFFF,
        )

    def reported(self, report: RtcpReceiverInfo, now: float) -> None:
        """The room system's receiver report about our stream (RFC 3550 §6.4.1 for RTT)."""
        self.report = report
        if report.lsr and report.lsr == self._sr_lsr:
            rtt = now - self._sr_sent_at - report.dlsr / 65536
            if rtt >= 0:
                self.rtt_s = rtt

    def keyframe_requested(self) -> None:
        self._keyframe_requests += 1
        transcoder = self.transcoder
        if transcoder is not None and not transcoder.closed:
            transcoder.force_keyframe()  # our encoder makes the IDR; the source needn't
        else:
            self.on_keyframe_request()

    def transcoder_for(self, codec: RtpCodec, slot: Slot) -> VideoTranscoder | None:
        """A transcoder to our H.264 for the slot's source in `codec`, which the room system did
        not negotiate (the slot's `SlotTranscoder` hook); None if aiortc cannot decode it."""
        if self._closed or not VideoTranscoder.can_decode(codec):
            return None
        sent = self.params.codecs[0]
        self.transcoder = VideoTranscoder(
            codec,
            slot,
            payload_type=sent.payload_type,
            profile_level_id=str(sent.parameters.get("profile-level-id", WEBRTC_PROFILE_LEVEL_ID)),
            label=self.label,
        )
        self.transcoders_started += 1
        log.info("%s: transcoding %s to H.264", self.label, codec.mime_type)
        return self.transcoder

    def stats(self) -> EgressStats:
        return EgressStats.plain(
            packets_sent=self._packets,
            bytes_sent=self._bytes,
            keyframe_requests_received=self._keyframe_requests,
            report=self.report,
            clock_rate=self.clock_rate,
            rtt_s=self.rtt_s,
        )

    def close(self) -> None:
        self._closed = True
        if self.transcoder is not None:
            self.transcoder.close()


class SipVideo:
    """The video of one SIP leg: a room `Source` fed by the room system, a `Slot` sent to it.

    `send_rtp` and `send_rtcp` send one datagram to the room system (the leg's RTP and RTCP
    sockets, or the same one with rtcp-mux). `payload_type` and `profile_level_id` are the
    H.264 format the leg negotiated (packetization-mode 1), as our SDP numbers it (what we
    receive); `remote_payload_type` is its number in the room system's SDP, which we send with,
    if it differs (RFC 3264 §6.1 only says SHOULD be the same). `header_extensions` are those
    negotiated (URI → id; only mid and abs-send-time are ever written); none by default.
    `sprop_parameter_sets` is the room system's fmtp value of that name, if its SDP had one.
    `ssrc` is ours (random if None); `remote_ssrc` is the room system's from its SDP, or None
    to learn it from its packets (and follow it when it changes, as after a re-INVITE).
    """

    def __init__(
        self,
        *,
        send_rtp: Callable[[bytes], object],
        send_rtcp: Callable[[bytes], object],
        payload_type: int,
        profile_level_id: str = WEBRTC_PROFILE_LEVEL_ID,
        remote_payload_type: int | None = None,
        header_extensions: Mapping[str, int] | None = None,
        sprop_parameter_sets: str | None = None,
        ssrc: int | None = None,
        remote_ssrc: int | None = None,
        label: str = "SIP",
    ) -> None:
        for pt in (payload_type, remote_payload_type):
            if pt is not None and not 96 <= pt <= 127:
                raise ValueError(f"H.264 needs a dynamic payload type (96-127), not {pt}")
        parse_profile_level_id(profile_level_id)  # refuses a malformed one now, not per packet
        parameters = {"packetization-mode": "1", "profile-level-id": profile_level_id.lower()}
        self.codec = RtpCodec(H264, H264_CLOCK_RATE, payload_type, parameters=parameters)
        """The format the room system sends us (what the room's viewers receive)."""
        sent = RtpCodec(
            H264, H264_CLOCK_RATE, remote_payload_type or payload_type, parameters=parameters
        )
        self.ssrc = ssrc if ssrc is not None else random.getrandbits(32)
        self.remote_ssrc = remote_ssrc
        self._learn_ssrc = remote_ssrc is None
        self._send_rtcp = send_rtcp
        self.source = Source("video", [self.codec], send_pli=self._request_keyframe, label=label)
        self.egress = SipEgress(send_rtp, self.ssrc, sent, header_extensions or {}, label=label)
        self.slot = Slot(self.egress, label=label)
        self.parameter_sets = ParameterSets()
        if sprop_parameter_sets:
            self.parameter_sets.seed(sprop_parameter_sets)
        self._shift = SeqShift()
        self._fir_seq = 0
        self._last_fir_seq: int | None = None
        self._received = 0
        self._bytes = 0
        self.incoming = IncomingStream()  # of the current SSRC
        self._cname = secrets.token_hex(8).encode()
        self._room: Room | None = None
        self.peers: list[Peer] = []
        """The room's view of this leg while attached (see `attach`)."""

    # ingress ------------------------------------------------------------------------------------

    def on_rtp(self, packet: RtpPacket) -> None:
        """One RTP packet of the room system's video (the leg demultiplexes audio itself).

        The packet is the leg's no more: its sequence number is rewritten (`SeqShift`)."""
        if packet.payload_type != self.codec.payload_type:
            return
        if packet.ssrc != self.remote_ssrc:
            if not self._learn_ssrc and self.remote_ssrc is not None:
                return  # not the stream the SDP named
            if self.remote_ssrc is not None:
                log.info("%s: the room system's video SSRC changed", self.source.label)
            self.remote_ssrc = packet.ssrc
            self._shift = SeqShift()
            self.incoming = IncomingStream()
        self._received += 1
        self._bytes += len(packet.payload)
        self.incoming.count(packet, time.monotonic())
        inserted = self.parameter_sets.observe(packet.payload, packet.timestamp)
        if inserted is not None:
            self.source.push(
                RtpPacket(
                    payload_type=packet.payload_type,
                    sequence_number=self._shift.insert_before(packet.sequence_number),
                    timestamp=packet.timestamp,
                    ssrc=packet.ssrc,
                    payload=inserted,
                )
            )
        packet.sequence_number = self._shift.map(packet.sequence_number)
        self.source.push(packet)

    # RTCP ---------------------------------------------------------------------------------------

    def on_rtcp(self, packets: Iterable[RtcpPacket]) -> None:
        """RTCP from the room system (parsed with `aiortc.rtp.RtcpPacket.parse`)."""
        for packet in packets:
            if isinstance(packet, RtcpPsfbPacket):
                pli = packet.fmt == RTCP_PSFB_PLI and packet.media_ssrc in (self.ssrc, 0)
                if pli or (packet.fmt == RTCP_PSFB_FIR and self._new_fir(packet.fci)):
                    self.egress.keyframe_requested()
            elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
                now = time.monotonic()
                if isinstance(packet, RtcpSrPacket) and packet.ssrc == self.remote_ssrc:
                    self.incoming.sender_report(packet.sender_info.ntp_timestamp, now)
                for report in packet.reports:
                    if report.ssrc == self.ssrc:
                        self.egress.reported(report, now)

    def rtcp_report(self) -> bytes:
        """Our compound report for the room system, to send every RTCP_REPORT_INTERVAL_S: an
        SR once we send (an RR before), a block about its stream once it sends, our CNAME."""
        now = time.monotonic()
        ntp = int((time.time() + _NTP_EPOCH_OFFSET_S) * (1 << 32))
        blocks = []
        if self.remote_ssrc is not None and self.incoming.received:
            blocks.append(self.incoming.block(self.remote_ssrc, now))
        info = self.egress.sender_info(now, ntp)
        report: RtcpSrPacket | RtcpRrPacket = (
            RtcpSrPacket(ssrc=self.ssrc, sender_info=info, reports=blocks)
            if info is not None
            else RtcpRrPacket(ssrc=self.ssrc, reports=blocks)
        )
        sdes = RtcpSdesPacket(
            chunks=[RtcpSourceInfo(ssrc=self.ssrc, items=[(_SDES_CNAME, self._cname)])]
        )
        return bytes(report) + bytes(sdes)

    def _new_fir(self, fci: bytes) -> bool:
        """True if an FCI entry names our SSRC with a new sequence number (RFC 5104 §4.3.1.2:
        a repeated number is a retransmission of a request already served)."""
        for pos in range(0, len(fci) - _FIR_ENTRY.size + 1, _FIR_ENTRY.size):
            ssrc, seq = _FIR_ENTRY.unpack_from(fci, pos)
            if ssrc == self.ssrc:
                if seq == self._last_fir_seq:
                    return False
                self._last_fir_seq = seq
                return True
        return False

    def _request_keyframe(self) -> bool:
        """Ask the room system for an IDR with both PLI and FIR, in one compound packet."""
        if self.remote_ssrc is None:
            return False  # nothing received yet: a request would name no stream
        self._fir_seq = (self._fir_seq + 1) & 0xFF
        fir = _FIR_ENTRY.pack(self.remote_ssrc, self._fir_seq)
        compound = (
            bytes(RtcpRrPacket(ssrc=self.ssrc))  # RFC 3550 §6.1: a compound starts with a report
            + bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.ssrc, media_ssrc=self.remote_ssrc))
            + bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=self.ssrc, media_ssrc=0, fci=fir))
        )
        self._send_rtcp(compound)
        return True

    # the room -----------------------------------------------------------------------------------

    def attach(
        self,
        room: Room,
        site_id: int,
        *,
        site_name: str,
        peer_id: str,
        role: PeerRole = PeerRole.site,
        audio_source: Source | None = None,
        audio_slots: Sequence[Slot] = (),
    ) -> list[Peer]:
        """Join `room` as `site_id`: our source publishes, our slot shows what the floor gives
        the site; the leg's audio source and slots, if given, join with them. The room is
        flagged to ask WebRTC publishers for H.264 from now on. Returns the room's peers for
        the leg (for events and stats)."""
        if self._room is not None:
            raise RuntimeError("the leg's video is in a room already; detach it first")
        if room.closed:
            raise SfuError(409, f"room {room.name} is closed")
        room.prefer_h264()
        sources = {"video": self.source}
        if audio_source is not None:
            sources["audio"] = audio_source
        self.peers = room.add_plain(
            peer_id=peer_id,
            site_id=site_id,
            site_name=site_name,
            role=role,
            sources=sources,
            video_slots=[self.slot],
            audio_slots=audio_slots,
        )
        self._room = room
        return self.peers

    def detach(self) -> None:
        """Leave the room (the leg goes on: back to a lobby, or to close)."""
        room, self._room = self._room, None
        if room is not None:
            for peer in self.peers:
                room.remove(peer)
        self.peers = []
        if not self.slot.closed:
            self.slot.switch_to(None)
        if self.egress.transcoder is not None:
            self.egress.transcoder.close()  # a slot switched to nobody keeps it otherwise

    def close(self) -> None:
        """Leave the room and stop both ways."""
        self.detach()
        self.slot.close()
        self.source.close()

    def stats(self) -> SipVideoStats:
        """A snapshot of both directions' counters."""
        egress = self.egress.stats()
        return SipVideoStats(
            packets_received=self._received,
            bytes_received=self._bytes,
            packets_lost=self.incoming.lost,
            parameter_sets_inserted=self.parameter_sets.inserted,
            keyframe_requests_sent=self.source.stats().keyframe_requests_sent,
            packets_sent=egress.packets_sent,
            bytes_sent=egress.bytes_sent,
            keyframe_requests_received=egress.keyframe_requests_received,
            fraction_lost=egress.fraction_lost,
            remote_packets_lost=egress.packets_lost,
            jitter_s=egress.jitter_s,
            rtt_s=egress.rtt_s,
        )
