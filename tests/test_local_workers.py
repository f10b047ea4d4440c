"""What `confbridge serve` hands its local SFU workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from confbridge.auth import service as auth_service
from confbridge.db import Database
from confbridge.local_workers import LocalWorkers
from confbridge.nodes import service as node_service
from sfu.config import WorkerSettings
from tests.support.factories import make_settings
from tests.support.servers import free_port

SECRETS = {
    "CONFBRIDGE_ADMIN_PASSWORD": "the-first-admin-password",
    "CONFBRIDGE_DATABASE_URL": "postgresql://confbridge:db-password@db/confbridge",
    "CONFBRIDGE_SECRET_KEY": "the-control-plane-secret-key-0123456789",
}


def test_local_workers_environment_carries_media_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        "",
        tmp_path,
        sfu={
            "public_url": "http://127.0.0.1:9101",
            "media_ip": "127.0.0.1",
            "announced_ip": "203.0.113.7",
            "udp_port": 41000,
            "announced_port": 51000,
            "udp_port_min": 40000,
            "udp_port_max": 40099,
            "ice_servers": [
                {"urls": ["turn:turn.example.vn:3478"], "username": "u", "credential": "c"}
            ],
        },
    )
    workers = LocalWorkers(settings, control_url="http://127.0.0.1:9100")
    first, second = workers.environment(0), workers.environment(1)
    assert (first["CONFBRIDGE_SFU_PORT"], second["CONFBRIDGE_SFU_PORT"]) == ("9101", "9102")
    assert json.loads(first["CONFBRIDGE_SFU_ICE_SERVERS"]) == [
        {"urls": ["turn:turn.example.vn:3478"], "username": "u", "credential": "c"}
    ]
    # the worker reads them back as its own settings
    worker_env = {k: v for k, v in first.items() if k.startswith("CONFBRIDGE_SFU_")}
    for key, value in worker_env.items():
        monkeypatch.setenv(key, value)
    worker = WorkerSettings()
    assert worker.udp_port_range == (40000, 40099)
    assert (worker.udp_mode, worker.udp_port, worker.announced_port) == ("single", 41000, 51000)
    # each local worker its own media port, and its own announced one
    assert (second["CONFBRIDGE_SFU_UDP_PORT"], second["CONFBRIDGE_SFU_ANNOUNCED_PORT"]) == (
        "41001",
        "51001",
    )
    assert worker.announced_ip == "203.0.113.7"
    assert worker.port == 9101 and worker.control_url == "http://127.0.0.1:9100"


def test_local_workers_environment_without_announced_ip(tmp_path: Path) -> None:
    workers = LocalWorkers(make_settings("", tmp_path), control_url="http://127.0.0.1:9100")
    environment = workers.environment(0)
    assert "CONFBRIDGE_SFU_ANNOUNCED_IP" not in environment
    assert environment["CONFBRIDGE_SFU_UDP_PORT_MIN"] == "0"


def test_local_workers_each_worker_registers_its_own_address(tmp_path: Path) -> None:
    settings = make_settings(
        "", tmp_path, sfu={"public_url": "http://127.0.0.1:8001", "local_workers": 2}
    )
    workers = LocalWorkers(settings, control_url="http://127.0.0.1:8000")
    first, second = workers.environment(0), workers.environment(1)
    assert first["CONFBRIDGE_SFU_PUBLIC_URL"] == "http://127.0.0.1:8001"
    assert second["CONFBRIDGE_SFU_PUBLIC_URL"] == "http://127.0.0.1:8002"
    assert second["CONFBRIDGE_SFU_INTERNAL_URL"] == "http://127.0.0.1:8002"


def test_local_workers_environment_is_an_allow_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker sees none of the control plane's secrets, only what it needs."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_ALL", "vi_VN.UTF-8")
    monkeypatch.setenv("CONFBRIDGE_SFU_CAPACITY_PEERS", "40")  # a worker setting: passed on
    monkeypatch.setenv("CONFBRIDGE_SFU__TURN__SHARED_SECRET", "control-plane-only")
    workers = LocalWorkers(make_settings("", tmp_path), control_url="http://127.0.0.1:9100")
    environment = workers.environment(0, "cbn_key")
    for name in (*SECRETS, "CONFBRIDGE_SFU__TURN__SHARED_SECRET", "AWS_SECRET_ACCESS_KEY"):
        assert name not in environment
    assert environment["PATH"] == os.environ["PATH"] and environment["LC_ALL"] == "vi_VN.UTF-8"
    assert environment["CONFBRIDGE_SFU_CAPACITY_PEERS"] == "40"
    assert environment["CONFBRIDGE_SFU_NODE_KEY"] == "cbn_key"
    assert environment["CONFBRIDGE_SFU_PARENT_PID"] == str(os.getpid())
    assert all(
        name in {"PATH", "HOME", "LANG", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR"}
        or name.startswith(("LC_", "CONFBRIDGE_SFU_"))
        for name in environment
    )


def test_local_workers_rotate_their_keys_at_every_start(database: Database, tmp_path: Path) -> None:
    """The previous run's keys stop working; a worker no longer run loses its key."""
    settings = make_settings(
        database.settings.database_url or "", tmp_path, sfu={"local_workers": 3}
    )
    first = LocalWorkers(settings, control_url="http://127.0.0.1:9", database=database)
    first.enrol()
    keys = [first.node_key(i) for i in range(3)]
    fewer = make_settings(database.settings.database_url or "", tmp_path, sfu={"local_workers": 1})
    second = LocalWorkers(fewer, control_url="http://127.0.0.1:9", database=database)
    second.enrol()
    with database.session() as session:
        assert all(auth_service.authenticate_node(session=session, key=k) is None for k in keys)
        (enrolment,) = node_service.list_enrolments(session=session)
        assert (enrolment.node_id, enrolment.local, enrolment.allow_loopback) == (
            "local-0",
            True,
            True,
        )
        assert auth_service.authenticate_node(session=session, key=second.node_key(0)) is enrolment


# --- workers die with `serve` -------------------------------------------------------------------


def _workers_of(parent_pid: int) -> list[int]:
    """Pids of the `confbridge sfu` processes whose parent is `parent_pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == parent_pid and command[-3:-1] == [b"confbridge.cli", b"sfu"]:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Serve:
    """`confbridge serve` in a subprocess, from an empty directory, with one local worker."""

    def __init__(self, tmp_path: Path) -> None:
        self.port, worker_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "serve.log"
        workdir = tmp_path / "work"
        workdir.mkdir(exist_ok=True)
        self.workdir = workdir
        self.environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CONFBRIDGE_")},
            "CONFBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}",
            "CONFBRIDGE_DATA_DIR": str(tmp_path / "data"),
            "CONFBRIDGE_DEMO__ENABLED": "false",
            "CONFBRIDGE_ADMIN_PASSWORD": "a-long-admin-password-0123",
            "CONFBRIDGE_SFU__LOCAL_WORKERS": "1",
            "CONFBRIDGE_SFU__PUBLIC_URL": f"http://127.0.0.1:{worker_port}",
            "CONFBRIDGE_SFU__UDP_PORT": "0",  # a media port the system picks
            "CONFBRIDGE_LOG_FORMAT": "text",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Serve:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "confbridge.cli", "serve", "--port", str(self.port)],
                cwd=self.workdir,
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def ready(self, timeout_s: float = 90) -> list[int]:
        """Wait for `/readyz` (its worker registered in this run); the worker pids."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return _workers_of(self.process.pid)
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("serve did not get ready:\n" + self.log.read_text()[-3000:])


def _gone(pids: list[int], timeout_s: float = 15) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.integration
def test_local_workers_die_with_serve_on_sigterm_and_on_sigkill(tmp_path: Path) -> None:
    """SIGTERM: serve stops its workers and goes; SIGKILL: its workers follow it (parent-death
    signal). Either way the next serve's workers start (no orphan holds their spool)."""
    serve = Serve(tmp_path).start()
    workers = serve.ready()
    assert len(workers) == 1
    assert serve.process is not None
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=30) == -signal.SIGTERM  # ended as SIGTERM asks
    # serve stopped (and reaped) its workers before it went
    assert _gone(workers, timeout_s=1), "a worker outlived serve (SIGTERM)"

    serve.start()
    workers = serve.ready()
    assert len(workers) == 1
    serve.process.send_signal(signal.SIGKILL)
    serve.process.wait(timeout=10)
    assert _gone(workers), "a worker outlived serve (SIGKILL)"

    serve.start()
    workers = serve.ready()  # its worker started and registered: nothing held its spool
    assert len(workers) == 1
    serve.process.send_signal(signal.SIGTERM)
    serve.process.wait(timeout=30)
    assert _gone(workers)
    assert "SpoolInUse" not in serve.log.read_text()


def test_local_workers_environment_range_mode_and_system_picked_ports(tmp_path: Path) -> None:
    ranged = make_settings("", tmp_path, sfu={"udp_mode": "range"})
    environment = LocalWorkers(ranged, control_url="http://127.0.0.1:9100").environment(1)
    assert environment["CONFBRIDGE_SFU_UDP_MODE"] == "range"
    assert environment["CONFBRIDGE_SFU_ICE_LITE"] == "true"
    full = make_settings("", tmp_path, sfu={"ice_lite": False})
    environment = LocalWorkers(full, control_url="http://127.0.0.1:9100").environment(1)
    assert environment["CONFBRIDGE_SFU_ICE_LITE"] == "false"
    picked = make_settings("", tmp_path, sfu={"udp_port": 0})
    environment = LocalWorkers(picked, control_url="http://127.0.0.1:9100").environment(1)
    assert environment["CONFBRIDGE_SFU_UDP_PORT"] == "0"  # not 1: the system picks each one
