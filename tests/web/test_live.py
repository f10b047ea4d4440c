"""The live bus, site statuses from SFU events, and their server-sent event stream."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.live import InProcessBus
from confbridge.main import create_app
from confbridge.meetings import service as meeting_service
from confbridge.timeutil import utcnow
from confbridge.web import occurrence_pages
from confbridge.web.live_status import LiveStatus
from tests.support.factories import PASSWORD, create_user, enrol_node, let_node_hold, make_settings
from tests.support.servers import ServerThread
from tests.support.web import csrf_of

NODE_SECRET = "node-secret-for-web-tests-0123456789abcdef"


# --- the bus ------------------------------------------------------------------------------------


async def test_bus_delivers_to_each_subscriber_of_the_topic() -> None:
    bus = InProcessBus()
    async with bus.subscribe("a") as first, bus.subscribe("a") as second, bus.subscribe("b") as b:
        bus.publish("a", {"n": 1})
        assert await first.get() == {"n": 1}
        assert await second.get() == {"n": 1}
        assert b.get_nowait() is None
    assert bus.subscriber_count("a") == 0


async def test_bus_drops_the_oldest_for_a_slow_subscriber() -> None:
    bus = InProcessBus(queue_size=3)
    async with bus.subscribe("t") as slow:
        for n in range(5):
            bus.publish("t", {"n": n})
        assert slow.dropped == 2
        assert [(await slow.get())["n"] for _ in range(3)] == [2, 3, 4]  # type: ignore[index]


async def test_bus_accepts_messages_from_other_threads() -> None:
    bus = InProcessBus()
    async with bus.subscribe("t") as subscription:
        threads = [threading.Thread(target=bus.publish, args=("t", {"n": n})) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        received = [await asyncio.wait_for(subscription.get(), 2) for _ in range(20)]
    assert sorted(m["n"] for m in received if m) == list(range(20))


async def test_bus_close_ends_subscriptions() -> None:
    bus = InProcessBus()
    async with bus.subscribe("t") as subscription:
        bus.close()
        assert await asyncio.wait_for(subscription.get(), 2) is None


# --- statuses ------------------------------------------------------------------------------------


def event(
    type_: str, site_id: int | None, peer: str | None = None, **fields: Any
) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "type": type_, "site_id": site_id, "peer_id": peer, **fields}


def test_status_follows_joins_drops_and_the_floor() -> None:
    status = LiveStatus(site_ids=[1, 2, 3], chair_site_id=1)
    assert status.site_view(2)["state"] == "not_joined"
    joined = event("joined", 2, "p2-in", direction="ingest")
    assert status.apply(joined) == ({2}, False)
    assert status.apply(joined) == (set(), False)  # the same event delivered twice
    status.apply(event("joined", 2, "p2-out", direction="egress"))
    status.apply(event("left", 2, "p2-in", detail={"reason": "connection failed"}))
    assert status.site_view(2)["state"] == "joined"  # still watching
    status.apply(event("left", 2, "p2-out", detail={"reason": "connection failed"}))
    assert status.site_view(2)["state"] == "dropped"
    status.apply(event("joined", 3, "p3"))
    status.apply(event("left", 3, "p3", detail={"reason": "deleted"}))
    assert status.site_view(3)["state"] == "left"
    status.apply(event("joined", 3, "p3b"))
    status.apply(event("stats", 3, "p3b", stats={"rtt_ms": 20.0, "loss_ratio": 0.08}))
    assert status.site_view(3)["quality"] == "poor"
    assert status.site_view(3)["loss_pct"] == 8.0
    floor = {"speaker_site_id": 3, "muted_site_ids": [2, 0], "hands": [2, 99], "chair_site_id": 1}
    changed, floor_changed = status.apply({"type": "floor", "floor": floor})
    assert floor_changed and changed == {1, 2, 3}
    assert status.site_view(2)["muted"] and status.site_view(2)["hand"] == 1
    assert status.site_view(3)["speaking"]
    assert status.floor_view()["muted_site_ids"] == [2]  # the console's viewer is no site
    # Events of peers that are not sites of the meeting (the console's viewer) are ignored.
    assert status.apply(event("joined", 0, "console")) == (set(), False)


# --- the event stream ----------------------------------------------------------------------------


@pytest.fixture
def server(database: Database, tmp_path: Path) -> Iterator[ServerThread]:
    settings = make_settings(
        database.settings.database_url or "", tmp_path, sfu={"node_secret": NODE_SECRET}
    )
    server = ServerThread(create_app(settings, database=database)).start()
    yield server
    server.stop()


@pytest.fixture
def occurrence_id(session: Session, communes: dict[str, int], settings: Any) -> int:
    start = (utcnow() - timedelta(minutes=5)).astimezone(UTC)
    series = meeting_service.create(
        session=session,
        series_in={
            "title": "Giao ban trực tuyến", "kind": "giao_ban", "mode": "online",
            "rrule": "FREQ=DAILY;COUNT=1",
            "dtstart": start.isoformat(timespec="minutes"),
            "duration_min": 60, "chair_site_id": communes["hq"],
            "site_ids": [communes["c0"], communes["c1"]], "skip_holidays": False,
        },
        settings=settings.meetings, now=utcnow(),
    )  # fmt: skip
    session.commit()
    return series.occurrences[0].id


def sign_in_http(client: httpx.Client, database: Database) -> None:
    username = f"live-{uuid.uuid4().hex[:6]}"
    create_user(database, username, Role.viewer)
    token = csrf_of(client.get("/sign-in").text)
    response = client.post(
        "/sign-in", data={"csrf_token": token, "username": username, "password": PASSWORD}
    )
    assert response.status_code in (200, 303)


def post_events(server: ServerThread, *events: dict[str, Any]) -> dict[str, int]:
    """As node-1 (which held the rooms) posts them, with its own key."""
    database: Database = server.app.state.db
    headers = enrol_node(database, "node-1", rotate=True)
    let_node_hold(database, "node-1", *{event["occurrence_id"] for event in events})
    response = httpx.post(
        f"{server.url}/api/v1/sfu/events", json={"events": list(events)}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def sfu_event(
    occurrence_id: int, type_: str, site_id: int, peer: str, **fields: Any
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex, "type": type_, "at": datetime.now(UTC).isoformat(),
        "node_id": "node-1", "room": f"occ-{occurrence_id}", "occurrence_id": occurrence_id,
        "site_id": site_id, "peer_id": peer, **fields,
    }  # fmt: skip


class EventStream:
    """Reads server-sent events from a streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.iter_lines()

    def next(self, *, skip: tuple[str, ...] = ("schedule",)) -> tuple[str, dict[str, Any]]:
        """The next event, but for those named in `skip` (by default when the meeting runs,
        sent after each snapshot and when it is extended or ended)."""
        name, data = "", ""
        for line in self._lines:
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif line == "" and name:
                if name not in skip:
                    return name, json.loads(data)
                name, data = "", ""
        raise AssertionError("the stream ended")


def test_live_stream_starts_from_stored_events_and_follows_new_ones(
    server: ServerThread, database: Database, occurrence_id: int, communes: dict[str, int]
) -> None:
    c0, c1 = communes["c0"], communes["c1"]
    # Before the page is opened: c0 joined and dropped, c1 joined.
    post_events(
        server,
        sfu_event(occurrence_id, "joined", c0, "a", direction="ingest"),
        sfu_event(occurrence_id, "left", c0, "a", direction="ingest",
                  detail={"reason": "connection failed"}),
        sfu_event(occurrence_id, "joined", c1, "b", direction="ingest"),
    )  # fmt: skip
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get(f"/occurrences/{occurrence_id}/live").status_code == 401
        sign_in_http(client, database)
        page = client.get(f"/occurrences/{occurrence_id}")
        assert 'data-state="dropped"' in page.text and 'data-state="joined"' in page.text
        with client.stream("GET", f"/occurrences/{occurrence_id}/live") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = EventStream(response)
            name, snapshot = stream.next()
            assert name == "snapshot"
            # then when the meeting runs: its end, and whether it ended
            name, when = stream.next(skip=())
            assert name == "schedule" and when["occurrence_id"] == occurrence_id
            assert when["ended"] is False and when["end_at"]
            assert snapshot["sites"][str(c0)]["state"] == "dropped"
            assert snapshot["sites"][str(c1)]["state"] == "joined"
            assert snapshot["sites"][str(communes["hq"])]["state"] == "not_joined"
            joined = sfu_event(occurrence_id, "joined", c0, "c", direction="ingest")
            assert post_events(server, joined) == {"stored": 1, "duplicates": 0}
            name, update = stream.next()
            assert name == "update"
            assert update["sites"] == {str(c0): update["sites"][str(c0)]}
            assert update["sites"][str(c0)]["state"] == "joined"
            # A batch delivered again changes nothing; a floor change arrives as an update.
            assert post_events(server, joined) == {"stored": 0, "duplicates": 1}
            floor = {
                "room": f"occ-{occurrence_id}",
                "speaker_site_id": c1,
                "chair_site_id": communes["hq"],
                "muted_site_ids": [c0],
                "hands": [c0],
            }
            post_events(
                server, {**sfu_event(occurrence_id, "floor_changed", c0, "x"), "site_id": None,
                         "peer_id": None, "floor": floor},
            )  # fmt: skip
            name, update = stream.next()
            assert update["floor"]["speaker_site_id"] == c1
            assert update["sites"][str(c0)]["hand"] == 1 and update["sites"][str(c0)]["muted"]
    assert client.is_closed


def test_live_stream_ends_after_a_while_for_the_browser_to_reconnect(
    server: ServerThread,
    database: Database,
    occurrence_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(occurrence_pages, "SSE_STREAM_MAX_S", 0.5)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        sign_in_http(client, database)
        started = time.monotonic()
        with client.stream("GET", f"/occurrences/{occurrence_id}/live") as response:
            body = "".join(response.iter_text())
        assert time.monotonic() - started < 5
    assert body.startswith("retry: ")
    assert body.count("event: snapshot") == 1


def test_live_stream_of_an_unknown_occurrence_is_404(
    server: ServerThread, database: Database
) -> None:
    with httpx.Client(base_url=server.url) as client:
        sign_in_http(client, database)
        assert client.get("/occurrences/424242/live").status_code == 404
        assert client.get("/occurrences/abc/live").status_code == 404
