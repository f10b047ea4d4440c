"""Two control-plane replicas sharing the database and Redis: an SFU event posted to one
appears on a page's live stream served by the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from confbridge.db import Database
from confbridge.live_redis import RedisBus
from confbridge.main import create_app
from tests.support.factories import make_settings
from tests.support.servers import ServerThread
from tests.web.test_live import (
    NODE_SECRET,
    EventStream,
    occurrence_id,  # noqa: F401 (fixture)
    post_events,
    sfu_event,
    sign_in_http,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def replicas(database: Database, tmp_path: Path) -> Iterator[tuple[ServerThread, ServerThread]]:
    servers = []
    for name in ("a", "b"):
        settings = make_settings(
            database.settings.database_url or "",
            tmp_path / name,
            sfu={"node_secret": NODE_SECRET},
            redis_url=REDIS_URL,  # and the same secret key: a session is good on both
        )
        servers.append(ServerThread(create_app(settings, database=database)).start())
    for server in servers:
        bus = server.app.state.live
        assert isinstance(bus, RedisBus) and bus.wait_listening(5)
    yield servers[0], servers[1]
    for server in servers:
        server.stop()


def test_live_replicas_an_event_posted_to_one_streams_from_the_other(
    replicas: tuple[ServerThread, ServerThread],
    database: Database,
    occurrence_id: int,  # noqa: F811
    communes: dict[str, int],
) -> None:
    first, second = replicas
    with httpx.Client(base_url=second.url, timeout=10) as client:
        sign_in_http(client, database)
        with client.stream("GET", f"/occurrences/{occurrence_id}/live") as response:
            stream = EventStream(response)
            name, snapshot = stream.next()
            assert name == "snapshot"
            assert snapshot["sites"][str(communes["c0"])]["state"] == "not_joined"
            joined = sfu_event(occurrence_id, "joined", communes["c0"], "p", direction="ingest")
            assert post_events(first, joined) == {"stored": 1, "duplicates": 0}
            name, update = stream.next()
            assert name == "update"
            assert update["sites"][str(communes["c0"])]["state"] == "joined"


def test_live_replicas_a_page_whose_replica_restarts_misses_nothing(
    replicas: tuple[ServerThread, ServerThread],
    database: Database,
    occurrence_id: int,  # noqa: F811
    communes: dict[str, int],
) -> None:
    """Events are stored before they are streamed: what happened while a page's replica was
    restarting is in the snapshot the page gets when it connects again."""
    first, second = replicas
    second.stop()
    joined = sfu_event(occurrence_id, "joined", communes["c1"], "p1", direction="ingest")
    assert post_events(first, joined) == {"stored": 1, "duplicates": 0}
    second.start()  # the same port, as the page's EventSource reconnects to it
    bus = second.app.state.live
    assert isinstance(bus, RedisBus) and bus.wait_listening(5)
    with httpx.Client(base_url=second.url, timeout=10) as client:
        sign_in_http(client, database)
        with client.stream("GET", f"/occurrences/{occurrence_id}/live") as response:
            name, snapshot = EventStream(response).next()
    assert name == "snapshot"
    assert snapshot["sites"][str(communes["c1"])]["state"] == "joined"
