"""SFU worker processes that `confbridge serve` runs beside the control plane, and supervises."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from confbridge.auth.models import SfuNodeEnrolment
from confbridge.db import Database
from confbridge.nodes import service as node_service
from confbridge.settings import Settings
from confbridge.signing import PUBLIC_KEY_FILENAME, write_public_key
from confbridge.timeutil import utcnow

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.2
"""How often the supervisor looks whether a worker has died."""
RESTART_FIRST_DELAY_S = 0.5
RESTART_MAX_DELAY_S = 4.0
"""A dead worker is started again after 0.5, 1, 2, 4, 4 ... s: back within 5 s, without
spinning on a worker that cannot start (its port taken, say)."""
STABLE_AFTER_S = 30.0
"""A worker that ran this long starts its back-off afresh when it dies."""
# What a worker may see of serve's environment: nothing else (the admin password, the
# database URL and the secret key stay with the control plane).
INHERITED_VARIABLES = frozenset(
    {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR"}
)
INHERITED_PREFIXES = ("LC_",)
WORKER_PREFIX = "CONFBRIDGE_SFU_"  # the worker's own settings (sfu/config.py)
CONTROL_PLANE_SFU_PREFIX = "CONFBRIDGE_SFU__"  # control-plane settings: not the worker's


def _next_port(url: str, offset: int) -> str:
    """`url` with its port raised by `offset` (worker i listens on the base port + i)."""
    if offset == 0:
        return url
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return parts._replace(netloc=f"{host}:{port + offset}").geturl()


def inherited_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The part of `environ` (this process's by default) a worker inherits: an allow-list."""
    environ = dict(os.environ) if environ is None else environ
    return {
        name: value
        for name, value in environ.items()
        if name in INHERITED_VARIABLES
        or name.startswith(INHERITED_PREFIXES)
        or (name.startswith(WORKER_PREFIX) and not name.startswith(CONTROL_PLANE_SFU_PREFIX))
    }


def node_id_of(index: int) -> str:
    return f"{node_service.LOCAL_NODE_PREFIX}{index}"


@dataclass
class _Supervised:
    """One worker slot: its process now, and when to start it again after a death."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None


class LocalWorkers:
    """Owns the worker subprocesses: `start()` enrols and launches them and watches them, a
    dead one is started again (capped back-off) and its rooms move meanwhile; `close()` stops
    them. Each worker dies with its parent too (`CONFBRIDGE_SFU_PARENT_PID`, see sfu.main)."""

    def __init__(
        self, settings: Settings, *, control_url: str, database: Database | None = None
    ) -> None:
        self._settings = settings
        self._control_url = control_url
        self._database = database
        self._slots: list[_Supervised] = []
        self._keys: dict[int, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def environment(self, index: int, node_key: str = "") -> dict[str, str]:
        """Worker `index`'s whole environment: the allowed part of serve's, and its settings."""
        settings = self._settings
        public_key = write_public_key(
            settings.grant_key_path, settings.data_dir / PUBLIC_KEY_FILENAME
        )
        port = urlparse(settings.sfu.worker_admin_url).port or 8001
        environment = {
            **inherited_environment(),
            "CONFBRIDGE_SFU_NODE_ID": node_id_of(index),
            "CONFBRIDGE_SFU_NODE_KEY": node_key,
            "CONFBRIDGE_SFU_PARENT_PID": str(os.getpid()),
            "CONFBRIDGE_SFU_PORT": str(port + index),
            # each worker registers with its own address (the next port for each one)
            "CONFBRIDGE_SFU_PUBLIC_URL": _next_port(settings.sfu.public_url, index),
            "CONFBRIDGE_SFU_INTERNAL_URL": _next_port(settings.sfu.worker_admin_url, index),
            "CONFBRIDGE_SFU_MEDIA_IP": settings.sfu.media_ip,
            "CONFBRIDGE_SFU_CONTROL_URL": self._control_url,
            # only for Prometheus scraping the worker's /metrics (and reading /rooms)
            "CONFBRIDGE_SFU_NODE_SECRET": settings.sfu.node_secret,
            "CONFBRIDGE_SFU_GRANT_PUBLIC_KEY_FILE": str(public_key),
            "CONFBRIDGE_SFU_SPOOL_DIR": str(settings.data_dir / f"sfu-spool-{index}"),
            "CONFBRIDGE_SFU_RECORDINGS_DIR": str(settings.data_dir / f"recordings-{index}"),
            "CONFBRIDGE_SFU_LOG_FORMAT": settings.log_format,
            "CONFBRIDGE_SFU_UDP_MODE": settings.sfu.udp_mode,
            # each worker its own media port in single mode: the next one for each worker
            "CONFBRIDGE_SFU_UDP_PORT": str(
                settings.sfu.udp_port + index if settings.sfu.udp_port else 0
            ),
            "CONFBRIDGE_SFU_UDP_BATCH": "true" if settings.sfu.udp_batch else "false",
            "CONFBRIDGE_SFU_ICE_LITE": "true" if settings.sfu.ice_lite else "false",
            "CONFBRIDGE_SFU_RECORDING_MIXED_AUDIO": (
                "true" if settings.sfu.recording_mixed_audio else "false"
            ),
            "CONFBRIDGE_SFU_UDP_PORT_MIN": str(settings.sfu.udp_port_min),
            "CONFBRIDGE_SFU_UDP_PORT_MAX": str(settings.sfu.udp_port_max),
            # handed to WHIP/WHEP clients in Link headers, as in join answers
            "CONFBRIDGE_SFU_ICE_SERVERS": json.dumps(
                [server.model_dump(exclude_none=True) for server in settings.sfu.ice_servers]
            ),
        }
        turn = settings.sfu.turn
        if turn.enabled:
            # the worker mints its own TURN credentials for its Link headers
            environment["CONFBRIDGE_SFU_TURN_URLS"] = json.dumps(turn.urls)
            environment["CONFBRIDGE_SFU_TURN_SECRET"] = turn.shared_secret or ""
            environment["CONFBRIDGE_SFU_TURN_CREDENTIAL_TTL_S"] = str(turn.credential_ttl_s)
        if settings.sfu.announced_ip:
            environment["CONFBRIDGE_SFU_ANNOUNCED_IP"] = settings.sfu.announced_ip
        if settings.sfu.announced_port:
            environment["CONFBRIDGE_SFU_ANNOUNCED_PORT"] = str(settings.sfu.announced_port + index)
        return environment

    @property
    def processes(self) -> tuple[subprocess.Popen[bytes], ...]:
        """The worker processes now, in the order of their node ids (`local-<index>`)."""
        with self._lock:
            return tuple(slot.process for slot in self._slots if slot.process is not None)

    def node_key(self, index: int) -> str:
        """The key `serve` enrolled worker `index` with (for tests and the operator)."""
        return self._keys[index]

    def enrol(self) -> None:
        """Give each local worker a fresh key (the previous run's stop working), revoke those
        of workers no longer run, and take the previous run's workers as down: a node counts
        again when it heartbeats in this run."""
        if self._database is None:
            raise RuntimeError("LocalWorkers needs the database to enrol its workers")
        count = self._settings.sfu.local_workers
        now = utcnow()
        with self._database.session() as session:
            for enrolment in node_service.list_enrolments(session=session):
                index = enrolment.node_id.removeprefix(node_service.LOCAL_NODE_PREFIX)
                if enrolment.local and not (index.isdigit() and int(index) < count):
                    node_service.revoke(
                        session=session, node_id=enrolment.node_id, by="serve", now=now
                    )
            for index in range(count):
                node_id = node_id_of(index)
                _enrolment, self._keys[index] = node_service.enrol(
                    session=session,
                    node_id=node_id,
                    by="serve",
                    now=now,
                    allow_loopback=True,
                    local=True,
                    rotate=True,
                )
                node_service.mark_node_down(session=session, node_id=node_id, now=now)
            session.commit()

    def start(self) -> None:
        """Enrol and launch the workers; a supervisor thread keeps them running."""
        self.enrol()
        self._slots = [_Supervised(index) for index in range(self._settings.sfu.local_workers)]
        self._stop.clear()
        self._started.clear()
        # Every worker is started from this one thread: a worker's parent-death signal
        # follows the thread that started it, and this thread lives until close().
        self._thread = threading.Thread(target=self._supervise, name="sfu-supervisor", daemon=True)
        self._thread.start()
        self._started.wait(timeout=STOP_TIMEOUT_S)

    def _spawn(self, slot: _Supervised) -> None:
        command = [sys.executable, "-m", "confbridge.cli", "sfu"]
        environment = self.environment(slot.index, self._keys.get(slot.index, ""))
        process = subprocess.Popen(command, env=environment)
        with self._lock:
            slot.process, slot.started_at, slot.restart_at = process, time.monotonic(), None
        log.info("started SFU worker %s (pid %d)", node_id_of(slot.index), process.pid)

    def _supervise(self) -> None:
        try:
            for slot in self._slots:
                self._spawn(slot)
        finally:
            self._started.set()
        while not self._stop.wait(POLL_INTERVAL_S):
            for slot in self._slots:
                try:
                    self._look_after(slot)
                except Exception:  # keep supervising the others
                    log.exception("supervising SFU worker %s failed", node_id_of(slot.index))

    def _look_after(self, slot: _Supervised) -> None:
        now = time.monotonic()
        process = slot.process
        if slot.restart_at is None and process is not None and process.poll() is not None:
            if now - slot.started_at > STABLE_AFTER_S:
                slot.failures = 0
            delay = min(RESTART_FIRST_DELAY_S * 2**slot.failures, RESTART_MAX_DELAY_S)
            slot.failures += 1
            slot.restart_at = now + delay
            log.warning(
                "SFU worker %s (pid %d) exited with status %s; restarting it in %.1f s",
                node_id_of(slot.index),
                process.pid,
                process.returncode,
                delay,
            )
            self._died(node_id_of(slot.index))
        if slot.restart_at is not None and now >= slot.restart_at and not self._stop.is_set():
            self._spawn(slot)
            self.restarts += 1
            self._count_restart(node_id_of(slot.index))

    def _died(self, node_id: str) -> None:
        """No join goes to the dead worker from now on: its rooms move at their next join
        (or wait, with a Retry-After, when no other worker is up)."""
        if self._database is None:
            return
        with self._database.session() as session:
            node_service.mark_node_down(session=session, node_id=node_id, now=utcnow())
            session.commit()

    def _count_restart(self, node_id: str) -> None:
        """`confbridge_worker_restarts_total` reads this count from the database, so that
        every HTTP process and replica reports it."""
        if self._database is None:
            return
        with self._database.session() as session:
            enrolment = session.get(SfuNodeEnrolment, node_id)
            if enrolment is not None:
                enrolment.restarts += 1
                session.commit()

    def close(self) -> None:
        """Stop supervising, then stop every worker (SIGTERM, then SIGKILL after a while)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S)
            self._thread = None
        processes = self.processes
        for index in range(len(self._slots)):
            self._died(node_id_of(index))  # no join goes to a stopping worker
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with self._lock:
            self._slots.clear()
