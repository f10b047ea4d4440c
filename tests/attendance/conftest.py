"""Meetings in the past or running now, and SFU events posted as a worker posts them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from confbridge.db import Database
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge_kernel.contracts import EventType, PeerStats, SfuEvent, room_name
from tests.conftest import enrol_node, let_node_hold, make_settings

Headers = dict[str, str]
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NODE_SECRET = "node-secret-for-attendance-tests-0123456789"


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return make_settings(
        database.settings.database_url or "", tmp_path, sfu={"node_secret": NODE_SECRET}
    )


def local(text: str) -> datetime:
    """'2025-03-03 08:10' in Asia/Ho_Chi_Minh."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.fixture
def meeting(client: TestClient, secretariat: Headers, sites: dict[str, Site]) -> Callable[..., int]:
    """Book a one-off meeting chaired by hq, inviting p1 and p2; returns its occurrence id."""

    def book(dtstart: str = "2025-03-03T08:00:00", duration_min: int = 60, **changes: Any) -> int:
        body = {
            "title": f"Giao ban {uuid.uuid4().hex[:6]}",
            "kind": "giao_ban",
            "mode": "online",
            "rrule": "FREQ=DAILY;COUNT=1",
            "dtstart": dtstart,
            "duration_min": duration_min,
            "chair_site_id": sites["hq"].id,
            "site_ids": [sites["p1"].id, sites["p2"].id],
            "skip_holidays": False,
            **changes,
        }
        created = client.post("/api/v1/series", json=body, headers=secretariat)
        assert created.status_code == 201, created.text
        listed = client.get(
            f"/api/v1/series/{created.json()['id']}/occurrences?from=2000-01-01&to=2100-01-01",
            headers=secretariat,
        )
        return listed.json()["items"][0]["id"]

    return book


def event(
    occurrence_id: int,
    site_id: int,
    kind: EventType,
    at: datetime,
    peer: str = "i",
    *,
    reason: str | None = None,
    rtt_ms: float | None = None,
    loss_ratio: float | None = None,
) -> SfuEvent:
    stats = None
    if kind is EventType.stats:
        stats = PeerStats(rtt_ms=rtt_ms, loss_ratio=loss_ratio, packets=100)
    return SfuEvent(
        id=f"att-{uuid.uuid4().hex}",
        type=kind,
        at=at.astimezone(UTC),
        node_id="node-a",
        room=room_name(occurrence_id),
        occurrence_id=occurrence_id,
        site_id=site_id,
        peer_id=f"{site_id}-{peer}",
        direction="egress" if peer.startswith("e") else "ingest",
        stats=stats,
        detail={"reason": reason} if reason else {},
    )


def media(
    occurrence_id: int,
    site_id: int,
    start: datetime,
    end: datetime,
    peer: str = "i",
    *,
    every_min: int = 5,
) -> list[SfuEvent]:
    """A peer's `stats` reports from `start` to just before `end`, packets rising: media
    flowing to or from the hall, as a worker reports it (every `every_min` minutes here)."""
    reports, packets = [], 0
    moment = start + timedelta(minutes=every_min)
    stops = []
    while moment < end:
        stops.append(moment)
        moment += timedelta(minutes=every_min)
    stops.append(end - timedelta(seconds=1))  # before the leave at `end`
    for when in stops:
        packets += 1000
        reports.append(
            SfuEvent(
                id=f"att-{uuid.uuid4().hex}",
                type=EventType.stats,
                at=when.astimezone(UTC),
                node_id="node-a",
                room=room_name(occurrence_id),
                occurrence_id=occurrence_id,
                site_id=site_id,
                peer_id=f"{site_id}-{peer}",
                direction="egress" if peer.startswith("e") else "ingest",
                stats=PeerStats(packets=packets, interval_s=every_min * 60),
            )
        )
    return reports


@pytest.fixture
def post_events(client: TestClient, database: Database) -> Callable[..., None]:
    """POST events to the SFU event endpoint with node-a's key, as a worker does (node-a
    held the rooms: placed there at their first join)."""
    node = enrol_node(database, "node-a")

    def post(*events: SfuEvent) -> None:
        let_node_hold(database, "node-a", *{e.occurrence_id for e in events})
        body = {"events": [json.loads(e.model_dump_json()) for e in events]}
        response = client.post("/api/v1/sfu/events", json=body, headers=node)
        assert response.status_code == 200, response.text
        assert response.json()["stored"] == len(events)

    return post
