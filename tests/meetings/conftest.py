"""Helpers for booking series in tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from confbridge.sites.models import Site

Headers = dict[str, str]


@pytest.fixture
def series_body(sites: dict[str, Site]) -> Callable[..., dict[str, Any]]:
    """A weekly Monday 07:30 briefing chaired by the province hall, inviting ward p1."""

    def build(**changes: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "title": "Giao ban tuần",
            "kind": "giao_ban",
            "mode": "online",
            "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=8",
            "dtstart": "2030-03-04T07:30:00",
            "duration_min": 90,
            "chair_site_id": sites["hq"].id,
            "site_ids": [sites["p1"].id],
        }
        body.update(changes)
        return body

    return build


@pytest.fixture
def book(
    client: TestClient, secretariat: Headers, series_body: Callable[..., dict[str, Any]]
) -> Callable[..., dict[str, Any]]:
    """POST a series (expecting 201) and return it."""

    def post(**changes: Any) -> dict[str, Any]:
        # dates in the past are recorded meetings here (the refusal has its own tests)
        body = {"record_past": True, **series_body(**changes)}
        response = client.post("/api/v1/series", json=body, headers=secretariat)
        assert response.status_code == 201, response.text
        return response.json()

    return post


@pytest.fixture
def occurrences(client: TestClient, secretariat: Headers) -> Callable[[int], list[dict[str, Any]]]:
    def fetch(series_id: int) -> list[dict[str, Any]]:
        response = client.get(
            f"/api/v1/series/{series_id}/occurrences?from=2000-01-01&to=2100-01-01",
            headers=secretariat,
        )
        assert response.status_code == 200, response.text
        return response.json()["items"]

    return fetch
