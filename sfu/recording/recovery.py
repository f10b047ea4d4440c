"""Recovery of recordings a worker left unfinished (it died, or was killed, while recording).

The file holds every cluster flushed before the end; the last one may be cut. Repairing
remuxes what is readable into a new file of the same format (packets copied, nothing decoded
or encoded), with a proper index, its duration and the chapters kept in the state file, and
puts it in place of the old one. A file that cannot be read is kept as it is.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av

from confbridge_kernel.recordings import RecordingInfo
from sfu.recording.state import RecordingState
from sfu.recording.writer import MEDIA_TYPES, container_chapters, sha256_of, write_atomically

log = logging.getLogger(__name__)

WORKER_DIED = "worker_died"


def remux(path: Path, state: RecordingState) -> int | None:
    """Rewrite `path` from its readable packets; the ms of its last one, None if nothing
    could be read (the file is left alone then)."""
    repaired = path.with_name(path.stem + ".repair" + path.suffix)
    last_ms: int | None = None
    try:
        with av.open(str(path)) as source:
            fmt = "webm" if path.suffix == ".webm" else "matroska"
            output: Any = av.open(str(repaired), "w", format=fmt)
            try:
                tracks = {}
                for stream in source.streams:
                    track = output.add_stream_from_template(stream)
                    track.metadata.update(stream.metadata)
                    tracks[stream.index] = track
                last_ms = _copy(source, output, tracks)
                if last_ms is not None and state.info.chapters and hasattr(output, "set_chapters"):
                    output.set_chapters(container_chapters(tuple(state.info.chapters), last_ms))
            finally:
                output.close()
    except (av.FFmpegError, OSError) as exc:
        log.warning("recording %s cannot be read for repair: %s", path.name, exc)
        repaired.unlink(missing_ok=True)
        return None
    if last_ms is None:
        repaired.unlink(missing_ok=True)
        return None
    os.replace(repaired, path)
    return last_ms


def _copy(source: Any, output: Any, tracks: dict[int, Any]) -> int | None:
    """Every packet up to the first unreadable byte; the last one's time in ms."""
    last_ms: int | None = None
    try:
        for packet in source.demux():
            at = packet.pts if packet.pts is not None else packet.dts
            if at is None or packet.size == 0 or packet.time_base is None:
                continue
            at_ms = round(float(at * packet.time_base) * 1000)
            packet.stream = tracks[packet.stream.index]
            output.mux(packet)
            last_ms = max(last_ms or 0, at_ms)
    except (av.FFmpegError, EOFError) as exc:  # the cluster cut by the crash
        log.info("recording: reading stopped at a cut: %s", exc)
    return last_ms


def recover(directory: Path, recording_id: str, state: RecordingState | None) -> RecordingState:
    """The final state of a recording cut short: its file repaired where it can be, ended at
    its last frame (or its last write), `failure` "worker_died"; written beside it."""
    path = media_file(directory, recording_id)
    if path is None:  # it died before the first frame: an empty file says so
        path = directory / f"{recording_id}.webm"
        path.touch()
    if state is None:
        # no state file (a recording of an older worker): what the file itself says
        started = datetime.fromtimestamp(path.stat().st_ctime, UTC)
        state = RecordingState(
            info=RecordingInfo(recording_id=recording_id, room="", started_at=started)
        )
    info = state.info
    ended_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    if path.stat().st_size > 0:
        last_ms = remux(path, state)
        if last_ms is not None:
            ended_at = info.started_at + timedelta(milliseconds=last_ms)
    final = info.model_copy(
        update={
            "ended_at": max(ended_at, info.started_at),
            "bytes": path.stat().st_size,
            "sha256": sha256_of(path),
            "media_type": MEDIA_TYPES[path.suffix],
            "failure": info.failure or WORKER_DIED,
        }
    )
    recovered = RecordingState(info=final, occurrence_id=state.occurrence_id)
    write_atomically(directory / f"{recording_id}.json", recovered.model_dump_json())
    return recovered


def media_file(directory: Path, recording_id: str) -> Path | None:
    """The recording's file (`.webm` or `.mkv`), None if it has none."""
    for suffix in MEDIA_TYPES:
        path = directory / f"{recording_id}{suffix}"
        if path.is_file():
            return path
    return None
