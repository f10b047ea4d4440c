"""A room's recorder: an in-process viewer of the programme whose "screen" is a file.

It owns two video `Slot`s (the speaker's camera, the content) and two audio ones (the
speaker's and the chair's microphone), switched by the room like any hall's; their egresses
hand each serialized packet to the recorder instead of a socket. The slots already number
packets on across floor switches and rebase each new source's timestamps onto their own
clock, so frames arrive in one continuous timeline per track; the recorder maps it to
milliseconds since the recording began (every track anchored at its first frame's arrival,
which keeps them in step).

Each floor change and content start or stop becomes a chapter, named after the site.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from confbridge_kernel.recordings import RecordingChapter, RecordingInfo
from sfu.codecs import H264, VP8, RtpCodec
from sfu.forwarding import Slot
from sfu.recording.frames import FrameAssembler, vp8_size
from sfu.recording.h264_sps import sps_size
from sfu.recording.programme import Programme
from sfu.recording.state import RecordingState
from sfu.recording.writer import (
    CHAIR,
    CONTENT,
    MEDIA_TYPES,
    SPEAKER,
    VIDEO,
    RecordingWriter,
    Sidecar,
    WrittenFile,
    WrittenFrame,
    written_as_is,
)
from sfu.rtc.egress import EgressStats
from sfu.rtc.sdp import NegotiatedRtp

log = logging.getLogger(__name__)

VIDEO_CODEC = RtpCodec(mime_type="video/VP8", clock_rate=90_000, payload_type=96)
H264_CODEC = RtpCodec(
    mime_type="video/H264",
    clock_rate=90_000,
    payload_type=102,
    parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
)
AUDIO_CODEC = RtpCodec(mime_type="audio/opus", clock_rate=48_000, payload_type=111, channels=2)
_SHORT_NAMES = {VP8: "vp8", H264: "h264"}
ChapterKind = Literal["floor", "content_start", "content_stop", "agenda"]
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

PacketSink = Callable[[str, int, int, bool, bytes, float], None]
"""(codec MIME type, sequence number, timestamp, marker, payload, arrival time) of a packet."""
BATCH_S = 0.05
"""How long a recorder's packets wait on the event loop to be handed on together: frame
assembly run over a batch costs a fraction of the same work done packet by packet between the
loop's other work (the CPU's caches are cold for it then). Each keeps its arrival time."""


class RecorderEgress:
    """A `SlotEgress` that gives the slot's packets to the recorder rather than a network, in
    batches every `BATCH_S` when an event loop runs (at once otherwise), the last at `close()`."""

    def __init__(self, codecs: tuple[RtpCodec, ...], sink: PacketSink) -> None:
        self.kind = codecs[0].kind
        self.ssrc = random.getrandbits(32)
        self.params = NegotiatedRtp(kind=self.kind, mid=None, codecs=codecs)
        self.clock_rate = codecs[0].clock_rate
        self.on_keyframe_request: Callable[[], None] = lambda: None
        self._mime = {codec.payload_type: codec.mime_type.lower() for codec in codecs}
        self._sink = sink
        self._packets = 0
        self._bytes = 0
        self._closed = False
        self._batch: list[tuple[str, int, int, bool, bytes, float]] = []
        self._timer: asyncio.TimerHandle | None = None
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    @property
    def ready(self) -> bool:
        return not self._closed

    def send(self, header: bytes, payload: bytes, seq: int, rtp_ts: int, now: float) -> bool:
        if self._closed:
            return False
        self._packets += 1
        self._bytes += len(payload)
        packet = (self._mime.get(header[1] & 0x7F, ""), seq, rtp_ts, header[1] > 0x7F, payload, now)
        if self._loop is None:
            self._sink(*packet)
            return True
        self._batch.append(packet)
        if self._timer is None:
            self._timer = self._loop.call_later(BATCH_S, self.flush)
        return True

    def flush(self) -> None:
        """Hand the packets waiting to the recorder now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._batch = self._batch, []
        sink = self._sink
        for packet in batch:
            sink(*packet)

    def stats(self) -> EgressStats:
        return EgressStats.plain(packets_sent=self._packets, bytes_sent=self._bytes)

    def close(self) -> None:
        self.flush()
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


class _VideoTrack:
    """One video slot's packets → whole frames of its current codec → the writer."""

    def __init__(self, kind: str, writer: RecordingWriter, began_at: float) -> None:
        self.kind = kind
        self._writer = writer
        self._clock = _TrackClock(VIDEO_CODEC.clock_rate, began_at)
        self._frames: FrameAssembler | None = None
        self._dropped_before = 0  # frames dropped by assemblers of earlier codecs
        self.bytes = 0
        self.slot = Slot(RecorderEgress((VIDEO_CODEC, H264_CODEC), self.push), label=kind)

    @property
    def frames_dropped(self) -> int:
        return self._dropped_before + (self._frames.frames_dropped if self._frames else 0)

    def push(
        self, mime: str, seq: int, rtp_ts: int, marker: bool, payload: bytes, now: float
    ) -> None:
        frames = self._frames
        if frames is None or frames.mime_type != mime:
            # a source of another codec took over: start again at its keyframe
            self._dropped_before = self.frames_dropped
            frames = self._frames = FrameAssembler(mime, on_loss=self.slot.request_keyframe)
        for frame in frames.push(seq, rtp_ts, marker, payload, now):
            size = None
            if frame.keyframe:
                size = vp8_size(frame.data) if mime == VP8 else sps_size(frame.data)
            width, height = size or (0, 0)
            pts = self._clock.pts_ms(frame.rtp_ts, now)
            self.bytes += len(frame.data)
            codec = _SHORT_NAMES[mime]
            self._writer.put(
                WrittenFrame(self.kind, pts, frame.keyframe, frame.data, codec, width, height)
            )


class Recorder:
    """Records the programme of one room to `<stem>.webm` (VP8) or `<stem>.mkv` (H.264) from
    now until `stop()`; `path`'s suffix is ignored. `on_failure` is called on the loop when
    the file cannot be written any more (the caller stops the recording); `mixed_audio` adds
    a track of the speaker's and the chair's audio mixed."""

    def __init__(
        self,
        recording_id: str,
        path: Path,
        *,
        room: str = "",
        occurrence_id: int = 0,
        on_failure: Callable[[Recorder], None] | None = None,
        mixed_audio: bool = False,
    ) -> None:
        self.id = recording_id
        self.room = room
        self.occurrence_id = occurrence_id
        self.started_at = datetime.now(UTC)
        self._began = time.monotonic()
        self._on_failure = on_failure
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._writer = RecordingWriter(
            path.with_suffix(""), self._writer_failed, mixed_audio=mixed_audio
        )
        self._video = {
            kind: _VideoTrack(kind, self._writer, self._began) for kind in (VIDEO, CONTENT)
        }
        self._audio_clocks = {
            kind: _TrackClock(AUDIO_CODEC.clock_rate, self._began) for kind in (SPEAKER, CHAIR)
        }
        self.audio_slots = {
            kind: Slot(RecorderEgress((AUDIO_CODEC,), self._audio_sink(kind)), label=kind)
            for kind in (SPEAKER, CHAIR)
        }
        self.video_slot = self._video[VIDEO].slot
        self.content_slot = self._video[CONTENT].slot
        self.audio_slot = self.audio_slots[SPEAKER]
        self.chapters: list[RecordingChapter] = []
        self._speaker: int | None = None
        self._presenter: int | None = None
        self._presenter_name = ""
        self._stopping: asyncio.Future[WrittenFile] | None = None
        self._audio_bytes = 0
        self.failure: str | None = None
        """Why the file could not be written (`disk_full`, `write_error`), once it failed."""
        self._keep_state()

    def __repr__(self) -> str:
        return f"Recorder({self.id}, {self.path.name})"

    @property
    def path(self) -> Path:
        """The file (its suffix is settled by the first video keyframe)."""
        return self._writer.path

    @property
    def failed(self) -> bool:
        return self.failure is not None

    @property
    def bytes_queued(self) -> int:
        """Frame bytes handed to the writer so far (what the file grows by, less overhead)."""
        return self._audio_bytes + sum(track.bytes for track in self._video.values())

    @property
    def frames_dropped(self) -> int:
        """Video frames left out (a hole not repaired in time, and what followed it until the
        next keyframe), and frames the writer could not keep up with or place."""
        video = sum(track.frames_dropped for track in self._video.values())
        return video + self._writer.frames_dropped

    def follow(self, programme: Programme) -> None:
        """Record these sources from now on (video switches at a keyframe); a new speaker or
        presenter starts a chapter."""
        if self._stopping is not None:
            return
        self.video_slot.switch_to(programme.video)
        self.audio_slots[SPEAKER].switch_to(programme.audio)
        self.audio_slots[CHAIR].switch_to(programme.chair_audio)
        self.content_slot.switch_to(programme.content)
        marks: list[tuple[ChapterKind, str, int]] = []
        if programme.speaker_site_id != self._speaker and programme.speaker_site_id is not None:
            marks.append(("floor", programme.speaker_name, programme.speaker_site_id))
        if programme.content_site_id != self._presenter:
            if self._presenter is not None:
                marks.append(("content_stop", self._presenter_name, self._presenter))
            if programme.content_site_id is not None:
                marks.append(("content_start", programme.content_name, programme.content_site_id))
        self._speaker = programme.speaker_site_id
        self._presenter, self._presenter_name = programme.content_site_id, programme.content_name
        for kind, title, site_id in marks:
            self.mark(kind, title, site_id)

    def mark(self, kind: ChapterKind, title: str, site_id: int | None = None) -> RecordingChapter:
        """Start a chapter now (kept beside the file at once, and in it when it closes)."""
        start_ms = round((time.monotonic() - self._began) * 1000)
        if self.chapters:  # two at one instant (content stopped, floor taken): one ms apart,
            # as a player keeps one chapter per start
            start_ms = max(start_ms, self.chapters[-1].start_ms + 1)
        chapter = RecordingChapter(start_ms=start_ms, kind=kind, title=title, site_id=site_id)
        self.chapters.append(chapter)
        self._keep_state()
        return chapter

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
            media_type=MEDIA_TYPES[(written.path if written else self.path).suffix],
            chapters=list(self.chapters),
            failure=self.failure,
        )

    def state(self, written: WrittenFile | None = None) -> RecordingState:
        return RecordingState(info=self.info(written), occurrence_id=self.occurrence_id)

    async def stop(self) -> WrittenFile:
        """End the recording: the file is closed, its checksum computed and both written next
        to it (`<id>.json`), all off the loop."""
        if self._stopping is None:
            for slot in (*self.audio_slots.values(), self.video_slot, self.content_slot):
                slot.close()
            self._stopping = asyncio.ensure_future(self._finish())
        return await asyncio.shield(self._stopping)

    async def _finish(self) -> WrittenFile:
        try:
            written = await asyncio.wrap_future(self._writer.close())
        except Exception as exc:
            # the writer failed (logged there, e.g. a full disk): keep what reached the file
            self.failure = self.failure or failure_reason(exc)
            written = await asyncio.to_thread(written_as_is, self.path)
        state = self.state(written).model_dump_json()
        sidecar = self._writer.stem.with_suffix(".json")
        try:
            await asyncio.to_thread(sidecar.write_text, state)
        except OSError as exc:  # a full disk may refuse this too: the info is still returned
            log.error("recording %s: its state could not be written: %s", self.id, exc)
        return written

    def _keep_state(self) -> None:
        self._writer.keep(Sidecar(self.state().model_dump_json(), tuple(self.chapters)))

    def _audio_sink(self, kind: str) -> PacketSink:
        clock = self._audio_clocks[kind]

        def sink(_mime: str, _seq: int, rtp_ts: int, _m: bool, payload: bytes, now: float) -> None:
            if payload:
                self._audio_bytes += len(payload)
                self._writer.put(WrittenFrame(kind, clock.pts_ms(rtp_ts, now), True, payload))

        return sink

    def _writer_failed(self, exc: BaseException) -> None:
        """On the writer's thread: the file cannot be written; tell the loop."""
        self.failure = failure_reason(exc)
        if self._loop is not None and self._on_failure is not None:
            self._loop.call_soon_threadsafe(self._on_failure, self)


def failure_reason(exc: BaseException) -> str:
    """`disk_full` for a full disk or quota (or the size limit), `write_error` otherwise."""
    code = getattr(exc, "errno", None)
    return "disk_full" if code in DISK_FULL_ERRNOS else "write_error"
