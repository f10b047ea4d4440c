"""Meetings in the past or running now, and SFU events (`tests.support.events`) posted as a
worker posts them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from confbridge.db import Database
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge_kernel.contracts import SfuEvent
from tests.support.factories import enrol_node, let_node_hold, make_settings

Headers = dict[str, str]
NODE_SECRET = "node-secret-for-attendance-tests-0123456789"


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return make_settings(
        database.settings.database_url or "", tmp_path, sfu={"node_secret": NODE_SECRET}
    )


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
            "record_past": True,  # meetings that took place, recorded
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
