"""A room's recorder: an in-process viewer of the programme whose "screen" is a file.

It owns one video and one audio `Slot`, switched by the room like any hall's (the speaker's
camera and microphone); their egresses hand each serialized packet to a `FrameAssembler`
instead of a socket. The slots already number packets on across floor switches and rebase
each new source's timestamps onto their own clock, so frames arrive in one continuous
timeline per track; the recorder maps it to milliseconds since the recording began (both
tracks anchored at their first frame's arrival, which keeps them in step).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from confbridge_kernel.recordings import RecordingInfo
from sfu.codecs import RtpCodec
from sfu.forwarding import Slot, Source
from sfu.recording.frames import FrameAssembler, vp8_size
from sfu.recording.writer import RecordingWriter, WrittenFile, WrittenFrame, written_as_is
from sfu.rtc.egress import EgressStats
from sfu.rtc.sdp import NegotiatedRtp

VIDEO_CODEC = RtpCodec(mime_type="video/VP8", clock_rate=90_000, payload_type=96)
AUDIO_CODEC = RtpCodec(mime_type="audio/opus", clock_rate=48_000, payload_type=111, channels=2)

PacketSink = Callable[[int, int, bool, bytes, float], None]
"""(sequence number, timestamp, marker, payload, arrival time) of one packet."""


class RecorderEgress:
    """A `SlotEgress` that gives the slot's packets to the recorder rather than a network."""

    def __init__(self, codec: RtpCodec, sink: PacketSink) -> None:
        self.kind = codec.kind
        self.ssrc = random.getrandbits(32)
        self.params = NegotiatedRtp(kind=codec.kind, mid=None, codecs=(codec,))
        self.clock_rate = codec.clock_rate
        self.on_keyframe_request: Callable[[], None] = lambda: None
        self._sink = sink
        self._packets = 0
        self._bytes = 0
        self._closed = False

    @property
    def ready(self) -> bool:
        return not self._closed

    def send(self, header: bytes, payload: bytes, seq: int, rtp_ts: int, now: float) -> bool:
        if self._closed:
            return False
        self._packets += 1
        self._bytes += len(payload)
        self._sink(seq, rtp_ts, bool(header[1] & 0x80), payload, now)
        return True

    def stats(self) -> EgressStats:
        return EgressStats.plain(packets_sent=self._packets, bytes_sent=self._bytes)

    def close(self) -> None:
        self._closed = True


class _TrackClock:
    """RTP timestamps of one slot → ms since the recording began."""

    def __init__(self, clock_rate: int, began_at: float) -> None:
        self._rate = clock_rate
        self._began_at = began_at
        self._last_ts: int | None = None
        self._ticks = 0  # unwrapped ticks since the first frame
        self._offset_s = 0.0

    def pts_ms(self, rtp_ts: int, now: float) -> int:
        if self._last_ts is None:
            self._offset_s = max(now - self._began_at, 0.0)
        else:
            step = (rtp_ts - self._last_ts) & 0xFFFFFFFF
            self._ticks += step - (1 << 32) if step >= 1 << 31 else step
        self._last_ts = rtp_ts
        return round((self._offset_s + self._ticks / self._rate) * 1000)


class Recorder:
    """Records the programme of one room to `path` (a `.webm` file) from now until `stop()`."""

    def __init__(self, recording_id: str, path: Path, *, room: str = "") -> None:
        self.id = recording_id
        self.path = path
        self.room = room
        self.started_at = datetime.now(UTC)
        began = time.monotonic()
        self._writer = RecordingWriter(path)
        self._frames = FrameAssembler(VIDEO_CODEC.mime_type, on_loss=self._lost_video)
        self._clocks = {
            "video": _TrackClock(VIDEO_CODEC.clock_rate, began),
            "audio": _TrackClock(AUDIO_CODEC.clock_rate, began),
        }
        label = f"recorder {self.id}"
        self.video_slot = Slot(RecorderEgress(VIDEO_CODEC, self._video), label=label)
        self.audio_slot = Slot(RecorderEgress(AUDIO_CODEC, self._audio), label=label)
        self._stopping: asyncio.Future[WrittenFile] | None = None
        self.bytes_queued = 0
        """Frame bytes handed to the writer so far (what the file grows by, less overhead)."""
        self.failed = False
        """True if the writer failed (the file holds what reached it before)."""

    def __repr__(self) -> str:
        return f"Recorder({self.id}, {self.path.name})"

    @property
    def frames_dropped(self) -> int:
        """Video frames left out (a hole not repaired in time, and what followed it until the
        next keyframe), and frames the writer could not keep up with."""
        return self._frames.frames_dropped + self._writer.frames_dropped

    def follow(self, video: Source | None, audio: Source | None) -> None:
        """Record these sources (the programme) from now on; video switches at a keyframe."""
        if self._stopping is not None:
            return
        self.video_slot.switch_to(video)
        self.audio_slot.switch_to(audio)

    def info(self, written: WrittenFile | None = None) -> RecordingInfo:
        """What the control plane is told about this recording (size and checksum once
        `written`)."""
        return RecordingInfo(
            recording_id=self.id,
            room=self.room,
            started_at=self.started_at,
            ended_at=written.ended_at if written else None,
            bytes=written.bytes if written else None,
            sha256=written.sha256 if written else None,
        )

    async def stop(self) -> WrittenFile:
        """End the recording: the file is closed, its checksum computed and both written next
        to it (`<id>.json`), all off the loop."""
        if self._stopping is None:
            self.video_slot.close()
            self.audio_slot.close()
            self._stopping = asyncio.ensure_future(self._finish())
        return await asyncio.shield(self._stopping)

    async def _finish(self) -> WrittenFile:
        try:
            written = await asyncio.wrap_future(self._writer.close())
        except Exception:
            # the writer failed (logged there, e.g. a full disk): keep what reached the file
            self.failed = True
            written = await asyncio.to_thread(written_as_is, self.path)
        sidecar = self.path.with_suffix(".json")
        await asyncio.to_thread(sidecar.write_text, self.info(written).model_dump_json())
        return written

    def _video(self, seq: int, rtp_ts: int, marker: bool, payload: bytes, now: float) -> None:
        for frame in self._frames.push(seq, rtp_ts, marker, payload):
            size = vp8_size(frame.data) if frame.keyframe else None
            width, height = size or (0, 0)
            pts = self._clocks["video"].pts_ms(frame.rtp_ts, now)
            self.bytes_queued += len(frame.data)
            self._writer.put(WrittenFrame("video", pts, frame.keyframe, frame.data, width, height))

    def _audio(self, seq: int, rtp_ts: int, marker: bool, payload: bytes, now: float) -> None:
        if payload:
            pts = self._clocks["audio"].pts_ms(rtp_ts, now)
            self.bytes_queued += len(payload)
            self._writer.put(WrittenFrame("audio", pts, True, payload))

    def _lost_video(self) -> None:
        self.video_slot.request_keyframe()
