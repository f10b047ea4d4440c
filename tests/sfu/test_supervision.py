"""`serve`'s supervisor with real worker processes: one killed with SIGKILL is restarted
within seconds, joins wait meanwhile (503 with Retry-After) or move to another worker, and no
worker sees the control plane's secrets."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from confbridge.sites.models import Site
from tests.support.peers import WhipPublisher, until
from tests.support.polling import eventually
from tests.support.servers import NODE_SECRET, Stack
from tests.test_local_workers import SECRETS

BACK_WITHIN_S = 8.0
"""Restarted after 0.5 s; then the worker starts (Python, aiortc) and registers: about 2-3 s
on the 2-core development machine, more when it is busy."""


@pytest.fixture
def secrets_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve's environment holds the control plane's secrets (the test's settings do not
    read them: they are given explicitly)."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


async def join(stack: Stack, site: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:
        return await http.post(
            f"/api/v1/occurrences/{stack.occurrence_id}/join",
            headers={"Authorization": f"Bearer {stack.tokens[site]}"},
        )


async def answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(f"{url}/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def test_supervision_a_killed_worker_is_back_and_joins_work_again(
    secrets_in_environment: None, stack: Stack, peers: list, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 the only worker: joins wait (503, Retry-After), never sent to the dead one or
    to one not listening yet; the worker is restarted at once and joins work again within
    about 5 s."""
    (process,) = stack.workers.processes
    assert all(name not in environ_of(process.pid) for name in SECRETS)
    process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    await asyncio.sleep(0.4)  # the supervisor looks every 0.2 s
    waited = 0
    while True:
        response = await join(stack, "hq")
        if response.status_code == 200:
            grant = response.json()
            # a URL to a worker that answers, never the dead one
            assert await answers(grant["whip_url"].split("/whip", 1)[0]), grant
            break
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "2"
        waited += 1
        assert time.monotonic() - killed_at < 15, "the worker did not come back"
        await asyncio.sleep(0.1)
    back_after = time.monotonic() - killed_at
    assert waited > 0  # the join did wait while no worker was up
    assert back_after < BACK_WITHIN_S, back_after
    (restarted,) = stack.workers.processes
    assert restarted.pid != process.pid and restarted.poll() is None
    assert all(name not in environ_of(restarted.pid) for name in SECRETS)
    chair = WhipPublisher(grant["whip_url"], grant["token"])
    peers.append(chair)
    assert (await chair.start()).status_code == 201

    assert "SFU worker local-0" in caplog.text and "restarting it in 0.5 s" in caplog.text
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = await http.get(
            f"{stack.control}/metrics", headers={"Authorization": f"Bearer {NODE_SECRET}"}
        )
    assert 'confbridge_worker_restarts_total{node="local-0"} 1.0' in metrics.text


@pytest.mark.parametrize("stack_options", [{"sfu": {"local_workers": 2}}])
async def test_supervision_the_rooms_of_a_dead_worker_move_at_once(
    stack: Stack,
    peers: list,
) -> None:
    """The supervisor takes its dead worker off at once: the next join moves the room to the
    other worker, as when a node fails, without waiting 15 s for its heartbeats to stop."""
    first = (await join(stack, "hq")).json()
    lost = first["node_id"]
    stack.workers.processes[int(lost.rsplit("-", 1)[1])].send_signal(signal.SIGKILL)
    await asyncio.sleep(0.4)
    moved = await join(stack, "hq")
    assert moved.status_code == 200, moved.text
    assert moved.json()["node_id"] != lost
    chair = WhipPublisher(moved.json()["whip_url"], moved.json()["token"])
    peers.append(chair)
    assert (await chair.start()).status_code == 201


async def test_supervision_a_hall_joined_while_the_control_plane_was_away_leaves_with_it(
    stack: Stack, peers: list, sites: dict[str, Site]
) -> None:
    """Control plane away; a hall joins with the grant it holds (the worker spools the event);
    the worker dies and is restarted; the control plane comes back: the hall's session,
    learnt only from the spool, is closed (`node_restarted`), not "connected" to the end."""
    assert stack.server is not None
    grant = (await join(stack, "p1")).json()
    stack.server.stop()
    hall = WhipPublisher(grant["whip_url"], grant["token"])
    peers.append(hall)
    assert (await hall.start()).status_code == 201
    await until(lambda: hall.pc.connectionState == "connected", timeout_s=10)
    await asyncio.sleep(0.5)  # the worker spools `joined`
    (process,) = stack.workers.processes
    process.send_signal(signal.SIGKILL)
    await asyncio.sleep(1.0)  # restarted meanwhile; it cannot report yet
    stack.server.start()

    async def closed() -> dict[str, Any] | None:
        events = await stack.events()
        mine = [e for e in events if e["site_id"] == sites["p1"].id]
        left = [e for e in mine if e["type"] == "left"]
        return (
            {"joined": [e for e in mine if e["type"] == "joined"], "left": left} if left else None
        )

    seen = await eventually(closed, 30, "the hall's session closed after the restart")
    (joined,) = seen["joined"]
    (left,) = seen["left"]
    assert left["detail"] == {"reason": "node_restarted"}
    assert left["peer_id"] == joined["peer_id"] and left["at"] >= joined["at"]
    async with httpx.AsyncClient(timeout=10) as http:
        attendance = await http.get(
            f"{stack.control}/api/v1/occurrences/{stack.occurrence_id}/attendance",
            headers=stack.secretariat,
        )
    (record,) = [r for r in attendance.json()["records"] if r["site_id"] == sites["p1"].id]
    assert record["last_leave_at"] is not None
    assert record["last_leave_reason"] == "node_restarted"
