"""A worker's recordings: start and stop per room, the state of each, its file.

Files live in `SfuSettings.recordings_dir` as `<id>.webm` (VP8) or `<id>.mkv` (H.264), with
`<id>.json` (`RecordingState`) written at the start, at every chapter and at the end. A state
that never ended belongs to a recording cut short (the worker died): `recover()` at the
worker's start, or a question about it, repairs its file and settles it.

Only the node holding a room records it: an edge (pipe or cascade) refuses, so a meeting is
recorded once however far it is relayed; a SIP leg is a peer of the room, not a recorder.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from confbridge_kernel.recordings import RECORDING_ID_PATTERN, RecordingCommand, RecordingInfo
from sfu.errors import SfuError
from sfu.recording.recorder import Recorder
from sfu.recording.recovery import media_file, recover
from sfu.recording.state import RecordingState, read_state
from sfu.recording.writer import MEDIA_TYPES
from sfu.room import Room

log = logging.getLogger(__name__)
_ID = re.compile(RECORDING_ID_PATTERN)

MAX_ENDED_KEPT = 1000
"""Recordings ended in this process whose final info is kept in memory as well as on disk."""
RecordingEnded = Callable[[RecordingState], None]
"""Tells the control plane of a recording that ended without being asked (an event)."""


class Recordings(Collector):
    """Starts and stops rooms' recorders; answers for the files in `directory`. Also the
    Prometheus collector of recordings active, bytes written and failures. `mixed_audio`:
    each recording also gets a mixed audio track (decoding the audio only)."""

    def __init__(
        self,
        directory: Path,
        on_ended: RecordingEnded | None = None,
        *,
        mixed_audio: bool = False,
    ) -> None:
        self.directory = directory
        self.on_ended = on_ended
        self.mixed_audio = mixed_audio
        self._active: dict[str, tuple[Recorder, Room]] = {}  # id → recorder, while it records
        # the final info of those ended here (a full disk may have refused their state file)
        self._ended: dict[str, RecordingInfo] = {}
        self._bytes_done = 0  # frame bytes of the recordings finished since the start
        self._failures = 0
        self._recovering = asyncio.Lock()
        self._ending: set[asyncio.Task[None]] = set()

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily("confbridge_sfu_recordings_active", "rooms being recorded")
        active.add_metric([], len(self._active))
        yield active
        written = CounterMetricFamily(
            "confbridge_sfu_recording_bytes", "media bytes handed to recording files"
        )
        queued = sum(recorder.bytes_queued for recorder, _room in self._active.values())
        written.add_metric([], self._bytes_done + queued)
        yield written
        failures = CounterMetricFamily(
            "confbridge_sfu_recording_failures",
            "recordings stopped because their file could not be written (e.g. a full disk)",
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
        if room.is_edge:
            raise SfuError(
                409, f"this media server relays room {room.name}; the node holding it records"
            )
        current = self.recording_in(room)
        if current is not None:
            raise SfuError(409, f"room {room.name} is already recording ({current.id})")
        recording_id = recording_id or uuid.uuid4().hex
        state = self._path(recording_id, ".json")
        if (
            recording_id in self._active
            or state.exists()
            or media_file(self.directory, recording_id)
        ):
            raise SfuError(409, f"recording {recording_id} exists already")
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        recorder = Recorder(
            recording_id,
            self.directory / recording_id,
            room=room.name,
            occurrence_id=room.occurrence_id,
            on_failure=self._writer_failed,
            mixed_audio=self.mixed_audio,
        )
        self._active[recording_id] = (recorder, room)
        room.record(recorder)
        return recorder.info()

    async def stop(self, room: Room) -> RecordingInfo:
        recorder = self.recording_in(room)
        if recorder is None:
            raise SfuError(409, f"room {room.name} is not recording")
        return (await self._end(recorder)).info

    async def room_closed(self, room: Room) -> None:
        """A room that closes while recording ends its recording (the control plane is told:
        nobody asked it to stop)."""
        recorder = self.recording_in(room)
        if recorder is not None:
            self._tell(await self._end(recorder))

    async def _end(self, recorder: Recorder) -> RecordingState:
        _recorder, room = self._active.get(recorder.id, (recorder, None))
        if room is not None and room.recorder is recorder:
            room.record(None)
        try:
            written = await recorder.stop()
        finally:
            if self._active.pop(recorder.id, None) is not None:
                self._bytes_done += recorder.bytes_queued
                self._failures += recorder.failed
        state = recorder.state(written)
        self._ended[recorder.id] = state.info
        if len(self._ended) > MAX_ENDED_KEPT:  # the oldest first (insertion order)
            del self._ended[next(iter(self._ended))]
        return state

    def _writer_failed(self, recorder: Recorder) -> None:
        """The file of `recorder` cannot be written (on the loop): stop that recording, keep
        what was written, tell the control plane; the room goes on without it."""
        if recorder.id not in self._active:
            return
        log.error("recording %s stopped: %s", recorder.id, recorder.failure)
        task = asyncio.get_running_loop().create_task(self._end_failed(recorder))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def _end_failed(self, recorder: Recorder) -> None:
        try:
            self._tell(await self._end(recorder))
        except Exception:
            log.exception("recording %s: could not be ended after its failure", recorder.id)

    def _tell(self, state: RecordingState) -> None:
        if self.on_ended is not None:
            self.on_ended(state)

    async def recover(self) -> list[RecordingState]:
        """Repair and settle every recording of `directory` that never ended (the worker
        died while it recorded); each is told to the control plane."""
        if not self.directory.is_dir():
            return []
        names = await asyncio.to_thread(lambda: sorted(p.name for p in self.directory.iterdir()))
        ids = {name.split(".", 1)[0] for name in names if not name.endswith(".tmp")}
        recovered = []
        for recording_id in sorted(ids):
            if recording_id in self._active or not _ID.match(recording_id):
                continue
            try:
                state = await self._settle(recording_id)
            except SfuError:
                continue  # logged; settled when asked for later
            if state is not None:
                recovered.append(state)
                self._tell(state)
        if recovered:
            log.warning("recovered %d recordings cut short", len(recovered))
        return recovered

    async def _settle(self, recording_id: str) -> RecordingState | None:
        """Recover `recording_id` if it never ended; None if it had ended (or has no file)."""
        async with self._recovering:
            state = await asyncio.to_thread(read_state, self._path(recording_id, ".json"))
            if state is not None and state.info.ended_at is not None:
                return None
            if state is None and media_file(self.directory, recording_id) is None:
                return None
            try:
                return await asyncio.to_thread(recover, self.directory, recording_id, state)
            except OSError as exc:  # e.g. the disk is still full: try again when asked again
                log.error("recording %s cannot be settled now: %s", recording_id, exc)
                raise SfuError(
                    503, f"recording {recording_id} cannot be settled now: {exc}"
                ) from None

    async def info(self, recording_id: str) -> RecordingInfo:
        """The state of a recording written here; 404 if there is no such recording."""
        active = self._active.get(recording_id)
        if active is not None:
            return active[0].info()
        if recording_id in self._ended:
            return self._ended[recording_id]
        path = self._path(recording_id, ".json")
        state = await asyncio.to_thread(read_state, path)
        if state is not None and state.info.ended_at is not None:
            return state.info
        recovered = await self._settle(recording_id)
        if recovered is not None:
            return recovered.info
        state = await asyncio.to_thread(read_state, path)  # settled meanwhile
        if state is None:
            raise SfuError(404, f"no recording {recording_id} on this worker")
        return state.info

    async def delete(self, recording_id: str) -> None:
        """Remove a finished recording's file and its `.json` (the control plane's retention);
        409 while it records, 404 if there is nothing to remove."""
        if recording_id in self._active:
            raise SfuError(409, f"recording {recording_id} is still being written; stop it first")
        suffixes = (*MEDIA_TYPES, ".json")  # the file, WebM or Matroska, and its state
        paths = [self._path(recording_id, suffix) for suffix in suffixes]
        self._ended.pop(recording_id, None)
        removed = await asyncio.to_thread(_unlink_all, paths)
        if not removed:
            raise SfuError(404, f"no recording {recording_id} on this worker")

    def file(self, recording_id: str) -> Path:
        """The file of a recording written here (still growing while active); 404 if none."""
        self._path(recording_id, "")
        path = media_file(self.directory, recording_id)
        if path is None:
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
