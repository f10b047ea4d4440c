"""The whole stack for media tests: the control plane on a real server, one SFU worker process,
an occurrence that is on now, and a terminal token for each of its sites."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from confbridge import signing
from confbridge.bridge import service as bridge_service
from confbridge.db import Database
from confbridge.local_workers import LocalWorkers
from confbridge.main import create_app
from confbridge.meetings import service as meeting_service
from confbridge.nodes import service as node_service
from confbridge.nodes.models import NodeState
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from sfu.aiortc_internals import use_host_addresses
from tests.conftest import ServerThread, free_port, make_settings
from tests.sfu.peers import WhepViewer, WhipPublisher

NODE_SECRET = "node-secret-for-tests-0123456789abcdef"
# The worker binds media in a port range (as behind a firewall), below Linux's ephemeral range.
MEDIA_PORTS = 100
WORKER_START_TIMEOUT_S = 20.0


@dataclass
class Stack:
    """The running stack, and the calls terminals and the secretariat make to it."""

    control: str
    worker: str
    media_ports: tuple[int, int]
    occurrence_id: int
    tokens: dict[str, str]  # site key → terminal token
    secretariat: dict[str, str]
    workers: LocalWorkers
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
        assert self.settings is not None and self.database is not None
        with self.database.session() as session:
            occurrence = meeting_service.get_occurrence(
                session=session, occurrence_id=self.occurrence_id
            )
            claims = bridge_service.relay_grant(
                occurrence=occurrence,
                node_id="test",
                chair_site=bridge_service.chair_site_id(session=session, occurrence=occurrence),
                now=utcnow(),
            )
        return signing.signer_for(self.settings.grant_key_path).sign(claims)

    async def join(self, site: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.control) as http:
            response = await http.post(
                f"/api/v1/occurrences/{self.occurrence_id}/join",
                headers={"Authorization": f"Bearer {self.tokens[site]}"},
            )
        assert response.status_code == 200, response.text
        return response.json()

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


@pytest.fixture
def loopback() -> Iterator[None]:
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)


def free_ports(count: int) -> int:
    """The first of `count` consecutive free TCP ports (local worker i listens on first + i)."""
    import socket

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


def _wait_for_worker(url: str) -> None:
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
                if node_service.state_of(node, utcnow()) is NodeState.up
            }
        if up >= set(node_ids):
            return
        time.sleep(0.1)
    raise AssertionError(f"the SFU workers did not register: {sorted(up)} of {node_ids}")


@pytest.fixture
def stack_options() -> dict[str, Any]:
    """Overridden by a test module for more settings (`settings`, `sfu`) or the control
    plane's background loops (`run_background`: health checks, alert delivery)."""
    return {}


def open_occurrence(
    database: Database, settings: Settings, sites: dict[str, Site]
) -> tuple[int, dict[str, str]]:
    """A one-hour briefing that started a minute ago (chair hq, with p1 and p2), and a
    terminal token for each of its sites."""
    local_start = (utcnow() - timedelta(minutes=1)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    with database.session() as session:
        series = meeting_service.create(
            session=session,
            series_in={
                "title": "Giao ban trực tuyến",
                "kind": "giao_ban",
                "mode": "online",
                "rrule": "FREQ=DAILY;COUNT=1",
                "dtstart": local_start.replace(tzinfo=None).isoformat(timespec="minutes"),
                "duration_min": 60,
                "chair_site_id": sites["hq"].id,
                "site_ids": [sites["p1"].id, sites["p2"].id],
                "skip_holidays": False,
            },
            settings=settings.meetings,
            now=utcnow(),
        )
        tokens = {}
        for key in ("hq", "p1", "p2"):
            site = session.get(Site, sites[key].id)
            assert site is not None
            _terminal, tokens[key] = terminal_service.create_with_token(session=session, site=site)
        session.commit()
        occurrence_id = series.occurrences[0].id
    return occurrence_id, tokens


@pytest.fixture
def stack(
    database: Database,
    tmp_path: Path,
    sites: dict[str, Site],
    secretariat: dict[str, str],
    loopback: None,
    stack_options: dict[str, Any],
) -> Iterator[Stack]:
    worker_port = free_ports(stack_options.get("sfu", {}).get("local_workers", 1))
    first_media_port = random.randrange(20_000, 30_000 - MEDIA_PORTS)
    media_ports = (first_media_port, first_media_port + MEDIA_PORTS - 1)
    settings = make_settings(
        database.settings.database_url or "",
        tmp_path,
        sfu={
            "public_url": f"http://127.0.0.1:{worker_port}",
            "node_secret": NODE_SECRET,
            "udp_port_min": media_ports[0],
            "udp_port_max": media_ports[1],
            "local_workers": 1,
            **stack_options.get("sfu", {}),
        },
        **stack_options.get("settings", {}),
    )
    application = create_app(
        settings, database=database, run_scheduler=stack_options.get("run_background", False)
    )
    control = ServerThread(application).start()
    occurrence_id, tokens = open_occurrence(database, settings, sites)
    workers = LocalWorkers(settings, control_url=control.url, database=database)
    workers.start()
    try:
        worker_url = f"http://127.0.0.1:{worker_port}"
        for index in range(settings.sfu.local_workers):
            _wait_for_worker(f"http://127.0.0.1:{worker_port + index}")
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


@pytest.fixture
async def peers() -> AsyncIterator[list[WhipPublisher | WhepViewer]]:
    started: list[WhipPublisher | WhepViewer] = []
    yield started
    for peer in started:
        await peer.stop()
