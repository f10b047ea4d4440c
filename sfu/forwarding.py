"""Packet-level forwarding: a publisher's `Source` feeds viewers' `Slot`s, nothing is decoded.

A **Source** is one incoming track of a publisher. A **Slot** is one outgoing track of a viewer,
fed by at most one Source at a time and switched with `Slot.switch_to()` without renegotiation:
a video slot keeps forwarding its current source until the new one sends a keyframe (asked for
with PLI), then carries on with the same SSRC, sequence numbers and timestamps following on; an
audio slot switches at the next packet.

Per forwarded packet and viewer the work is: two integer mappings (sequence number, timestamp),
one `struct` pack for the header, then in `RtpEgress` SRTP (header and payload copied once, into
libsrtp's buffer or the sendmmsg slot they leave from) and the send. The publisher's packet is
parsed once, by aiortc, for all viewers; payload bytes are never modified, and no task or
coroutine is created per packet.

Sequence numbers map as `in_seq + offset`, so a packet lost upstream stays a gap the viewer can
NACK, and its repair (the SFU NACKs the publisher itself) fills that gap when it arrives.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from struct import Struct
from typing import Protocol

from aiortc import RTCRtpTransceiver
from aiortc.rtp import RtpPacket

from sfu.codecs import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    RtpCodec,
    is_keyframe,
    match_codec,
)
from sfu.keyframes import PLI_MIN_INTERVAL_S, keyframe_interval_s
from sfu.rtc.egress import (
    EGRESS_HISTORY_SIZE,
    EGRESS_MAX_WRITE_BUFFER_BYTES,
    EgressStats,
    RtpEgress,
)
from sfu.rtc.ingest import RtpIngest
from sfu.rtc.sdp import NegotiatedRtp, negotiated_rtp

log = logging.getLogger(__name__)

SEQ_REORDER_WINDOW = 0x2000
"""Packets at least this far behind the newest of a segment are still forwarded (late repairs);
older ones from before the segment's first packet (a switch, a resync) are dropped."""

_ABS_SEND_TIME_UNITS_PER_S = 1 << 18  # 6.18 fixed point seconds
_ONE_BYTE_EXTENSION_PROFILE = 0xBEDE  # RFC 8285 §4.2
_ONE_BYTE_MAX_ID = 14
_MAX_SEQ_STEP = 0x8000

_monotonic = time.monotonic


class SlotEgress(Protocol):
    """What a `Slot` needs from the transport side (`RtpEgress` in production)."""

    kind: str
    ssrc: int
    params: NegotiatedRtp
    clock_rate: int
    on_keyframe_request: Callable[[], None]

    @property
    def ready(self) -> bool:
        """True once packets can reach the viewer."""

    def send(self, header: bytes, payload: bytes, seq: int, rtp_ts: int, now: float) -> bool:
        """Send one packet; False if it was dropped."""

    def stats(self) -> EgressStats:
        """Counters and the viewer's last report."""

    def close(self) -> None:
        """Stop sending."""


class SlotTranscoder(Protocol):
    """Re-encodes a source for a viewer without its codec (an egress's `transcoder_for()`)."""

    def feed(self, packet: RtpPacket) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceStats:
    """Counters of one publisher track."""

    packets_received: int
    bytes_received: int
    packets_dropped_muted: int
    packets_lost: int
    jitter_s: float
    nacks_sent: int
    keyframe_requests_sent: int
    bandwidth_reports_sent: int
    slots: int


@dataclass(frozen=True)
class SlotStats:
    """Counters of one viewer track, with what the viewer last reported (RR)."""

    packets_sent: int
    bytes_sent: int
    packets_dropped: int
    packets_retransmitted: int
    keyframe_requests_received: int
    switches: int
    rtt_s: float | None
    fraction_lost: float | None
    packets_lost: int | None
    jitter_s: float | None


class Source:
    """One incoming track of a publisher, fanned out to the slots it feeds.

    Build it with `Source.attach(transceiver)` from a WHIP peer's transceiver, or directly with
    the negotiated codecs and feed it with `push()` (tests). Muted sources forward nothing.
    """

    __slots__ = (
        "_abs_base",
        "_bytes",
        "_closed",
        "_codec",
        "_codecs_by_pt",
        "_dropped_muted",
        "_fanout",
        "_ingest",
        "_keyframe_requests",
        "_last_pli_at",
        "_muted",
        "_packets",
        "_pt",
        "_send_pli",
        "_ssrc",
        "_waiting",
        "audio_level_at",
        "audio_level_dbov",
        "kind",
        "label",
        "last_packet_at",
        "voice_activity",
    )

    def __init__(
        self,
        kind: str,
        codecs: Sequence[RtpCodec],
        *,
        send_pli: Callable[[], bool] | None = None,
        label: str = "",
    ) -> None:
        if kind not in ("audio", "video"):
            raise ValueError(f"unknown media kind {kind!r}")
        if not codecs:
            raise ValueError("a source needs at least one negotiated codec")
        self.kind = kind
        self.label = label
        self._codecs_by_pt = {codec.payload_type: codec for codec in codecs}
        self._codec = codecs[0]
        self._pt = -1
        self._ssrc = -1
        self._send_pli = send_pli
        self._ingest: RtpIngest | None = None
        self._fanout: tuple[Slot, ...] = ()
        self._waiting: list[Slot] = []
        self._muted = False
        self._closed = False
        self._last_pli_at = -PLI_MIN_INTERVAL_S
        self._abs_base = time.time() - _monotonic()
        self._packets = 0
        self._bytes = 0
        self._dropped_muted = 0
        self._keyframe_requests = 0
        self.last_packet_at: float | None = None
        """`time.monotonic()` when the last packet arrived."""
        self.audio_level_dbov: int | None = None
        """Last audio level from the publisher (RFC 6464, -127..0 dBov), None if never sent."""
        self.voice_activity: bool | None = None
        """The V flag that came with `audio_level_dbov`."""
        self.audio_level_at: float | None = None
        """`time.monotonic()` when `audio_level_dbov` was received."""

    @classmethod
    def attach(cls, transceiver: RTCRtpTransceiver, *, label: str = "", max_bps: int = 0) -> Source:
        """A source fed by the receiver of this (negotiated) transceiver, without decoding.

        Call it once the remote description is applied, e.g. from the peer connection's
        `track` event; its packets go to `push()` from then on, REMB at most `max_bps` back.
        """
        params = negotiated_rtp(transceiver)
        source = cls(params.kind, params.codecs, label=label)
        ingest = RtpIngest(transceiver, source.push, max_bitrate_bps=max_bps or None)
        source._ingest, source._send_pli = ingest, ingest.send_pli
        return source

    def __repr__(self) -> str:
        return f"Source({self.kind}, {self.label!r}, slots={len(self._fanout)})"

    @property
    def codec(self) -> RtpCodec:
        """The format of the packets being received (the first negotiated one before any)."""
        return self._codec

    @property
    def codecs(self) -> tuple[RtpCodec, ...]:
        """Every negotiated format, by payload type."""
        return tuple(self._codecs_by_pt.values())

    @property
    def clock_rate(self) -> int:
        """RTP clock rate of `codec`, in Hz."""
        return self._codec.clock_rate

    @property
    def closed(self) -> bool:
        """True after `close()`."""
        return self._closed

    @property
    def muted(self) -> bool:
        """While True, nothing from this source is forwarded."""
        return self._muted

    @muted.setter
    def muted(self, muted: bool) -> None:
        if muted == self._muted:
            return
        self._muted = muted
        if not muted and self._fanout:
            # restart slots at the next keyframe, numbered on: a muted stretch is no gap to repair
            self._resync_fanout()

    @property
    def slots(self) -> tuple[Slot, ...]:
        """The slots this source is feeding now."""
        return self._fanout

    def stats(self) -> SourceStats:
        """A snapshot of the counters."""
        ingest = self._ingest.stats() if self._ingest is not None else None
        return SourceStats(
            packets_received=self._packets,
            bytes_received=self._bytes,
            packets_dropped_muted=self._dropped_muted,
            packets_lost=ingest.packets_lost if ingest else 0,
            jitter_s=ingest.jitter_s if ingest else 0.0,
            nacks_sent=ingest.nacks_sent if ingest else 0,
            keyframe_requests_sent=self._keyframe_requests,
            bandwidth_reports_sent=ingest.rembs_sent if ingest else 0,
            slots=len(self._fanout),
        )

    def request_keyframe(self) -> bool:
        """Ask the publisher for a keyframe (video only), at most once per PLI_MIN_INTERVAL_S,
        or per PLI_WIDE_INTERVAL_S while it feeds PLI_WIDE_FANOUT slots or more.

        Returns True if a request went out now.
        """
        if self.kind != "video" or self._closed or self._send_pli is None:
            return False
        now = _monotonic()
        if now - self._last_pli_at < keyframe_interval_s(len(self._fanout) + len(self._waiting)):
            return False
        if not self._send_pli():
            return False
        self._last_pli_at = now
        self._keyframe_requests += 1
        return True

    def push(self, packet: RtpPacket) -> None:
        """Forward one received RTP packet (RTX already unwrapped) to every slot it feeds."""
        now = _monotonic()
        self._packets += 1
        self._bytes += len(packet.payload)
        self.last_packet_at = now
        level = -1
        audio_level = packet.extensions.audio_level
        if audio_level is not None:
            vad, value = audio_level
            self.audio_level_dbov = -value
            self.voice_activity = vad
            self.audio_level_at = now
            level = (0x80 if vad else 0) | (value & 0x7F)
        if self._muted:
            self._dropped_muted += 1
            return
        if (
            packet.ssrc != self._ssrc or packet.payload_type != self._pt
        ) and not self._stream_changed(packet):
            return
        abs24 = int((now + self._abs_base) * _ABS_SEND_TIME_UNITS_PER_S) & 0xFFFFFF
        for slot in self._fanout:
            slot._forward(packet, abs24, level, now)
        if self._waiting:
            self._serve_waiting(packet, abs24, level, now)

    def close(self) -> None:
        """Stop forwarding; the slots it fed go quiet until switched elsewhere."""
        if self._closed:
            return
        self._closed = True
        fanout, waiting = self._fanout, self._waiting
        self._fanout = ()
        self._waiting = []
        for slot in (*fanout, *waiting):
            slot._source_closed(self)
        if self._ingest is not None:
            self._ingest.close()
            self._ingest = None
        self._send_pli = None

    # internals of the forwarding tree

    def _stream_changed(self, packet: RtpPacket) -> bool:
        codec = self._codecs_by_pt.get(packet.payload_type)
        if codec is None:
            return False
        restarted = self._ssrc != -1 and (
            packet.ssrc != self._ssrc or codec.name != self._codec.name
        )
        self._ssrc = packet.ssrc
        self._pt = packet.payload_type
        self._codec = codec
        if restarted and self._fanout:
            # a new SSRC or format restarts numbering upstream: re-align at a keyframe
            self._resync_fanout()
        return True

    def _resync_fanout(self) -> None:
        slots = self._fanout
        self._fanout = ()
        self._waiting.extend(slots)
        self.request_keyframe()

    def _serve_waiting(self, packet: RtpPacket, abs24: int, level: int, now: float) -> None:
        if self.kind == "video" and not is_keyframe(self._codec.mime_type, packet.payload):
            if any(slot._egress.ready for slot in self._waiting):
                self.request_keyframe()
            return
        for slot in tuple(self._waiting):
            slot._activate(self, packet, abs24, level, now)

    def _add_fanout(self, slot: Slot) -> None:
        if slot not in self._fanout:
            self._fanout = (*self._fanout, slot)

    def _remove_fanout(self, slot: Slot) -> None:
        if slot in self._fanout:
            self._fanout = tuple(s for s in self._fanout if s is not slot)

    def _remove_waiting(self, slot: Slot) -> None:
        if slot in self._waiting:
            self._waiting.remove(slot)


HeaderBuilder = Callable[[int, int, int, int, int], bytes]
"""(marker/payload-type byte, sequence number, timestamp, abs-send-time, audio level) → header."""


def header_builder(ssrc: int, params: NegotiatedRtp) -> HeaderBuilder:
    """A function that packs one viewer's RTP headers with a precomputed `struct` layout.

    Writes only the header extensions the viewer negotiated among mid, abs-send-time (video) and
    ssrc-audio-level (audio, when the publisher sent a level; `level` < 0 means none), in the
    one-byte form of RFC 8285; ids above 14 are left out. Other extensions are dropped.
    """
    ids = params.header_extensions
    mid_id = ids.get(EXT_MID, 0)
    abs_id = ids.get(EXT_ABS_SEND_TIME, 0) if params.kind == "video" else 0
    level_id = ids.get(EXT_AUDIO_LEVEL, 0) if params.kind == "audio" else 0
    mid = (params.mid or "").encode()
    static = b""
    if 0 < mid_id <= _ONE_BYTE_MAX_ID and 0 < len(mid) <= 16:
        static = bytes(((mid_id << 4) | (len(mid) - 1),)) + mid
    abs_tag = ((abs_id << 4) | 2) << 24 if 0 < abs_id <= _ONE_BYTE_MAX_ID else -1
    level_tag = (level_id << 4) << 8 if 0 < level_id <= _ONE_BYTE_MAX_ID else -1
    profile = _ONE_BYTE_EXTENSION_PROFILE

    def layout(with_abs: bool, with_level: bool) -> tuple[Callable[..., bytes], int]:
        body = len(static) + (4 if with_abs else 0) + (2 if with_level else 0)
        if not body:
            return Struct("!BBHII").pack, 0
        words = (body + 3) // 4
        fmt = "!BBHIIHH" + (f"{len(static)}s" if static else "")
        fmt += ("I" if with_abs else "") + ("H" if with_level else "")
        fmt += "x" * (words * 4 - body)
        return Struct(fmt).pack, words

    plain, words = layout(abs_tag >= 0, False)
    # One closure per layout, so the per-packet call passes a fixed argument list.
    if abs_tag >= 0 and static:

        def build(b1: int, seq: int, ts: int, abs24: int, level: int) -> bytes:
            return plain(0x90, b1, seq, ts, ssrc, profile, words, static, abs_tag | abs24)

    elif abs_tag >= 0:

        def build(b1: int, seq: int, ts: int, abs24: int, level: int) -> bytes:
            return plain(0x90, b1, seq, ts, ssrc, profile, words, abs_tag | abs24)

    elif level_tag >= 0:
        leveled, level_words = layout(False, True)
        if static:

            def build(b1: int, seq: int, ts: int, abs24: int, level: int) -> bytes:
                if level < 0:
                    return plain(0x90, b1, seq, ts, ssrc, profile, words, static)
                return leveled(
                    0x90, b1, seq, ts, ssrc, profile, level_words, static, level_tag | level
                )

        else:

            def build(b1: int, seq: int, ts: int, abs24: int, level: int) -> bytes:
                if level < 0:
                    return plain(0x80, b1, seq, ts, ssrc)
                return leveled(0x90, b1, seq, ts, ssrc, profile, level_words, level_tag | level)

    elif static:

        def build(b1: int, seq: int, ts: int, abs24: int, level: int) -> bytes:
            return plain(0x90, b1, seq, ts, ssrc, profile, words, static)

    else:

        def build(b1: int, seq: int, ts: int, abs24: int, level: int) -> bytes:
            return plain(0x80, b1, seq, ts, ssrc)

    return build


class Slot:
    """One outgoing track of a viewer: its own SSRC and numbering, fed by one source at a time.

    Build it with `Slot.attach(transceiver)` from a WHEP peer's transceiver (after the remote
    description is applied), or with any `SlotEgress` (tests). A new slot stays silent until
    `switch_to()` gives it a source.
    """

    __slots__ = (
        "_build",
        "_closed",
        "_dropped",
        "_egress",
        "_feeding",
        "_in_pt",
        "_last_at",
        "_last_ts",
        "_max_seq",
        "_out_pt",
        "_seg_start",
        "_seq_offset",
        "_switches",
        "_target",
        "_transcoder",
        "_ts_offset",
        "_viewer_codecs",
        "kind",
        "label",
    )

    def __init__(self, egress: SlotEgress, *, label: str = "") -> None:
        self.kind = egress.kind
        self.label = label
        self._egress = egress
        self._viewer_codecs = egress.params.codecs
        self._build = header_builder(egress.ssrc, egress.params)
        self._feeding: Source | None = None
        self._target: Source | None = None
        self._closed = False
        self._in_pt = -1
        self._out_pt = -1
        self._seq_offset = 0
        self._ts_offset = 0
        self._seg_start = 0
        # start numbering in the lower half, as aiortc does, to stay clear of SRTP rollover
        self._max_seq = random.randint(0, 0x7FFF)
        self._last_ts = random.getrandbits(32)
        self._last_at: float | None = None
        self._dropped = 0
        self._switches = 0
        self._transcoder: SlotTranscoder | None = None
        egress.on_keyframe_request = self._on_viewer_keyframe_request

    @classmethod
    def attach(
        cls,
        transceiver: RTCRtpTransceiver,
        *,
        label: str = "",
        history_size: int = EGRESS_HISTORY_SIZE,
        max_write_buffer_bytes: int = EGRESS_MAX_WRITE_BUFFER_BYTES,
    ) -> Slot:
        """A slot sending on this transceiver's sender (set to send, with a parked track)."""
        egress = RtpEgress(
            transceiver, history_size=history_size, max_write_buffer_bytes=max_write_buffer_bytes
        )
        return cls(egress, label=label)

    def __repr__(self) -> str:
        return f"Slot({self.kind}, {self.label!r}, source={self._target!r})"

    @property
    def ssrc(self) -> int:
        """The SSRC the viewer receives on, whichever source feeds it."""
        return self._egress.ssrc

    @property
    def source(self) -> Source | None:
        """The source chosen by the last `switch_to()`."""
        return self._target

    @property
    def active_source(self) -> Source | None:
        """The source whose packets the viewer receives now (the previous one while a video
        switch waits for a keyframe)."""
        return self._feeding

    @property
    def waiting_for_keyframe(self) -> bool:
        """True while a switch waits for the chosen source's keyframe (or first audio packet)."""
        return self._target is not None and self in self._target._waiting

    @property
    def closed(self) -> bool:
        """True after `close()`."""
        return self._closed

    def stats(self) -> SlotStats:
        """A snapshot of the counters and of the viewer's last receiver report."""
        egress = self._egress.stats()
        return SlotStats(
            packets_sent=egress.packets_sent,
            bytes_sent=egress.bytes_sent,
            packets_dropped=egress.packets_dropped + self._dropped,
            packets_retransmitted=egress.packets_retransmitted,
            keyframe_requests_received=egress.keyframe_requests_received,
            switches=self._switches,
            rtt_s=egress.rtt_s,
            fraction_lost=egress.fraction_lost,
            packets_lost=egress.packets_lost,
            jitter_s=egress.jitter_s,
        )

    def switch_to(self, source: Source | None, *, skip: int = 0) -> None:
        """Feed this slot from `source` (None: stop sending), without renegotiation.

        Video keeps forwarding the current source until `source` sends a keyframe, which is
        requested now; audio changes at `source`'s next packet. `skip`: number it that far on.
        """
        if self._closed:
            raise RuntimeError("the slot is closed")
        if source is not None:
            if source.kind != self.kind:
                raise ValueError(f"cannot feed a {self.kind} slot from a {source.kind} source")
            if source.closed:
                raise ValueError("the source is closed")
        if source is self._target:
            return
        previous = self._target
        if previous is not None:
            previous._remove_waiting(self)
        self._target = source
        if source is None or self.kind == "audio":
            self._leave_feeding()
        if source is None or (source is self._feeding and self in source._fanout):
            return
        self._max_seq = (self._max_seq + skip) & 0xFFFF
        source._waiting.append(self)
        if self._egress.ready:
            source.request_keyframe()

    def request_keyframe(self) -> bool:
        """Ask the chosen source for a keyframe (rate-limited by the source)."""
        source = self._target
        return source.request_keyframe() if source is not None else False

    def close(self) -> None:
        """Stop forwarding to this viewer and release the sender's hooks."""
        if self._closed:
            return
        self._closed = True
        if self._target is not None:
            self._target._remove_waiting(self)
        self._leave_feeding()
        self._target = None
        self._egress.close()

    # the per-packet path

    def _forward(self, packet: RtpPacket, abs24: int, level: int, now: float) -> None:
        in_seq = packet.sequence_number
        behind = (in_seq - self._seg_start) & 0xFFFF
        if behind >= _MAX_SEQ_STEP:
            # older than the packet this segment started with: it belongs to no segment
            self._dropped += 1
            return
        if behind > 2 * SEQ_REORDER_WINDOW:
            self._seg_start = (in_seq - SEQ_REORDER_WINDOW) & 0xFFFF
        if packet.payload_type != self._in_pt:
            self._map_payload_type(packet.payload_type)
        out_pt = self._out_pt
        if out_pt < 0:
            if self._transcoder is not None:
                return self._transcoder.feed(packet)
            self._dropped += 1
            return
        seq = (in_seq + self._seq_offset) & 0xFFFF
        ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        if (seq - self._max_seq) & 0xFFFF < _MAX_SEQ_STEP:
            self._max_seq = seq
            self._last_ts = ts
            self._last_at = now
        payload = packet.payload
        header = self._build((packet.marker << 7) | out_pt, seq, ts, abs24, level)
        if not payload and packet.padding_size:
            # padding-only packet (bandwidth probe): keep it, so its number is no gap
            header = bytes((header[0] | 0x20,)) + header[1:]
            payload = bytes(packet.padding_size - 1) + bytes((packet.padding_size,))
        self._egress.send(header, payload, seq, ts, now)

    def _activate(
        self, source: Source, packet: RtpPacket, abs24: int, level: int, now: float
    ) -> None:
        """Start forwarding `source` at `packet` (a keyframe, or any audio packet)."""
        if not self._egress.ready:
            return  # a keyframe the viewer cannot receive yet would be wasted: wait for another
        source._remove_waiting(self)
        if self._feeding is not source:
            self._leave_feeding()
            self._feeding = source
        source._add_fanout(self)
        clock_rate = source.clock_rate
        if self._last_at is None:
            next_ts = self._last_ts
        else:
            elapsed = max(now - self._last_at, 0.0)
            next_ts = (self._last_ts + max(1, round(elapsed * clock_rate))) & 0xFFFFFFFF
        self._ts_offset = (next_ts - packet.timestamp) & 0xFFFFFFFF
        self._seq_offset = (self._max_seq + 1 - packet.sequence_number) & 0xFFFF
        self._seg_start = packet.sequence_number
        self._in_pt = -1
        self._egress.clock_rate = clock_rate
        self._switches += 1
        self._forward(packet, abs24, level, now)

    def send_transcoded(self, payload: bytes, marker: int, timestamp: int, pt: int) -> None:
        """Send a transcoder's packet of the source's frame at `timestamp`, numbered on."""
        self._last_at = now = _monotonic()
        seq = self._max_seq = (self._max_seq + 1) & 0xFFFF
        ts = self._last_ts = (timestamp + self._ts_offset) & 0xFFFFFFFF
        self._egress.send(self._build((marker << 7) | pt, seq, ts, 0, -1), payload, seq, ts, now)

    def _map_payload_type(self, payload_type: int) -> None:
        self._in_pt = payload_type
        self._out_pt = -1
        transcoder, self._transcoder = self._transcoder, None
        if transcoder is not None:
            transcoder.close()  # the stream it served ended here (an egress's close ends it too)
        source = self._feeding
        codec = source._codecs_by_pt.get(payload_type) if source is not None else None
        if codec is None:
            return
        viewer_codec = match_codec(codec, self._viewer_codecs)
        if viewer_codec is None:
            offer = getattr(self._egress, "transcoder_for", None)
            self._transcoder = offer(codec, self) if offer is not None else None
            if self._transcoder is None:
                log.warning("%r: the viewer did not negotiate %s; not forwarded", self, codec)
            return
        self._out_pt = viewer_codec.payload_type

    def _leave_feeding(self) -> None:
        feeding = self._feeding
        if feeding is not None:
            feeding._remove_fanout(self)
            feeding._remove_waiting(self)
            self._feeding = None

    def _source_closed(self, source: Source) -> None:
        if self._feeding is source:
            self._feeding = None
        if self._target is source:
            self._target = self._feeding

    def _on_viewer_keyframe_request(self) -> None:
        self.request_keyframe()
