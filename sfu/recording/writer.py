"""The recording file: a Matroska/WebM muxer fed with encoded frames on a thread of its own.

The event loop only puts frames on a queue; opening, muxing, flushing and the checksum at the
end run on the writer's thread. Packets are copied into the container as they are (PyAV's
muxer, no decoder, no encoder). Clusters close at least every `CLUSTER_MS` and each write is
flushed to the file, so a worker that dies leaves a file that plays up to its last cluster.

Video is VP8 (a `.webm` file), audio Opus. The header is written once the first video keyframe
is there (its size goes into the track), or after `HEADER_WAIT_S` without video (an audio-only
file); frames before that are held.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

log = logging.getLogger(__name__)

CLUSTER_MS = 1000
"""A cluster closes (and reaches the disk) at least this often."""
HEADER_WAIT_S = 5.0
"""How long audio waits for a video keyframe before the file is written without video."""
MAX_QUEUED_FRAMES = 3000
"""Frames waiting for the thread (about a minute of a meeting); beyond, new ones are dropped."""
_MS = Fraction(1, 1000)


@dataclass(frozen=True)
class WrittenFrame:
    """One frame for the file: `kind` audio or video, its time in ms from the start."""

    kind: str
    pts_ms: int
    keyframe: bool
    data: bytes
    width: int = 0
    height: int = 0


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
    """Writes one file from frames put with `put()`; `close()` ends it and returns the result
    (a `concurrent.futures.Future`, done on the writer's thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.frames_dropped = 0
        # unbounded, so that `close()` never blocks the loop; `put()` keeps it bounded
        self._queue: queue.Queue[WrittenFrame | None] = queue.Queue()
        self._done: Future[WrittenFile] = Future()
        self._thread = threading.Thread(target=self._run, name=f"recorder-{path.name}")
        self._thread.daemon = True
        self._thread.start()

    def put(self, frame: WrittenFrame) -> None:
        """Queue a frame (never blocks: a full queue drops it, counted)."""
        if self._queue.qsize() >= MAX_QUEUED_FRAMES or self._done.done():
            self.frames_dropped += 1
            return
        self._queue.put_nowait(frame)

    def close(self) -> Future[WrittenFile]:
        """Finish the file after the frames queued so far."""
        self._queue.put(None)
        return self._done

    # the writer's thread

    def _run(self) -> None:
        try:
            self._done.set_result(self._write())
        except BaseException as exc:  # the loop side awaits this future: never leave it unset
            log.exception("recording %s failed", self.path)
            self._done.set_exception(exc)

    def _write(self) -> WrittenFile:
        held: list[WrittenFrame] = []
        container: Any = None
        streams: dict[str, Any] = {}
        last_pts: dict[str, int] = {}
        counts = {"audio": 0, "video": 0}
        started = time.monotonic()
        try:
            while True:
                timeout = None if container else max(0.05, HEADER_WAIT_S / 10)
                try:
                    frame = self._queue.get(timeout=timeout)
                except queue.Empty:
                    frame = _TICK
                if frame is None:
                    if container is None and held:
                        container, streams = self._open(held)
                    break
                if container is None:
                    if frame.kind != "tick":
                        held.append(frame)
                    video_key = any(f.kind == "video" and f.keyframe for f in held)
                    waited = time.monotonic() - started > HEADER_WAIT_S
                    if not (video_key or (waited and held)):
                        continue
                    container, streams = self._open(held)
                    pending, held = held, []
                else:
                    if frame.kind == "tick":
                        continue
                    pending = [frame]
                for item in pending:
                    stream = streams.get(item.kind)
                    if stream is None:
                        continue
                    # strictly increasing per track: timestamps come from two clocks (RTP
                    # and arrival), a switch must never step back
                    pts = max(item.pts_ms, last_pts.get(item.kind, -1) + 1)
                    last_pts[item.kind] = pts
                    packet = av.Packet(item.data)
                    packet.stream = stream
                    packet.time_base = _MS
                    packet.pts = packet.dts = pts
                    packet.is_keyframe = item.keyframe or item.kind == "audio"
                    container.mux(packet)
                    counts[item.kind] += 1
        finally:
            if container is not None:
                container.close()
        if container is None:
            self.path.touch()  # nothing arrived: an empty file says so, rather than none
        return written_as_is(self.path, video_frames=counts["video"], audio_frames=counts["audio"])

    def _open(self, held: list[WrittenFrame]) -> tuple[Any, dict[str, Any]]:
        held.sort(key=lambda f: f.pts_ms)
        video = next((f for f in held if f.kind == "video" and f.keyframe), None)
        fmt = "webm" if self.path.suffix == ".webm" else "matroska"
        options = {"cluster_time_limit": str(CLUSTER_MS), "flush_packets": "1"}
        container = av.open(str(self.path), "w", format=fmt, options=options)
        streams: dict[str, Any] = {}
        if video is not None:
            stream = container.add_stream("libvpx")  # VP8: only its parameters are used
            stream.width, stream.height = video.width, video.height
            stream.time_base = _MS
            streams["video"] = stream
        if any(f.kind == "audio" for f in held) or video is not None:
            # the halls' audio is Opus; a track exists even if nobody has spoken yet
            stream = container.add_stream("libopus", rate=48000)
            stream.time_base = _MS
            streams["audio"] = stream
        # drop video before its first keyframe: nothing could decode it
        if video is not None:
            held[:] = [f for f in held if f.kind != "video" or f.pts_ms >= video.pts_ms]
        return container, streams


def written_as_is(path: Path, *, video_frames: int = 0, audio_frames: int = 0) -> WrittenFile:
    """The file as it is on disk now: its size and checksum, ended now."""
    if not path.exists():
        path.touch()
    return WrittenFile(
        path=path,
        bytes=path.stat().st_size,
        sha256=_sha256(path),
        ended_at=datetime.now(UTC),
        video_frames=video_frames,
        audio_frames=audio_frames,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
