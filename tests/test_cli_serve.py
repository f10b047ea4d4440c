"""`confbridge serve` as a process: what it refuses, what its console shows a newcomer, and
the files it leaves in its data directory."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port

NODE_SECRET = "serve-test-node-secret-0123456789abcdef"
READY_TIMEOUT_S = 60.0
REFUSAL_TIMEOUT_S = 30.0
BLOCK_PASSWORD = re.compile(r"one-time password \(shown once\): (\S+)")
BLOCK_TOKEN = re.compile(r"token \(shown once\): (cbt_\S+)")


@pytest.mark.parametrize("env", ["development", "test"])  # production: refused on any host
def test_serve_refuses_default_secrets_beyond_loopback(
    database_file: Path, monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    monkeypatch.setenv("CONFBRIDGE_ENV", env)
    command = [sys.executable, "-m", "confbridge.cli", "serve", "--host", "0.0.0.0"]
    # a process of its own: a serve that wrongly starts is ended, not left serving
    process = subprocess.Popen(
        [*command, "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=REFUSAL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("serve started on 0.0.0.0 with the public default secrets")
    assert process.returncode == 2, stderr
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith(
        "config error: secret_key: is the public default, refused when listening on 0.0.0.0"
    )
    assert "Traceback" not in stdout + stderr
    assert not database_file.exists()  # refused before touching anything


@dataclass
class ServeProcess:
    """`confbridge serve` started from an empty directory, with one local worker."""

    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    stderr_lines: list[str] = field(default_factory=list)
    stdout_lines: list[str] = field(default_factory=list)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve was not ready in time:\n{self.output()}")

    def stop(self) -> None:
        """SIGTERM, then whatever is left of its process group (its workers) is ended too."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            time.sleep(1)

    def output(self) -> str:
        return "\n".join(self.stdout_lines) + "\n--- stderr\n" + "\n".join(self.stderr_lines)


def _collect(stream: object, into: list[str]) -> threading.Thread:
    def read() -> None:
        try:
            for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
                into.append(raw.decode(errors="replace").rstrip("\r\n"))
        except OSError:  # a pty's reading end fails (EIO) once the process has closed it
            pass

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator[object]:
    started: list[ServeProcess] = []

    def start(*, terminal: bool = False) -> ServeProcess:
        workdir = tmp_path / "empty"
        workdir.mkdir()
        port, worker_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONFBRIDGE_")}
        env.update(
            {
                "CONFBRIDGE_DATA_DIR": str(tmp_path / "data"),
                "CONFBRIDGE_SFU__LOCAL_WORKERS": "1",
                "CONFBRIDGE_SFU__PUBLIC_URL": f"http://127.0.0.1:{worker_port}",
                "CONFBRIDGE_SFU__UDP_PORT": "0",  # a media port the system picks
                "CONFBRIDGE_SFU__NODE_SECRET": NODE_SECRET,
            }
        )
        command = [sys.executable, "-m", "confbridge.cli", "serve", "--port", str(port)]
        if terminal:
            leader, follower = os.openpty()
            process = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=follower,
                start_new_session=True,
            )
            os.close(follower)
            stderr = os.fdopen(leader, "rb", buffering=0)
        else:
            process = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            stderr = process.stderr
        served = ServeProcess(process, f"http://127.0.0.1:{port}", tmp_path / "data")
        _collect(process.stdout, served.stdout_lines)
        _collect(stderr, served.stderr_lines)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def test_serve_first_start_piped_console_and_private_data_dir(start_serve: object) -> None:
    """Piped (journald, docker logs): JSON from serve and its worker alike; no heartbeat or
    scrape lines at info, no credential in any line; the first start stands out on stdout;
    the data directory and its files are readable by the service's user alone."""
    served: ServeProcess = start_serve()  # type: ignore[operator]
    served.wait_ready()
    assert httpx.get(f"{served.url}/terminal?code=ABCD-EFGH&lang=en").status_code == 200
    scrape = httpx.get(f"{served.url}/metrics", headers={"Authorization": f"Bearer {NODE_SECRET}"})
    assert scrape.status_code == 200
    time.sleep(6)  # at least one more worker heartbeat (every 5 s)
    served.stop()

    entries = [json.loads(line) for line in served.stderr_lines if line.strip()]
    loggers = {entry["logger"] for entry in entries}
    assert "sfu.heartbeat" in loggers, served.output()  # the worker's lines are JSON too
    access = [e["message"] for e in entries if e["logger"] == "uvicorn.access"]
    assert any("/terminal?code=**********&lang=en" in line for line in access), access
    assert not [line for line in access if "heartbeat" in line or "/metrics" in line], access

    stdout = "\n".join(served.stdout_lines)
    assert f"sign in at {served.url}/sign-in" in stdout
    password, token = BLOCK_PASSWORD.search(stdout), BLOCK_TOKEN.search(stdout)
    assert password and token, stdout
    stderr = "\n".join(served.stderr_lines)
    for secret in (password.group(1), token.group(1), "ABCD-EFGH", NODE_SECRET):
        assert secret not in stderr, secret

    # the database, the grant key and the worker's spool: readable by the service alone
    assert stat.S_IMODE(served.data_dir.stat().st_mode) == 0o700
    files = [path for path in served.data_dir.rglob("*") if path.is_file()]
    names = {path.name for path in files}
    assert {"confbridge.sqlite3", "grant-key.pem"} <= names, names
    assert any(path.parent.name.startswith("sfu-spool") for path in files), names
    open_to_others = {
        str(path.relative_to(served.data_dir)): oct(stat.S_IMODE(path.stat().st_mode))
        for path in served.data_dir.rglob("*")
        if stat.S_IMODE(path.stat().st_mode) & 0o077
    }
    assert open_to_others == {}


def test_serve_console_is_text_on_a_terminal(start_serve: object) -> None:
    served: ServeProcess = start_serve(terminal=True)  # type: ignore[operator]
    served.wait_ready()
    deadline = time.monotonic() + 10
    while not any("registered with the control plane" in line for line in served.stderr_lines):
        assert time.monotonic() < deadline, served.output()
        time.sleep(0.1)
    served.stop()
    lines = [line for line in served.stderr_lines if line.strip()]
    assert lines and not [line for line in lines if line.lstrip().startswith("{")], lines
    assert any(re.search(r" INFO sfu\.heartbeat registered with", line) for line in lines)
