"""A worker's recordings: start and stop per room, the state of each, its file.

Files live in `SfuSettings.recordings_dir` as `<id>.webm`, with `<id>.json` (`RecordingInfo`)
written when the recording ends. A file without its `.json` was cut short (the worker died):
asking for it settles it then, with its size, checksum and last write as its end.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from confbridge_kernel.recordings import RECORDING_ID_PATTERN, RecordingCommand, RecordingInfo
from sfu.errors import SfuError
from sfu.recording.recorder import Recorder
from sfu.room import Room

_ID = re.compile(RECORDING_ID_PATTERN)


class Recordings(Collector):
    """Starts and stops rooms' recorders; answers for the files in `directory`. Also the
    Prometheus collector of recordings active, bytes written and failures."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._active: dict[str, Recorder] = {}  # recording id → its recorder, while it records
        self._bytes_done = 0  # frame bytes of the recordings finished since the start
        self._failures = 0

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily("confbridge_sfu_recordings_active", "rooms being recorded")
        active.add_metric([], len(self._active))
        yield active
        written = CounterMetricFamily(
            "confbridge_sfu_recording_bytes", "media bytes handed to recording files"
        )
        written.add_metric(
            [], self._bytes_done + sum(r.bytes_queued for r in self._active.values())
        )
        yield written
        failures = CounterMetricFamily(
            "confbridge_sfu_recording_failures", "recordings whose file could not be written"
        )
        failures.add_metric([], self._failures)
        yield failures

    async def command(self, room: Room, command: RecordingCommand) -> RecordingInfo:
        """Apply a start or stop to `room`; 409 when it is already in that state."""
        if command.action == "start":
            return await self.start(room, command.recording_id)
        return await self.stop(room)

    def recording_in(self, room: Room) -> Recorder | None:
        """The recorder writing `room`'s programme, if any."""
        recorder = room.recorder
        return recorder if isinstance(recorder, Recorder) else None

    async def start(self, room: Room, recording_id: str | None = None) -> RecordingInfo:
        current = self.recording_in(room)
        if current is not None:
            raise SfuError(409, f"room {room.name} is already recording ({current.id})")
        recording_id = recording_id or uuid.uuid4().hex
        path = self._path(recording_id, ".webm")
        if path.exists() or recording_id in self._active:
            raise SfuError(409, f"recording {recording_id} exists already")
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        recorder = Recorder(recording_id, path, room=room.name)
        self._active[recording_id] = recorder
        room.record(recorder)
        return recorder.info()

    async def stop(self, room: Room) -> RecordingInfo:
        recorder = self.recording_in(room)
        if recorder is None:
            raise SfuError(409, f"room {room.name} is not recording")
        room.record(None)
        try:
            written = await recorder.stop()
        finally:
            self._active.pop(recorder.id, None)
            self._bytes_done += recorder.bytes_queued
        self._failures += recorder.failed
        return recorder.info(written)

    async def room_closed(self, room: Room) -> None:
        """A room that closes while recording ends its recording."""
        if room.recorder is not None:
            await self.stop(room)

    async def info(self, recording_id: str) -> RecordingInfo:
        """The state of a recording written here; 404 if there is no such file."""
        active = self._active.get(recording_id)
        if active is not None:
            return active.info()
        sidecar = self._path(recording_id, ".json")
        if sidecar.exists():
            return RecordingInfo.model_validate_json(await asyncio.to_thread(sidecar.read_bytes))
        path = self.file(recording_id)
        info = await asyncio.to_thread(_settle, recording_id, path)
        await asyncio.to_thread(sidecar.write_text, info.model_dump_json())
        return info

    async def delete(self, recording_id: str) -> None:
        """Remove a finished recording's file and its `.json` (the control plane's retention);
        409 while it records, 404 if there is nothing to remove."""
        if recording_id in self._active:
            raise SfuError(409, f"recording {recording_id} is still being written; stop it first")
        paths = [self._path(recording_id, ".webm"), self._path(recording_id, ".json")]
        removed = await asyncio.to_thread(_unlink_all, paths)
        if not removed:
            raise SfuError(404, f"no recording {recording_id} on this worker")

    def file(self, recording_id: str) -> Path:
        """The file of a recording written here (still growing while active); 404 if none."""
        path = self._path(recording_id, ".webm")
        if not path.is_file():
            raise SfuError(404, f"no recording {recording_id} on this worker")
        return path

    def _path(self, recording_id: str, suffix: str) -> Path:
        if not _ID.match(recording_id):
            raise SfuError(422, "a recording id is 1 to 64 lower-case letters, digits or '-'")
        return self.directory / f"{recording_id}{suffix}"


def _unlink_all(paths: list[Path]) -> int:
    """Remove those of `paths` that exist; how many there were."""
    removed = 0
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed


def _settle(recording_id: str, path: Path) -> RecordingInfo:
    """The info of a file whose recording was cut short (no `.json`): it ends at its last write."""
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return RecordingInfo(
        recording_id=recording_id,
        room="",
        started_at=datetime.fromtimestamp(stat.st_ctime, UTC),
        ended_at=datetime.fromtimestamp(stat.st_mtime, UTC),
        bytes=stat.st_size,
        sha256=digest.hexdigest(),
    )
