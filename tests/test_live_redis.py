"""Live events between control-plane replicas through the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from confbridge.db import Database
from confbridge.live import occurrence_topic
from confbridge.live_redis import RedisBus
from confbridge.main import create_app
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import room_name
from tests.support.factories import enrol_node, let_node_hold, make_occurrences, make_settings
from tests.support.servers import ServerThread

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def buses() -> Iterator[tuple[RedisBus, RedisBus]]:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    first, second = RedisBus(REDIS_URL, prefix=prefix), RedisBus(REDIS_URL, prefix=prefix)
    assert first.wait_listening(5) and second.wait_listening(5)
    yield first, second
    first.close()
    second.close()


async def next_message(subscription, timeout_s: float = 5.0) -> dict:  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(subscription.get(), timeout_s)


@pytest.mark.integration
async def test_live_redis_a_message_reaches_every_replica_once(
    buses: tuple[RedisBus, RedisBus],
) -> None:
    first, second = buses
    async with (
        first.subscribe("occurrence:1") as mine,
        second.subscribe("occurrence:1") as theirs,
        second.subscribe("occurrence:2") as elsewhere,
    ):
        first.publish("occurrence:1", {"type": "joined", "site_id": 5, "note": "Hạ Long"})
        assert await next_message(theirs) == {"type": "joined", "site_id": 5, "note": "Hạ Long"}
        assert (await next_message(mine))["site_id"] == 5
        await asyncio.sleep(0.2)
        assert mine.get_nowait() is None and elsewhere.get_nowait() is None


async def test_live_redis_events_posted_to_one_replica_reach_the_other(
    database: Database, tmp_path, sites: dict[str, Site]
) -> None:
    url = database.settings.database_url or ""
    with database.session() as session:
        (occurrence,) = make_occurrences(session, sites, count=1)
        occurrence_id = occurrence.id
    node = enrol_node(database, "node-a")
    let_node_hold(database, "node-a", occurrence_id)
    replicas = [
        ServerThread(
            create_app(make_settings(url, tmp_path / name, redis_url=REDIS_URL), database=database)
        ).start()
        for name in ("a", "b")
    ]
    try:
        other_bus = replicas[1].app.state.live
        assert isinstance(other_bus, RedisBus) and other_bus.wait_listening(5)
        event = {
            "id": uuid.uuid4().hex,
            "type": "joined",
            "at": utcnow().isoformat(),
            "node_id": "node-a",
            "room": room_name(occurrence_id),
            "occurrence_id": occurrence_id,
            "site_id": 3,
            "peer_id": "p" * 32,
            "direction": "ingest",
        }
        async with other_bus.subscribe(occurrence_topic(occurrence_id)) as subscription:
            async with httpx.AsyncClient(base_url=replicas[0].url) as http:
                stored = await http.post(
                    "/api/v1/sfu/events", json={"events": [event]}, headers=node
                )
            assert stored.json() == {"stored": 1, "duplicates": 0}
            received = await next_message(subscription)
        assert (received["id"], received["type"], received["site_id"]) == (event["id"], "joined", 3)
    finally:
        for replica in replicas:
            replica.stop()
