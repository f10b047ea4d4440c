"""The terminal agent as a real process: it pairs, reads its agenda, joins at the start, decodes
the chair's video, shows as joined in the attendance, and comes back after the bridge restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from confbridge.auth.models import Role
from confbridge.cli import TERMINAL_REVOKED_EXIT
from confbridge.db import Database
from confbridge.sites.models import Site
from tests.support.factories import make_occurrences, move_occurrence, soon
from tests.support.peers import WhepViewer, WhipPublisher
from tests.support.polling import eventually
from tests.support.servers import (
    NODE_SECRET,
    AgentProcess,
    ServerThread,
    Stack,
    attendance_of,
    pairing_code,
    wait_for_worker,
    wait_until_registered,
)

CHAIR_WIDTH = 160  # the chair's synthetic camera (tests.support.peers.WhipPublisher)
REJOIN_LIMIT_S = 10.0
READER = {"Authorization": f"Bearer {NODE_SECRET}"}  # reads the worker's /rooms


def agent_args(stack: Stack, code: str, token_file: Path) -> list[str]:
    return [
        "--server",
        stack.control,
        "--pair",
        code,
        "--token-file",
        str(token_file),
        "--host-address",
        "127.0.0.1",
        "--agenda-interval-s",
        "2",
        "--heartbeat-interval-s",
        "1",
        "--backoff-max-s",
        "2",
    ]


async def publish_chair(stack: Stack, peers: list[WhipPublisher | WhepViewer]) -> None:
    grant = await stack.join("hq")
    chair = WhipPublisher(grant["whip_url"], grant["token"])
    peers.append(chair)
    assert (await chair.start()).status_code == 201


def _at(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["at"])


async def test_agent_pairs_joins_on_time_and_rejoins_after_the_bridge_restarts(
    stack: Stack,
    database: Database,
    sites: dict[str, Site],
    it_user: dict[str, str],
    agents: Callable[[list[str]], AgentProcess],
    peers: list[WhipPublisher | WhepViewer],
    tmp_path: Path,
) -> None:
    """Pair → agenda → join at start → chair's video decoded → joined; worker restart → rejoin."""
    start_at = soon(8)
    move_occurrence(database, stack.occurrence_id, start_at)
    await publish_chair(stack, peers)
    token_file = tmp_path / "terminal-token"
    agent = agents(agent_args(stack, pairing_code(stack, it_user, sites["p1"]), token_file))

    paired = await agent.wait_for("paired", 20)
    assert token_file.read_text().startswith("cbt_")
    assert token_file.stat().st_mode & 0o777 == 0o600
    nxt = await agent.wait_for("next", 20)
    assert nxt["occurrence_id"] == stack.occurrence_id
    joined = await agent.wait_for("joined", 30)
    assert joined["occurrence_id"] == stack.occurrence_id and joined["role"] == "site"
    assert _at(joined) >= start_at, "joined before the start"
    assert (_at(joined) - start_at).total_seconds() < 5, "joined late"
    assert _at(paired) < _at(joined)
    video = await agent.wait_for("video", 15)
    assert video["width"] == CHAIR_WIDTH

    # the attendance shows the hall joined (connected, not left)
    async def joined_record() -> dict | None:
        record = await attendance_of(stack, sites["p1"])
        return record if record["first_join_at"] else None

    record = await eventually(joined_record, 15, "the first join in the attendance")
    assert record["last_leave_at"] is None and record["reconnects"] == 0
    # and IT staff see the terminal online, in the meeting
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(
            f"{stack.control}/api/v1/terminals?site_id={sites['p1'].id}", headers=it_user
        )
    (mine,) = [t for t in answer.json()["items"] if t["id"] == paired["terminal_id"]]
    assert mine["status"] == "online" and mine["kind"] == "agent"
    assert mine["occurrence_id"] == stack.occurrence_id
    # the hall publishes its camera and the camera's thumbnail (the worker's small layer)
    async with httpx.AsyncClient(timeout=10) as http:
        rooms = (await http.get(f"{stack.worker}/rooms", headers=READER)).json()["rooms"]
    (sent,) = [
        peer["sources"]
        for room in rooms
        for peer in room["peers"]
        if peer["site_id"] == sites["p1"].id and peer["direction"] == "ingest"
    ]
    assert sent == ["audio", "video", "video-small"]

    # the bridge goes away and comes back: every connection to it is cut
    stack.workers.close()
    lost = await agent.wait_for("retry", 15)
    assert "connection" in lost["message"] or "joining failed" in lost["message"]
    stack.workers.start()
    wait_for_worker(stack.worker)
    wait_until_registered(database, ["local-0"])
    back_at = time.monotonic()
    await publish_chair(stack, peers)
    await agent.wait_for("joined", REJOIN_LIMIT_S + 5, after=1)
    assert time.monotonic() - back_at < REJOIN_LIMIT_S
    await agent.wait_for("video", 15, where=lambda e: e["width"] == CHAIR_WIDTH, after=1)

    async def reconnected() -> dict | None:
        record = await attendance_of(stack, sites["p1"])
        return record if record["reconnects"] >= 1 else None

    record = await eventually(reconnected, 20, "the reconnect in the attendance")
    assert record["reconnects"] == 1 and record["last_leave_at"] is None

    # stopped like systemd does (SIGTERM): it leaves the meeting on purpose
    assert agent.stop() == 0
    await agent.wait_for("left", 1)

    async def left() -> dict | None:
        record = await attendance_of(stack, sites["p1"])
        return record if record["last_leave_at"] else None

    record = await eventually(left, 15, "the leave in the attendance")
    assert record["last_leave_reason"] == "deleted"


async def test_agent_stops_when_its_terminal_is_revoked(
    app: Any,
    serve: Callable[..., ServerThread],
    sites: dict[str, Site],
    make_user: Callable[..., dict[str, str]],
    agents: Callable[[list[str]], AgentProcess],
    tmp_path: Path,
) -> None:
    """Revoked by IT staff: the next heartbeat is refused and the agent exits with status 3."""
    control = serve(app)
    it = make_user(Role.it)
    async with httpx.AsyncClient(base_url=control.url, timeout=10) as http:
        created = (
            await http.post("/api/v1/terminals", json={"site_id": sites["p2"].id}, headers=it)
        ).json()
        agent = agents(
            [
                "--server",
                control.url,
                "--pair",
                created["pairing"]["code"],
                "--token-file",
                str(tmp_path / "token"),
                "--heartbeat-interval-s",
                "1",
            ]
        )
        await agent.wait_for("started", 20)
        revoked = await http.post(
            f"/api/v1/terminals/{created['terminal']['id']}/revoke", headers=it
        )
        assert revoked.status_code == 200
    await agent.wait_for("revoked", 10)
    deadline = time.monotonic() + 10
    while agent.process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert agent.process.returncode == TERMINAL_REVOKED_EXIT


async def test_agent_waits_as_told_when_no_media_server_is_up(
    app: Any,
    serve: Callable[..., ServerThread],
    database: Database,
    sites: dict[str, Site],
    make_user: Callable[..., dict[str, str]],
    agents: Callable[[list[str]], AgentProcess],
    tmp_path: Path,
) -> None:
    """A meeting on now, but no SFU worker up: each join gets 503 with Retry-After: 2 and the
    agent waits that long (not its 1, 2, 4 s back-off) before it asks again."""
    with database.session() as session:
        make_occurrences(session, sites, count=1)
    control = serve(app)
    it = make_user(Role.it)
    async with httpx.AsyncClient(base_url=control.url, timeout=10) as http:
        created = (
            await http.post("/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it)
        ).json()
    agent = agents(
        ["--server", control.url, "--pair", created["pairing"]["code"], "--token-file",
         str(tmp_path / "token")]
    )  # fmt: skip
    first = await agent.wait_for("retry", 30)
    second = await agent.wait_for("retry", 10, after=1)
    for retry in (first, second):
        assert "503" in retry["message"]
        assert 2.0 <= retry["retry_in_s"] <= 2.0 * 1.2 + 0.2, retry
    assert (_at(second) - _at(first)).total_seconds() >= 2.0
