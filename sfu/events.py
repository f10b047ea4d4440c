"""The worker's event reporter: events go to a local spool on disk, then to the control plane.

`EventReporter.emit()` is called from the media path, so it only appends to the spool (a SQLite
file in WAL mode: one small write, no fsync) and wakes the delivery task. The delivery task posts
the oldest events in batches to `POST {control_url}/api/v1/sfu/events` and deletes them from the
spool once the control plane has acknowledged them. While the control plane is away events wait
on disk, so a worker restart loses nothing; each event keeps its id, and the control plane stores
an id once, so a batch delivered twice (acknowledgement lost) is not doubled.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import IO

import httpx
from pydantic import ValidationError

from confbridge_kernel.contracts import EVENTS_PATH, EventAck, EventType, SfuEvent
from confbridge_kernel.tasks import OwnedTask

log = logging.getLogger(__name__)

SPOOL_FILENAME = "events.sqlite3"
LOCK_FILENAME = "events.lock"
DEFAULT_MAX_ROWS = 100_000
DEFAULT_BATCH_SIZE = 500  # the contract allows 1000 per batch
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
# Gather the events of one burst (a room opening, a stats round) into one request.
LINGER_S = 0.05
CONNECT_TIMEOUT_S = 3.0
REQUEST_TIMEOUT_S = 15.0
# The emitting thread waits this long at most for the delivery thread's short DELETE.
WRITE_BUSY_TIMEOUT_MS = 1000
MAX_UNSAVED = 10_000
DROPPABLE_TYPE = EventType.stats.value  # joined, left and floor_changed are never dropped
# Refused for what the events say (malformed; or 403: another node's, or a room this node
# never held): set apart and dropped. A refused key (401) is retried: it may be enrolled yet.
PERMANENT_REJECTIONS = frozenset({400, 403, 413, 422})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spool_type_seq ON spool (type, seq);
"""


class SpoolInUse(RuntimeError):
    """Another reporter (another worker process) already owns this spool directory."""


class EventSpool:
    """The on-disk queue: append, read the oldest, delete delivered rows, stay bounded.

    Two connections: one for the emitting thread (the event loop) and one for the delivery
    thread, each behind its own lock, so neither waits on the other's Python work.
    """

    def __init__(self, directory: Path, *, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / SPOOL_FILENAME
        self.max_rows = max_rows
        self._lock_file = _lock_directory(directory / LOCK_FILENAME)
        self._writer = self._connect(autocheckpoint=False)
        self._reader = self._connect(autocheckpoint=True)
        self._writer_lock = threading.Lock()
        self._reader_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._reader.executescript(_SCHEMA)
        self._depth = self._reader.execute("SELECT count(*) FROM spool").fetchone()[0]
        self.dropped = 0

    def _connect(self, *, autocheckpoint: bool) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit survives a crash of the worker process without an fsync per event
        # (only a power loss can take the last few).
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA journal_size_limit=8388608")
        if not autocheckpoint:
            # Checkpoints (which fsync) run in the delivery thread, never in emit().
            connection.execute("PRAGMA wal_autocheckpoint=0")
            connection.execute(f"PRAGMA busy_timeout={WRITE_BUSY_TIMEOUT_MS}")
        return connection

    @property
    def depth(self) -> int:
        """Events waiting for delivery."""
        return self._depth

    def _count(self, change: int) -> None:
        with self._count_lock:
            self._depth += change

    def append(self, event_id: str, event_type: str, body: str) -> bool:
        """Spool one event; False when it was dropped (full of undeliverable events)."""
        with self._writer_lock:
            if self._depth >= self.max_rows and not self._make_room(event_type):
                return False
            cursor = self._writer.execute(
                "INSERT OR IGNORE INTO spool (id, type, body) VALUES (?, ?, ?)",
                (event_id, event_type, body),
            )
            self._count(cursor.rowcount)
        return True

    def _make_room(self, event_type: str) -> bool:
        """Drop the oldest stats events; True when the new event may be added."""
        chunk = max(1, self.max_rows // 100)  # drop a few at once: one log line per chunk
        cursor = self._writer.execute(
            "DELETE FROM spool WHERE seq IN "
            "(SELECT seq FROM spool WHERE type = ? ORDER BY seq LIMIT ?)",
            (DROPPABLE_TYPE, chunk),
        )
        dropped = cursor.rowcount
        self._count(-dropped)
        if dropped:
            self.dropped += dropped
            log.warning(
                "event spool full (%d rows): dropped the %d oldest stats event(s)",
                self.max_rows,
                dropped,
            )
            return True
        if event_type == DROPPABLE_TYPE:
            self.dropped += 1
            return False
        # Attendance and floor events are never dropped: the bound is exceeded instead.
        log.warning("event spool full of attendance/floor events (%d); keeping them", self._depth)
        return True

    def oldest(self, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` (seq, JSON body) pairs, oldest first."""
        with self._reader_lock:
            cursor = self._reader.execute(
                "SELECT seq, body FROM spool ORDER BY seq LIMIT ?", (limit,)
            )
            return cursor.fetchall()

    def delete(self, seqs: Sequence[int]) -> None:
        """Forget delivered events."""
        with self._reader_lock:
            removed = 0
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                marks = ",".join("?" * len(chunk))
                cursor = self._reader.execute(f"DELETE FROM spool WHERE seq IN ({marks})", chunk)
                removed += cursor.rowcount
            self._count(-removed)

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the file so that it does not grow without end."""
        with self._reader_lock:
            self._reader.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        with self._writer_lock, self._reader_lock:
            self._writer.close()
            self._reader.close()
            self._lock_file.close()  # releases the directory lock


def _lock_directory(path: Path) -> IO[str]:
    """Hold an exclusive lock on the spool directory for this process's lifetime."""
    lock_file = path.open("a")
    try:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise SpoolInUse(f"event spool {path.parent} is used by another worker") from None
    return lock_file


def _refused_occurrences(response: httpx.Response) -> set[int]:
    """The occurrences a 403 names (`occurrence_ids`): rooms this node never held."""
    try:
        named = response.json().get("occurrence_ids") or []
    except (ValueError, AttributeError):
        return set()
    return {value for value in named if isinstance(value, int)}


def _occurrence_of(body: str) -> int | None:
    try:
        value = json.loads(body).get("occurrence_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


class _Retry(Exception):
    """Delivery failed for a reason that may pass (control plane down, overloaded)."""


class EventReporter:
    """Spools `SfuEvent`s and delivers them to the control plane; owns its delivery task.

    `start()` creates the task, `close()` cancels it and waits for it. Events emitted before
    `start()` or while the control plane is down wait in the spool.
    """

    def __init__(
        self,
        control_url: str,
        node_key: str,
        spool_dir: Path | str,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        linger_s: float = LINGER_S,
    ) -> None:
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size must be between 1 and 1000")
        self.url = control_url.rstrip("/") + EVENTS_PATH
        self._headers = {
            "Authorization": f"Bearer {node_key}",
            "Content-Type": "application/json",
        }
        self._spool = EventSpool(Path(spool_dir), max_rows=max_rows)
        self._batch_size = batch_size
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._linger_s = linger_s
        self._unsaved: deque[tuple[str, str, str]] = deque(maxlen=MAX_UNSAVED)
        self._unsaved_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task = OwnedTask("sfu-event-delivery")
        self._http: httpx.AsyncClient | None = None
        self.delivered = 0
        self.failures = 0

    @property
    def depth(self) -> int:
        """Events not yet acknowledged by the control plane (on disk, plus any unsaved)."""
        return self._spool.depth + len(self._unsaved)

    @property
    def dropped(self) -> int:
        """Stats events dropped because the spool was full."""
        return self._spool.dropped

    def start(self) -> None:
        """Start delivering; call from the event loop that will own the task."""
        if self._task.running:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._wake.set()  # deliver whatever an earlier run left in the spool
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        )
        self._task.start(self._run())

    async def close(self) -> None:
        """Stop delivering; undelivered events stay in the spool for the next start."""
        await self._task.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await asyncio.to_thread(self._spool.close)

    def emit(self, event: SfuEvent) -> None:
        """Record an event for delivery; never raises and never waits on the network."""
        record = (event.id, event.type.value, event.model_dump_json())
        if self._unsaved:
            self._retry_unsaved()
        if not self._save(record):
            self._unsaved.append(record)
        self._wake_delivery()

    def _save(self, record: tuple[str, str, str]) -> bool:
        try:
            self._spool.append(*record)
        except sqlite3.Error as exc:
            # A full disk, say: keep it in memory and try again with the next event.
            log.error("cannot spool event %s: %s", record[0], exc)
            return False
        return True

    def _retry_unsaved(self) -> None:
        with self._unsaved_lock:
            while self._unsaved and self._save(self._unsaved[0]):
                self._unsaved.popleft()

    def _wake_delivery(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:  # emitted from another thread
            loop.call_soon_threadsafe(wake.set)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until everything emitted so far is delivered; False on timeout."""
        deadline = time.monotonic() + timeout_s
        self._wake_delivery()
        while self.depth > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def _run(self) -> None:
        assert self._wake is not None
        backoff_s = self._backoff_initial_s
        while True:
            try:
                if self._unsaved:
                    self._retry_unsaved()
                rows = await asyncio.to_thread(self._spool.oldest, self._batch_size)
                if rows:
                    await self._deliver(rows)
                    backoff_s = self._backoff_initial_s
                    continue
                await asyncio.to_thread(self._spool.checkpoint)
                await self._wake.wait()
                self._wake.clear()
                await asyncio.sleep(self._linger_s)
            except _Retry as exc:
                self.failures += 1
                delay_s = backoff_s / 2 + random.uniform(0, backoff_s / 2)
                log.warning(
                    "event delivery failed (%s); %d event(s) spooled, retrying in %.1fs",
                    exc,
                    self.depth,
                    delay_s,
                )
                with suppress(sqlite3.Error):
                    await asyncio.to_thread(self._spool.checkpoint)
                await asyncio.sleep(delay_s)
                backoff_s = min(backoff_s * 2, self._backoff_max_s)
            except Exception:  # keep delivering: a bug here must not silence the worker
                log.exception("event delivery loop failed; retrying")
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self._backoff_max_s)

    async def _deliver(self, rows: Sequence[tuple[int, str]]) -> None:
        """Post `rows` and delete them once acknowledged.

        A batch refused as malformed is split until the bad event is alone, and that one is
        dropped: one bad event must not hold up all the others behind it. Events of rooms the
        control plane names as never held here (403) are dropped at once, the rest sent again.
        """
        response = await self._post(rows)
        status = response.status_code
        if status == 200:
            self._check_ack(response, len(rows))
            await asyncio.to_thread(self._spool.delete, [seq for seq, _ in rows])
            self.delivered += len(rows)
            return
        refused = _refused_occurrences(response) if status == 403 else set()
        dropped = [row for row in rows if _occurrence_of(row[1]) in refused]
        if dropped:
            log.error(
                "control plane refused %d event(s) of rooms this node never held (%s): dropped",
                len(dropped),
                ", ".join(map(str, sorted(refused)[:20])),
            )
            await asyncio.to_thread(self._spool.delete, [seq for seq, _ in dropped])
            gone = {seq for seq, _ in dropped}
            kept = [row for row in rows if row[0] not in gone]
            if kept:
                await self._deliver(kept)
            return
        if status in PERMANENT_REJECTIONS:
            if len(rows) == 1:
                log.error("control plane refused event %.500s: %.300s", rows[0][1], response.text)
                await asyncio.to_thread(self._spool.delete, [rows[0][0]])
                return
            middle = len(rows) // 2
            await self._deliver(rows[:middle])
            await self._deliver(rows[middle:])
            return
        if status == 401:
            raise _Retry("the control plane refused this node's key (HTTP 401)")
        raise _Retry(f"HTTP {status} from the control plane")

    async def _post(self, rows: Sequence[tuple[int, str]]) -> httpx.Response:
        assert self._http is not None
        # The bodies are already JSON: join them rather than parse and re-serialise.
        body = '{"events":[' + ",".join(b for _, b in rows) + "]}"
        try:
            return await self._http.post(self.url, content=body.encode(), headers=self._headers)
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise _Retry(reason) from exc

    def _check_ack(self, response: httpx.Response, sent: int) -> None:
        try:
            ack = EventAck.model_validate_json(response.content)
        except ValidationError:
            log.warning("control plane acknowledged with an unexpected body: %.200s", response.text)
            return
        counted = ack.stored + ack.duplicates
        if counted != sent:
            log.warning("control plane acknowledged %d of %d event(s)", counted, sent)
