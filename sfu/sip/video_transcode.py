"""Transcoding to H.264 for a SIP leg whose room system cannot take the source's codec.

Room systems get H.264 forwarded without decoding (`sfu.sip.video`), and rooms with a leg ask
WebRTC publishers for H.264. A publisher that joined before, or a browser without H.264, still
sends VP8: the leg's slot then has no codec to map it to, and asks its `SipEgress` for a
`VideoTranscoder` (`Slot._map_payload_type`). The transcoder does what aiortc's
`RTCRtpReceiver` and `RTCRtpSender` do, for one leg: depayload and reassemble frames
(`JitterBuffer`), decode, scale down to what the leg's level allows (at most 1280×720), encode
H.264 with aiortc's `H264Encoder` (constrained baseline, packetization-mode 1) and hand the
packets to the slot, which numbers them on from what the leg got before
(`Slot.send_transcoded`), so a switch back to passthrough keeps one continuous stream.

Decoding and encoding run in a thread (`asyncio.to_thread`), one batch at a time: frames that
arrive while a batch is in the thread wait, are all decoded in the next batch (later frames
depend on them) and only the newest is encoded, so a busy machine lowers the frame rate rather
than building a queue. Losing packets, or failing to decode, stops decoding until the source's
next keyframe, which is asked for; a PLI or FIR from the room system makes the encoder's next
picture an IDR (with SPS and PPS in front, as libx264 repeats them).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass

import av
from aiortc import RTCRtpCodecParameters
from aiortc.codecs import depayload, get_decoder
from aiortc.codecs.base import Decoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from sfu.codecs import RtpCodec, is_keyframe
from sfu.forwarding import Slot
from sfu.sip.h264 import parse_profile_level_id

log = logging.getLogger(__name__)

MAX_WIDTH = 1280
MAX_HEIGHT = 720
BITS_PER_PIXEL_S = 2.5
"""Target bitrate per pixel of the output picture (640×360: ~580 kbit/s; 1280×720: ~2.3
Mbit/s); aiortc's encoder keeps it within 0.5–3 Mbit/s, which is within every level's MaxBR
from 1.3 up (table A-1). Its SPS says level 3.1 whatever the size."""
JITTER_BUFFER_PACKETS = 128
"""Packets held to reassemble frames; a gap still open after this many is a loss."""
MAX_PENDING_FRAMES = 30
"""Frames waiting for the thread beyond which the backlog is dropped (about 1 s at 30 fps)."""

# MaxFS, the largest picture in 16×16 macroblocks, per level (ITU-T H.264 table A-1)
_MAX_FRAME_MACROBLOCKS = (
    (10.5, 99),
    (20, 396),
    (21, 792),
    (30, 1620),
    (31, 3600),
    (32, 5120),
)


def output_size(width: int, height: int, profile_level_id: str) -> tuple[int, int]:
    """The picture size to encode a `width`×`height` source at for a leg that negotiated
    `profile_level_id`: the source's, scaled down (aspect kept, even sides) to fit 1280×720
    and the level's largest frame."""
    level = parse_profile_level_id(profile_level_id).level
    max_mbs = next((mbs for top, mbs in _MAX_FRAME_MACROBLOCKS if level <= top), 8192)
    scale = min(1.0, MAX_WIDTH / width, MAX_HEIGHT / height)
    scale = min(scale, math.sqrt(max_mbs * 256 / (width * height)))
    while True:
        out_w = max(16, int(width * scale) & ~1)
        out_h = max(16, int(height * scale) & ~1)
        if math.ceil(out_w / 16) * math.ceil(out_h / 16) <= max_mbs or scale < 0.01:
            return out_w, out_h
        scale *= 0.98  # macroblock rounding went over: a little smaller


def bitrate_for(width: int, height: int) -> int:
    """The encoder's target bitrate for this picture size, in bit/s."""
    return int(width * height * BITS_PER_PIXEL_S)


def _aiortc_codec(codec: RtpCodec) -> RTCRtpCodecParameters:
    # aiortc's depayload() knows codecs by their upper-case names ("VP8"), ours are lower case
    kind, _slash, subtype = codec.mime_type.partition("/")
    return RTCRtpCodecParameters(
        mimeType=f"{kind}/{subtype.upper()}",
        clockRate=codec.clock_rate,
        payloadType=codec.payload_type,
    )


@dataclass(frozen=True)
class TranscodeStats:
    """Counters of one transcoder."""

    frames_in: int
    """Complete frames of the source taken for decoding."""
    frames_decoded: int
    frames_encoded: int
    frames_skipped: int
    """Decoded but not encoded: a newer frame was waiting (the thread fell behind)."""
    frames_discarded: int
    """Dropped before decoding: waiting for a keyframe, or a backlog over MAX_PENDING_FRAMES."""
    packets_sent: int
    keyframes_forced: int
    """IDR pictures made for the room system's PLI or FIR."""
    keyframe_requests: int
    """Times the source was asked for a keyframe (at start, after a loss or a decoding error)."""
    width: int
    height: int


@dataclass
class _Batch:
    """What one trip to the thread gives back."""

    payloads: list[bytes]
    timestamp: int
    decoded: int
    skipped: int
    failed: bool
    width: int = 0
    height: int = 0


class VideoTranscoder:
    """Decodes a source's video (VP8, or any codec aiortc decodes) and sends it to a SIP leg's
    slot as H.264 at `payload_type`, sized for `profile_level_id`.

    Build it on the event loop (it starts its task there); `feed()` takes the source's RTP
    packets, `force_keyframe()` asks for an IDR, `close()` stops it."""

    def __init__(
        self,
        codec: RtpCodec,
        slot: Slot,
        *,
        payload_type: int,
        profile_level_id: str,
        label: str = "",
    ) -> None:
        self.codec = codec
        self.label = label
        self._params = _aiortc_codec(codec)
        self._decoder: Decoder = get_decoder(self._params)  # ValueError: no decoder for it
        self._encoder = H264Encoder()
        self._slot = slot
        self._payload_type = payload_type
        self._profile_level_id = profile_level_id
        self._jitter = JitterBuffer(capacity=JITTER_BUFFER_PACKETS, is_video=True)
        self._pending: list[JitterFrame] = []
        self._wake = asyncio.Event()
        self._waiting_keyframe = True
        self._keyframe_ts: int | None = None
        self._force_keyframe = False
        self._closed = False
        self._frames_in = self._decoded = self._encoded = self._skipped = self._discarded = 0
        self._packets_sent = self._keyframes_forced = self._keyframe_requests = 0
        self._size = (0, 0)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"transcode {label}")

    @staticmethod
    def can_decode(codec: RtpCodec) -> bool:
        """Whether aiortc has a decoder for `codec` (video only)."""
        if codec.kind != "video":
            return False
        try:
            get_decoder(_aiortc_codec(codec))
        except ValueError:
            return False
        return True

    @property
    def closed(self) -> bool:
        """True after `close()`."""
        return self._closed

    def stats(self) -> TranscodeStats:
        """A snapshot of the counters and of the picture size sent."""
        return TranscodeStats(
            frames_in=self._frames_in,
            frames_decoded=self._decoded,
            frames_encoded=self._encoded,
            frames_skipped=self._skipped,
            frames_discarded=self._discarded,
            packets_sent=self._packets_sent,
            keyframes_forced=self._keyframes_forced,
            keyframe_requests=self._keyframe_requests,
            width=self._size[0],
            height=self._size[1],
        )

    def feed(self, packet: RtpPacket) -> None:
        """One RTP packet of the source (the slot's; it is not modified)."""
        if self._closed:
            return
        if is_keyframe(self.codec.mime_type, packet.payload):
            self._keyframe_ts = packet.timestamp
        copy = RtpPacket(
            payload_type=packet.payload_type,
            sequence_number=packet.sequence_number,
            timestamp=packet.timestamp,
        )
        try:
            data = depayload(self._params, packet.payload) if packet.payload else b""
        except ValueError:
            return  # malformed: its frame will miss it, like a packet lost
        copy._data = data  # type: ignore[attr-defined]  # as aiortc's receiver: frames join it
        lost, frame = self._jitter.add(copy)
        if lost:
            self._restart()
        if frame is not None:
            self._take(frame)

    def force_keyframe(self) -> None:
        """Make the next encoded picture an IDR (the room system's PLI or FIR)."""
        if not self._force_keyframe:
            self._keyframes_forced += 1
        self._force_keyframe = True

    def close(self) -> None:
        """Stop: nothing more is sent, a batch in the thread is thrown away."""
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        self._task.cancel()

    async def wait_closed(self) -> None:
        """Wait for the task's end after `close()`."""
        await asyncio.gather(self._task, return_exceptions=True)

    # on the event loop ---------------------------------------------------------------------------

    def _take(self, frame: JitterFrame) -> None:
        """A complete frame from the jitter buffer: queue it for the thread, unless decoding
        has to wait for a keyframe."""
        self._frames_in += 1
        if self._waiting_keyframe:
            if frame.timestamp != self._keyframe_ts:
                self._discarded += 1
                self._ask_keyframe()
                return
            self._waiting_keyframe = False
        self._pending.append(frame)
        if len(self._pending) > MAX_PENDING_FRAMES:
            log.warning("%s: transcoding fell %d frames behind", self.label, len(self._pending))
            self._discarded += len(self._pending)
            self._pending.clear()
            self._restart()
            return
        self._wake.set()

    def _restart(self) -> None:
        """Frames are missing: decode nothing until the source's next keyframe."""
        self._waiting_keyframe = True
        self._pending.clear()
        self._ask_keyframe()

    def _ask_keyframe(self) -> None:
        if self._slot.request_keyframe():  # rate-limited by the source
            self._keyframe_requests += 1

    async def _run(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            frames, self._pending = self._pending, []
            if not frames:
                continue
            force, self._force_keyframe = self._force_keyframe, False
            try:
                batch = await asyncio.to_thread(self._transcode, frames, force)
                if not self._closed:
                    self._emit(batch, force)
            except asyncio.CancelledError:
                raise
            except Exception:  # logged, and the next keyframe starts over: the leg goes on
                log.exception("%s: transcoding failed", self.label)
                self._restart()

    def _emit(self, batch: _Batch, force: bool) -> None:
        self._decoded += batch.decoded
        self._skipped += batch.skipped
        if batch.failed:
            self._restart()
        if not batch.payloads:
            self._force_keyframe |= force  # nothing was encoded: the IDR is still owed
            return
        self._encoded += 1
        self._size = (batch.width, batch.height)
        last = len(batch.payloads) - 1
        send, pt, timestamp = self._slot.send_transcoded, self._payload_type, batch.timestamp
        for index, payload in enumerate(batch.payloads):
            send(payload, int(index == last), timestamp, pt)
        self._packets_sent += len(batch.payloads)

    # in the thread -------------------------------------------------------------------------------

    def _transcode(self, frames: list[JitterFrame], force_keyframe: bool) -> _Batch:
        """Decode every frame (each depends on the one before), encode the newest picture."""
        newest: av.VideoFrame | None = None
        timestamp = frames[-1].timestamp
        decoded = 0
        failed = False
        for frame in frames:
            try:
                pictures = self._decoder.decode(frame)
            except av.FFmpegError as exc:
                log.info("%s: %s frame not decoded: %s", self.label, self.codec.mime_type, exc)
                failed = True
                break
            for picture in pictures:
                if isinstance(picture, av.VideoFrame):
                    decoded += 1
                    newest, timestamp = picture, frame.timestamp
        batch = _Batch([], timestamp, decoded, max(decoded - 1, 0), failed)
        if newest is None:
            return batch
        width, height = output_size(newest.width, newest.height, self._profile_level_id)
        if (width, height) != (newest.width, newest.height) or newest.format.name != "yuv420p":
            newest = newest.reformat(width=width, height=height, format="yuv420p")
        self._encoder.target_bitrate = bitrate_for(width, height)
        batch.payloads, _ts = self._encoder.encode(newest, force_keyframe)
        batch.width, batch.height = width, height
        return batch
