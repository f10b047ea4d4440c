"""The recording file: a Matroska/WebM muxer fed with encoded frames on a thread of its own.

The event loop only appends frames to a deque (no lock, no wake-up: a frame costs the loop
one append); the writer's thread wakes every `HANDOFF_S` and takes what has queued up, so that
a meeting costs a few wake-ups a second rather than one per frame. Opening, muxing, flushing
and the checksum at the end run on that thread. Packets are copied into the container as they
are (PyAV's muxer, no decoder, no encoder). Clusters close at least every `CLUSTER_MS` and each
write is flushed to the file, so a worker that dies leaves a file that plays up to its last
cluster.

Tracks (`TRACKS`): the programme video, the content video, the speaker's audio and the chair's
audio; and, where asked for, one mixed audio track (`sfu.recording.mixing`: the two
microphones decoded, added and encoded again). The header is written once the first
programme keyframe is there (its codec picks the container: VP8 → WebM, H.264 → Matroska;
its size goes into the track), or after `HEADER_WAIT_S` without video (VP8 tracks then);
frames before that are held. Both video tracks carry that codec: a frame of the other codec
(a hall still sending VP8 in a room of H.264 room systems) cannot go into them and is counted
in `frames_dropped`.

Chapters are kept in a sidecar written beside the file as they come (so they outlive a crash)
and put into the container's Chapters element when it is closed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from confbridge_kernel.recordings import RecordingChapter
from sfu.recording.h264_sps import parameter_sets
from sfu.recording.mixing import AudioMixer

log = logging.getLogger(__name__)

CLUSTER_MS = 1000
"""A cluster closes (and reaches the disk) at least this often."""
HEADER_WAIT_S = 5.0
"""How long audio waits for a video keyframe before the file is written without it."""
HANDOFF_S = 0.1
"""How often the writer's thread takes the frames queued (the file lags behind by as much)."""
MAX_QUEUED_FRAMES = 3000
"""Frames waiting for the thread (about a minute of a meeting); beyond, new ones are dropped."""
PLACEHOLDER_SIZE = (1280, 720)
"""A video track's size when its first keyframe is not there when the header is written (the
decoder reads the real size from the stream)."""
VIDEO, CONTENT, SPEAKER, CHAIR, MIXED = "video", "content", "audio", "chair", "mixed"
TRACKS = (VIDEO, CONTENT, SPEAKER, CHAIR)
TRACK_TITLES = {
    VIDEO: "programme",
    CONTENT: "content",
    SPEAKER: "speaker",
    CHAIR: "chair",
    MIXED: "mixed",
}
SUFFIXES = {"vp8": ".webm", "h264": ".mkv"}
MEDIA_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska"}
NUDGE_MS = 100
"""How often an idle VP8 track is nudged (`_Muxer._nudge`): what the file lags behind by."""
_MS = Fraction(1, 1000)


@dataclass(frozen=True)
class WrittenFrame:
    """One frame for the file: its track (`TRACKS`), codec (`vp8`, `h264`, `opus`) and time
    in ms from the start."""

    kind: str
    pts_ms: int
    keyframe: bool
    data: bytes
    codec: str = "opus"
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class Sidecar:
    """The recording's state to write beside the file (chapters so far)."""

    text: str
    chapters: tuple[RecordingChapter, ...]


_TICK = WrittenFrame("tick", 0, False, b"")  # no frame came: time to check the header's wait


@dataclass(frozen=True)
class WrittenFile:
    """What a finished recording holds."""

    path: Path
    bytes: int
    sha256: str
    ended_at: datetime
    video_frames: int
    audio_frames: int


class RecordingWriter:
    """Writes one file, `<stem>.webm` or `<stem>.mkv`, from frames put with `put()`; `close()`
    ends it and returns the result (a `concurrent.futures.Future`, done on the writer's
    thread). `on_failure` is called on that thread when a write fails (e.g. a full disk);
    `mixed_audio` adds the mixed audio track."""

    def __init__(
        self,
        stem: Path,
        on_failure: Callable[[BaseException], None],
        *,
        mixed_audio: bool = False,
    ) -> None:
        self.stem = stem
        self.mixed_audio = mixed_audio
        self.path = stem.with_suffix(".webm")  # until the first keyframe says otherwise
        self.frames_dropped = 0
        self.error: BaseException | None = None
        self._on_failure = on_failure
        # appended on the loop, taken on the thread (both atomic under the GIL); `put()` keeps
        # it bounded, `close()` never blocks
        self._queue: deque[WrittenFrame | Sidecar | None] = deque()
        self._closing = threading.Event()  # wakes the thread at once for the end
        self._finished = False  # the thread is done (`Future.done()` takes a lock)
        self._done: Future[WrittenFile] = Future()
        self._chapters: tuple[RecordingChapter, ...] = ()
        self._thread = threading.Thread(target=self._run, name=f"recorder-{stem.name}")
        self._thread.daemon = True
        self._thread.start()

    def put(self, frame: WrittenFrame) -> None:
        """Queue a frame (never blocks: a full queue drops it, counted)."""
        if len(self._queue) >= MAX_QUEUED_FRAMES or self._finished:
            self.frames_dropped += 1
            return
        self._queue.append(frame)

    def keep(self, sidecar: Sidecar) -> None:
        """Write `sidecar` beside the file, in order with the frames."""
        if not self._finished:
            self._queue.append(sidecar)

    def close(self) -> Future[WrittenFile]:
        """Finish the file after the frames queued so far."""
        self._queue.append(None)
        self._closing.set()
        return self._done

    # the writer's thread

    def _run(self) -> None:
        try:
            written = self._write()
        except BaseException as exc:  # the loop side awaits this future: never leave it unset
            log.exception("recording %s failed", self.path)
            self.error = exc
            self._finished = True
            self._done.set_exception(exc)
            self._on_failure(exc)
        else:
            self._finished = True
            self._done.set_result(written)

    def _items(self) -> Iterator[WrittenFrame | Sidecar | None]:
        """What the loop queued, in order, taken every `HANDOFF_S` (at once after `close()`);
        `_TICK` when a wait brought nothing."""
        while True:
            if not self._queue:
                self._closing.wait(HANDOFF_S)
            if not self._queue:
                yield _TICK
            while self._queue:
                yield self._queue.popleft()

    def _write(self) -> WrittenFile:
        muxer: _Muxer | None = None
        held: list[WrittenFrame] = []
        started = time.monotonic()
        try:
            for item in self._items():
                if item is None:
                    if muxer is None and held:
                        muxer = self._open(held)
                    break
                if isinstance(item, Sidecar):
                    self._chapters = item.chapters
                    write_atomically(self.stem.with_suffix(".json"), item.text)
                    continue
                if muxer is not None:
                    if item.kind != "tick":
                        self.frames_dropped += not muxer.mux(item)
                    continue
                if item.kind != "tick":
                    held.append(item)
                video_key = any(f.kind == VIDEO and f.keyframe for f in held)
                waited = time.monotonic() - started > HEADER_WAIT_S
                if video_key or (waited and held):
                    muxer = self._open(held)
                    held = []
        except BaseException:
            if muxer is not None:
                with contextlib.suppress(Exception):  # the trailer may fail as the frame did
                    muxer.container.close()
            raise
        if muxer is None:
            self.path.touch()  # nothing arrived: an empty file says so, rather than none
            counts = {"audio": 0, "video": 0}
        else:
            muxer.close(self._chapters)
            counts = muxer.counts
        return written_as_is(self.path, video_frames=counts["video"], audio_frames=counts["audio"])

    def _open(self, held: list[WrittenFrame]) -> _Muxer:
        held.sort(key=lambda f: f.pts_ms)
        first = next((f for f in held if f.kind == VIDEO and f.keyframe), None)
        codec = first.codec if first is not None else "vp8"
        self.path = self.stem.with_suffix(SUFFIXES[codec])
        muxer = _Muxer(self.path, codec, first, mixed_audio=self.mixed_audio)
        for frame in held:
            # video before the programme's first keyframe could not be decoded
            if frame.kind != VIDEO or first is None or frame.pts_ms >= first.pts_ms:
                self.frames_dropped += not muxer.mux(frame)
        return muxer


class _Muxer:
    """The open container and its tracks (on the writer's thread)."""

    def __init__(
        self, path: Path, codec: str, first: WrittenFrame | None, *, mixed_audio: bool = False
    ) -> None:
        fmt = "webm" if path.suffix == ".webm" else "matroska"
        options = {
            "cluster_time_limit": str(CLUSTER_MS),
            "flush_packets": "1",
            # tracks that get no packets (the chair speaking, no content shared) must not
            # hold the others back in the interleaving queue (10 s by default); see `_nudge`
            "max_interleave_delta": "1",
        }
        self.container: Any = av.open(str(path), "w", format=fmt, options=options)
        self.codec = codec
        self.counts = {"audio": 0, "video": 0}
        self._last_pts: dict[str, int] = {}
        self._last_ms = 0
        self.streams: dict[str, Any] = {}
        size = (first.width, first.height) if first and first.width else PLACEHOLDER_SIZE
        for kind in (VIDEO, CONTENT):
            # only the parameters are used: nothing is encoded
            stream = self.container.add_stream("libvpx" if codec == "vp8" else "h264")
            stream.width, stream.height = size
            if codec == "h264" and kind == VIDEO and first is not None:
                # the SPS and PPS, from which the muxer writes the track's avcC
                stream.codec_context.extradata = parameter_sets(first.data) or None
            self._name(stream, kind)
        for kind in (SPEAKER, CHAIR):
            self._name(self.container.add_stream("libopus", rate=48000), kind)
        self.mixer = AudioMixer() if mixed_audio else None
        if self.mixer is not None:
            stream = self.container.add_stream("libopus", rate=48000)
            stream.codec_context.layout = "mono"
            stream.codec_context.extradata = self.mixer.extradata
            self._name(stream, MIXED)

    def _name(self, stream: Any, kind: str) -> None:
        stream.time_base = _MS
        stream.metadata["title"] = TRACK_TITLES[kind]
        self.streams[kind] = stream

    def mux(self, item: WrittenFrame) -> bool:
        """Write one frame; False if it cannot go into its track (another codec)."""
        stream = self.streams.get(item.kind)
        if stream is None or (item.kind in (VIDEO, CONTENT) and item.codec != self.codec):
            return False
        pts = self._write(item.kind, item.pts_ms, item.data, item.keyframe or item.codec == "opus")
        self.counts["video" if item.codec != "opus" else "audio"] += 1
        self._last_ms = max(self._last_ms, pts)
        self._nudge(pts)
        if self.mixer is not None and item.codec == "opus":
            self.mixer.add(item.kind, item.pts_ms, item.data)
            self._write_mixed(self.mixer.take())
        return True

    def _write_mixed(self, packets: list[tuple[int, bytes]]) -> None:
        for pts_ms, data in packets:
            self._write(MIXED, pts_ms, data, True)

    def _write(self, kind: str, pts_ms: int, data: bytes, keyframe: bool) -> int:
        # strictly increasing per track: timestamps come from two clocks (RTP and arrival),
        # a switch must never step back
        pts = max(pts_ms, self._last_pts.get(kind, -1) + 1)
        self._last_pts[kind] = pts
        packet = av.Packet(data)
        packet.stream = self.streams[kind]
        packet.time_base = _MS
        packet.pts = packet.dts = pts
        packet.is_keyframe = keyframe
        self.container.mux(packet)
        return pts

    def _nudge(self, now_ms: int) -> None:
        """FFmpeg's interleaving holds every packet back while a VP8 track has none queued
        (it never counts an idle VP8 track as done, whatever `max_interleave_delta` says):
        an idle VP8 track gets an empty packet every `NUDGE_MS`, which lets the others
        through and is not written to the file."""
        if self.codec != "vp8":
            return
        for kind in (VIDEO, CONTENT):
            if self._last_pts.get(kind, -NUDGE_MS) <= now_ms - NUDGE_MS:
                self._write(kind, now_ms, b"", False)

    def close(self, chapters: tuple[RecordingChapter, ...]) -> None:
        """Write the chapters (Matroska Chapters, written with the trailer) and close."""
        if self.mixer is not None:
            self._write_mixed(self.mixer.finish())
        if chapters and hasattr(self.container, "set_chapters"):
            self.container.set_chapters(container_chapters(chapters, self._last_ms))
        self.container.close()


def container_chapters(chapters: tuple[RecordingChapter, ...], end_ms: int) -> list[dict]:
    """PyAV's chapter dicts: each ends where the next begins, the last at `end_ms`."""
    ordered = sorted(chapters, key=lambda c: c.start_ms)
    ends = [c.start_ms for c in ordered[1:]] + [max(end_ms, ordered[-1].start_ms)]
    return [
        {
            "id": index + 1,
            "start": chapter.start_ms,
            "end": max(end, chapter.start_ms + 1),  # an empty chapter is left out
            "time_base": _MS,
            "metadata": {"title": chapter.title},
        }
        for index, (chapter, end) in enumerate(zip(ordered, ends, strict=True))
    ]


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` (a crash leaves the old or the new one, never half)."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def written_as_is(path: Path, *, video_frames: int = 0, audio_frames: int = 0) -> WrittenFile:
    """The file as it is on disk now: its size and checksum, ended now."""
    if not path.exists():
        path.touch()
    return WrittenFile(
        path=path,
        bytes=path.stat().st_size,
        sha256=sha256_of(path),
        ended_at=datetime.now(UTC),
        video_frames=video_frames,
        audio_frames=audio_frames,
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
