"""The worker's event reporter against a real control plane that goes away and comes back."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from confbridge.bridge.models import SfuEventRecord
from confbridge.db import Database
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge_kernel.contracts import EventType, SfuEvent, room_name
from sfu.events import SPOOL_FILENAME, EventReporter, SpoolInUse
from tests.support.factories import enrol_node, let_node_hold, make_occurrences
from tests.support.servers import ServerThread, free_port

DELIVERY_TIMEOUT_S = 20.0
# Fast retries: the tests wait for the control plane to come back, not for back-off.
FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "linger_s": 0.01}
NODE_ID = "node-test"
# Set for each test by `held_room`: the node's key, the occurrence whose room it holds and
# one whose room it does not.
NODE: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def held_room(database: Database, sites: dict[str, Site]) -> None:
    """node-test, enrolled, holds the room of a meeting on now (as after its first join)."""
    with database.session() as session:
        occurrence, tomorrow = make_occurrences(session, sites, count=2)
        NODE["occurrence_id"], NODE["not_held"] = occurrence.id, tomorrow.id
    NODE["key"] = enrol_node(database, NODE_ID)["Authorization"].split()[1]
    let_node_hold(database, NODE_ID, NODE["occurrence_id"])


def event(
    kind: EventType = EventType.joined, occurrence_id: int | None = None, **changes: Any
) -> SfuEvent:
    occurrence_id = NODE["occurrence_id"] if occurrence_id is None else occurrence_id
    values: dict[str, Any] = {
        "id": f"evt-{uuid.uuid4().hex}",
        "type": kind,
        "at": datetime.now(UTC),
        "node_id": NODE_ID,
        "room": room_name(occurrence_id),
        "occurrence_id": occurrence_id,
        "site_id": 2,
        "peer_id": "p-1",
        "direction": "ingest",
    }
    if kind == EventType.stats:
        values["stats"] = {"rtt_ms": 12.0, "packets": 100}
    values.update(changes)
    return SfuEvent.model_validate(values)


def stored_ids(database: Database) -> list[str]:
    with database.session() as session:
        return sorted(session.scalars(select(SfuEventRecord.id)))


def stored_count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(SfuEventRecord)) or 0


def spooled(spool_dir: Path) -> list[tuple[str, str]]:
    """(id, type) of the events waiting in the spool file, oldest first."""
    with sqlite3.connect(spool_dir / SPOOL_FILENAME) as connection:
        return connection.execute("SELECT id, type FROM spool ORDER BY seq").fetchall()


def reporter(url: str, settings: Settings, spool_dir: Path, **options: Any) -> EventReporter:
    """The reporter of node-test, with its own key."""
    return EventReporter(url, NODE["key"], spool_dir, **{**FAST, **options})


async def test_reporter_delivers_events(
    app: FastAPI,
    serve: Callable[..., ServerThread],
    settings: Settings,
    database: Database,
    tmp_path: Path,
) -> None:
    server = serve(app)
    events = [event(EventType.joined), event(EventType.stats), event(EventType.left)]
    sender = reporter(server.url, settings, tmp_path / "spool")
    sender.start()
    try:
        for item in events:
            sender.emit(item)
        assert await sender.drain(DELIVERY_TIMEOUT_S)
    finally:
        await sender.close()
    assert stored_ids(database) == sorted(e.id for e in events)
    assert sender.delivered == 3
    assert spooled(tmp_path / "spool") == []


async def test_reporter_spools_while_away_and_delivers_after_a_restart(
    app: FastAPI,
    serve: Callable[..., ServerThread],
    settings: Settings,
    database: Database,
    tmp_path: Path,
) -> None:
    """Control plane down, worker restarted meanwhile: every event arrives once."""
    spool_dir = tmp_path / "spool"
    server = serve(app)
    before = [event(EventType.joined) for _ in range(3)]
    first = reporter(server.url, settings, spool_dir)
    first.start()
    for item in before:
        first.emit(item)
    assert await first.drain(DELIVERY_TIMEOUT_S)

    server.stop()
    while_away = [event(EventType.stats) for _ in range(20)] + [event(EventType.left)]
    for item in while_away:
        first.emit(item)
    await asyncio.sleep(0.5)  # several failed attempts
    assert first.depth == len(while_away)
    assert first.failures >= 1
    await first.close()  # the worker stops
    assert [i for i, _ in spooled(spool_dir)] == [e.id for e in while_away]
    assert stored_ids(database) == sorted(e.id for e in before)

    server.start()  # the control plane is back, on the same address
    second = reporter(server.url, settings, spool_dir)  # the worker restarts
    assert second.depth == len(while_away)
    second.start()
    try:
        assert await second.drain(DELIVERY_TIMEOUT_S)
    finally:
        await second.close()
    assert stored_ids(database) == sorted(e.id for e in before + while_away)
    assert spooled(spool_dir) == []


async def test_reporter_redelivery_is_not_doubled(
    app: FastAPI,
    serve: Callable[..., ServerThread],
    settings: Settings,
    database: Database,
    tmp_path: Path,
) -> None:
    """An acknowledgement lost on the way: the same events delivered again are duplicates."""
    server = serve(app)
    events = [event(EventType.joined), event(EventType.floor_changed), event(EventType.stats)]
    for spool in ("first", "second"):
        sender = reporter(server.url, settings, tmp_path / spool)
        sender.start()
        for item in events:
            sender.emit(item)
        assert await sender.drain(DELIVERY_TIMEOUT_S)
        await sender.close()
    assert stored_count(database) == 3
    assert stored_ids(database) == sorted(e.id for e in events)


async def test_reporter_wrong_key_keeps_events(
    app: FastAPI,
    serve: Callable[..., ServerThread],
    database: Database,
    tmp_path: Path,
) -> None:
    """A key refused (not enrolled yet, or revoked): the events wait in the spool."""
    server = serve(app)
    sender = EventReporter(server.url, "cbn_not-the-key", tmp_path / "spool", **FAST)
    sender.start()
    try:
        sender.emit(event())
        assert not await sender.drain(0.5)
        assert sender.depth == 1 and sender.failures >= 1
    finally:
        await sender.close()
    assert stored_count(database) == 0
    assert len(spooled(tmp_path / "spool")) == 1


async def test_reporter_drops_a_refused_event_alone(
    app: FastAPI,
    serve: Callable[..., ServerThread],
    settings: Settings,
    database: Database,
    tmp_path: Path,
) -> None:
    """One event the control plane can never accept must not hold up the others."""
    server = serve(app)
    good = [event(EventType.joined) for _ in range(5)]
    # Built without validation, as a buggy worker might: a negative occurrence id.
    bad = SfuEvent.model_construct(**{**event().model_dump(), "occurrence_id": -5})
    sender = reporter(server.url, settings, tmp_path / "spool")
    for item in [*good[:2], bad, *good[2:]]:
        sender.emit(item)
    sender.start()
    try:
        assert await sender.drain(DELIVERY_TIMEOUT_S)
    finally:
        await sender.close()
    assert stored_ids(database) == sorted(e.id for e in good)


async def test_reporter_drops_events_of_rooms_it_never_held(
    app: FastAPI,
    serve: Callable[..., ServerThread],
    settings: Settings,
    database: Database,
    tmp_path: Path,
) -> None:
    """The control plane refuses (403) events of a room the node did not hold: the worker
    sets them apart and drops them, and the others arrive."""
    server = serve(app)
    good = [event(EventType.joined) for _ in range(4)]
    foreign = event(EventType.joined, occurrence_id=NODE["not_held"])
    sender = reporter(server.url, settings, tmp_path / "spool")
    for item in [*good[:2], foreign, *good[2:]]:
        sender.emit(item)
    sender.start()
    try:
        assert await sender.drain(DELIVERY_TIMEOUT_S)
    finally:
        await sender.close()
    assert stored_ids(database) == sorted(e.id for e in good)


async def test_spool_bound_drops_oldest_stats_first(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    sender = EventReporter(
        f"http://127.0.0.1:{free_port()}", "secret", spool_dir, max_rows=10, **FAST
    )
    try:
        joins = [event(EventType.joined) for _ in range(3)]
        stats = [event(EventType.stats) for _ in range(20)]
        for item in joins[:2] + stats + joins[2:]:
            sender.emit(item)
        kept = spooled(spool_dir)
        assert sender.depth == len(kept) <= 10
        assert {i for i, _ in kept} >= {e.id for e in joins}  # never dropped
        kept_stats = [i for i, kind in kept if kind == "stats"]
        assert kept_stats == [e.id for e in stats[-len(kept_stats) :]]  # the newest stay
        assert sender.dropped == 20 - len(kept_stats)

        # Full of attendance events, the spool keeps them beyond its bound and refuses stats.
        more_joins = [event(EventType.joined) for _ in range(12)]
        for item in more_joins:
            sender.emit(item)
        sender.emit(event(EventType.stats))
        kept = spooled(spool_dir)
        assert [k for _, k in kept].count("stats") == 0
        assert {i for i, _ in kept} >= {e.id for e in joins + more_joins}
    finally:
        await sender.close()


async def test_spool_dir_belongs_to_one_worker(tmp_path: Path) -> None:
    first = EventReporter("http://127.0.0.1:9", "secret", tmp_path / "spool")
    try:
        with pytest.raises(SpoolInUse):
            EventReporter("http://127.0.0.1:9", "secret", tmp_path / "spool")
    finally:
        await first.close()
    again = EventReporter("http://127.0.0.1:9", "secret", tmp_path / "spool")
    await again.close()
    assert (tmp_path / "spool" / SPOOL_FILENAME).is_file()


async def test_reporter_duplicate_emit_spooled_once(tmp_path: Path) -> None:
    sender = EventReporter("http://127.0.0.1:9", "secret", tmp_path / "spool")
    try:
        same = event()
        sender.emit(same)
        sender.emit(same)
        assert sender.depth == 1
    finally:
        await sender.close()
