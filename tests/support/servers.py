"""Real servers for tests and benchmarks: an ASGI app on uvicorn in a thread, the control
plane with its SFU worker processes and an occurrence on now (`running_stack`), a local
webhook receiver, and `confbridge terminal` as a process."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from confbridge.db import Database
from confbridge.nodes import models as nodes_models
from confbridge.nodes import service as node_service
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow

NODE_SECRET = "node-secret-for-tests-0123456789abcdef"
# The worker binds media in a port range (as behind a firewall), below Linux's ephemeral range.
MEDIA_PORTS = 100
WORKER_START_TIMEOUT_S = 20.0
SERVER_START_TIMEOUT_S = 10.0
AGENT_STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_udp_ports(count: int) -> int:
    """The first of `count` consecutive UDP ports on 127.0.0.1 that are free now (the media
    ports of local workers in single-port mode)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            for port in range(first + 1, first + count):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                    other.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError("no run of free UDP ports")


def free_ports(count: int) -> int:
    """The first of `count` consecutive free TCP ports (local worker i listens on first + i)."""
    for _ in range(100):
        first = free_port()
        try:
            for port in range(first + 1, first + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError("no run of free ports")


class ServerThread:
    """An ASGI app on a real uvicorn server in a thread; it can be stopped and started again
    on the same port, like a service that goes away and comes back."""

    def __init__(
        self,
        app: Any,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        start_timeout_s: float = SERVER_START_TIMEOUT_S,
        **options: Any,
    ) -> None:
        self.app = app
        self.options = options  # more uvicorn.Config options
        self.host = host
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self.start_timeout_s = start_timeout_s
        self._server: Any = None
        self._thread: Any = None

    def start(self) -> ServerThread:
        import uvicorn

        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", **self.options
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self._server.started:
            assert self._thread.is_alive(), f"server on port {self.port} did not start"
            assert time.monotonic() < deadline, f"server on port {self.port} did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = self._thread = None


class WebhookReceiver:
    """A local HTTP endpoint that records what is POSTed to it; `fail_next` makes it answer
    500 to that many requests first (a receiver that is down for a while)."""

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        self.received: list[tuple[dict[str, str], bytes]] = []
        self.attempts = 0
        self.fail_next = 0

        async def hook(request: Request) -> Response:
            self.attempts += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response("down for maintenance", status_code=500)
            self.received.append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        self.server = ServerThread(self.app)
        self.url = f"{self.server.url}/hook"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _headers, body in self.received]


def wait_for_worker(url: str) -> None:
    """Until the SFU worker at `url` answers its health check."""
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the SFU worker did not start")


def wait_until_registered(database: Database, node_ids: list[str]) -> None:
    """Joins go to registered nodes only: wait for each worker's first heartbeat."""
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        with database.session() as session:
            up = {
                node.id
                for node in node_service.list_(session=session)
                if node_service.state_of(node, utcnow()) is nodes_models.NodeState.up
            }
        if up >= set(node_ids):
            return
        time.sleep(0.1)
    raise AssertionError(f"the SFU workers did not register: {sorted(up)} of {node_ids}")


@dataclass
class Stack:
    """The running stack, and the calls terminals and the secretariat make to it."""

    control: str
    worker: str
    media_ports: tuple[int, int]
    occurrence_id: int
    tokens: dict[str, str]  # site key → terminal token
    secretariat: dict[str, str]
    workers: Any  # confbridge.local_workers.LocalWorkers
    settings: Settings | None = None
    database: Database | None = None
    server: ServerThread | None = None  # the control plane (stop it: the control plane away)

    def index(self, worker_url: str | None = None) -> int:
        """The index of the local worker at `worker_url` (else the first)."""
        port = int((worker_url or self.worker).rstrip("/").rsplit(":", 1)[1])
        return port - int(self.worker.rstrip("/").rsplit(":", 1)[1])

    def node_id(self, worker_url: str | None = None) -> str:
        return f"local-{self.index(worker_url)}"

    def admin(self, worker_url: str | None = None) -> dict[str, str]:
        """Headers for a worker's admin API (the worker at `worker_url`, else the first):
        that worker's own key, as its operator uses it."""
        return {"Authorization": f"Bearer {self.workers.node_key(self.index(worker_url))}"}

    def relay_token(self) -> str:
        """A relay grant for the room, as the control plane gives an edge (pipes, cascade)."""
        from confbridge import signing
        from confbridge.bridge import service as bridge_service
        from confbridge.meetings import occurrences as occurrence_service

        assert self.settings is not None and self.database is not None
        with self.database.session() as session:
            occurrence = occurrence_service.get_occurrence(
                session=session, occurrence_id=self.occurrence_id
            )
            return bridge_service.relay_grant(
                occurrence=occurrence,
                node_id="test",
                chair_site=bridge_service.chair_site_id(session=session, occurrence=occurrence),
                signer=signing.signer_for(self.settings.grant_key_path),
                now=utcnow(),
            )

    async def join(self, site: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.control) as http:
            response = await http.post(
                f"/api/v1/occurrences/{self.occurrence_id}/join",
                headers={"Authorization": f"Bearer {self.tokens[site]}"},
            )
        assert response.status_code == 200, response.text
        return response.json()

    async def join_content(self, site: str) -> httpx.Response:
        """Ask for a grant to present content as `site` (the answer, refused or not)."""
        async with httpx.AsyncClient(base_url=self.control, timeout=10) as http:
            return await http.post(
                f"/api/v1/occurrences/{self.occurrence_id}/join",
                json={"purpose": "content"},
                headers={"Authorization": f"Bearer {self.tokens[site]}"},
            )

    async def floor(self, action: str, site_id: int | None = None) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.control, timeout=10) as http:
            return await http.post(
                f"/api/v1/occurrences/{self.occurrence_id}/floor",
                json={"action": action, "site_id": site_id},
                headers=self.secretariat,
            )

    async def events(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.control) as http:
            response = await http.get(
                f"/api/v1/occurrences/{self.occurrence_id}/events?limit=500",
                headers=self.secretariat,
            )
        return response.json()["items"]


def stack_settings(
    database_url: str, data_dir: Path, options: Mapping[str, Any] | None = None
) -> tuple[Settings, int, tuple[int, int]]:
    """Settings for a stack: local workers on free ports, media on free UDP ports (single-port
    mode, the default) and per-peer sockets in a random port range (range mode, SIP legs), the
    test node secret; `options` as the `stack_options` fixture gives them. Also the first
    worker's port and the media port range."""
    from tests.support.factories import make_settings

    options = options or {}
    host = options.get("host", "127.0.0.1")
    workers = options.get("sfu", {}).get("local_workers", 1)
    worker_port = free_ports(workers)
    first_media_port = random.randrange(20_000, 30_000 - MEDIA_PORTS)
    media_ports = (first_media_port, first_media_port + MEDIA_PORTS - 1)
    settings = make_settings(
        database_url,
        data_dir,
        sfu={
            "public_url": f"http://{host}:{worker_port}",
            "node_secret": NODE_SECRET,
            "udp_port": free_udp_ports(workers),
            "udp_port_min": media_ports[0],
            "udp_port_max": media_ports[1],
            "local_workers": 1,
            **options.get("sfu", {}),
        },
        **options.get("settings", {}),
    )
    return settings, worker_port, media_ports


@contextmanager
def running_stack(
    database: Database,
    data_dir: Path,
    sites: Mapping[str, Site | int],
    secretariat: dict[str, str],
    options: Mapping[str, Any] | None = None,
) -> Iterator[Stack]:
    """The control plane on a real server, its local SFU worker processes (registered), and
    an occurrence on now with a terminal token for hq, p1 and p2; all stopped at the end.
    `options`: `sfu` and `settings` overrides, `run_background` for the control plane's loops
    (health checks, alert delivery), `host` for the address the control plane and the workers
    listen on (127.0.0.1; another one needs CONFBRIDGE_SFU_HOST set to it for the workers),
    `invited` for other invited sites than p1 and p2. Call
    `sfu.rtc.ice.use_host_addresses` first for loopback-only candidates."""
    from confbridge.local_workers import LocalWorkers
    from confbridge.main import create_app
    from tests.support.factories import open_occurrence

    options = options or {}
    settings, worker_port, media_ports = stack_settings(
        database.settings.database_url or "", data_dir, options
    )
    application = create_app(
        settings, database=database, run_scheduler=options.get("run_background", False)
    )
    host = options.get("host", "127.0.0.1")
    control = ServerThread(application, host=host).start()
    invited = tuple(options.get("invited", ("p1", "p2")))
    occurrence_id, tokens = open_occurrence(database, settings, sites, invited=invited)
    workers = LocalWorkers(settings, control_url=control.url, database=database)
    workers.start()
    try:
        worker_url = f"http://{host}:{worker_port}"
        for index in range(settings.sfu.local_workers):
            wait_for_worker(f"http://{host}:{worker_port + index}")
        wait_until_registered(database, [f"local-{i}" for i in range(settings.sfu.local_workers)])
        yield Stack(
            control.url,
            worker_url,
            media_ports,
            occurrence_id,
            tokens,
            secretariat,
            workers,
            settings,
            database,
            control,
        )
    finally:
        workers.close()
        control.stop()


def pairing_code(running: Stack, it_user: dict[str, str], site: Site) -> str:
    """A new terminal for `site` and its pairing code, as IT staff get them."""
    response = httpx.post(
        f"{running.control}/api/v1/terminals",
        json={"site_id": site.id, "name": "Máy tính hội trường"},
        headers=it_user,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["pairing"]["code"])


async def attendance_of(running: Stack, site: Site) -> dict[str, Any]:
    """The attendance record of `site` in the stack's occurrence."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"{running.control}/api/v1/occurrences/{running.occurrence_id}/attendance",
            headers=running.secretariat,
        )
    assert response.status_code == 200, response.text
    (record,) = [r for r in response.json()["records"] if r["site_id"] == site.id]
    return record


class AgentProcess:
    """`confbridge terminal` as a real process; its JSON log lines are collected as they come."""

    def __init__(self, args: list[str], prefix: Sequence[str] = ()) -> None:
        """`prefix`: run the agent through it, e.g. `ip netns exec <namespace>`."""
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CONFBRIDGE_")}
        argv = [sys.executable, "-m", "confbridge.cli", "terminal", "--log-format", "json"]
        self.process = subprocess.Popen(
            [*prefix, *argv, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.raw.append(line.rstrip())
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                self.lines.append(entry)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in list(self.lines) if e.get("event") == name]

    async def wait_for(
        self,
        name: str,
        timeout_s: float,
        where: Callable[[dict[str, Any]], bool] = lambda _e: True,
        after: int = 0,
    ) -> dict[str, Any]:
        """The first `name` event (after the `after` first ones) matching `where`."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [e for e in self.events(name)[after:] if where(e)]
            if found:
                return found[0]
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.raw[-40:])
                raise AssertionError(f"agent: no {name!r} event in {timeout_s} s; log:\n{tail}")
            await asyncio.sleep(0.05)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=AGENT_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        return self.process.returncode
