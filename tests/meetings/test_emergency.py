"""Emergency meetings (họp khẩn) over the API: a clash is refused unless the request says what
becomes of every clashing meeting; then they are cancelled or moved with the booking, in one
transaction, and the record says who overrode what."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from confbridge.auth.models import AuditEntry, Role
from confbridge.db import Database
from confbridge.meetings.models import Displacement, Occurrence, Series
from confbridge.sites.models import Site
from tests.support.scopes import scoped_user
from tests.support.servers import ServerThread

Headers = dict[str, str]
SLOT = "2030-03-04T07:30:00"  # a Monday, 07:30 in Asia/Ho_Chi_Minh
CONTENDERS = 2


def _one_meeting(title: str, chair: Site, sites: list[Site], at: str = SLOT) -> dict[str, Any]:
    return {
        "title": title,
        "kind": "chuyen_de",
        "mode": "online",
        "rrule": "FREQ=DAILY;COUNT=1",
        "dtstart": at,
        "duration_min": 60,
        "chair_site_id": chair.id,
        "site_ids": [s.id for s in sites],
        "skip_holidays": False,
    }


def _book(client: TestClient, headers: Headers, body: dict[str, Any]) -> int:
    """Book and return the (only) occurrence's id."""
    response = client.post("/api/v1/series", json=body, headers=headers)
    assert response.status_code == 201, response.text
    listed = client.get(
        f"/api/v1/series/{response.json()['id']}/occurrences?from=2000-01-01&to=2100-01-01",
        headers=headers,
    )
    return int(listed.json()["items"][0]["id"])


def _emergency(body: dict[str, Any], **emergency: Any) -> dict[str, Any]:
    return {**body, "emergency": {"confirm": True, "reason": "Bão số 3 đổ bộ", **emergency}}


def _occurrence(client: TestClient, headers: Headers, occurrence_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/occurrences/{occurrence_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def briefing(client: TestClient, secretariat: Headers, sites: dict[str, Site]) -> int:
    """The province's briefing at SLOT, chaired by hq and inviting ward p1."""
    return _book(client, secretariat, _one_meeting("Giao ban tỉnh", sites["hq"], [sites["p1"]]))


def test_emergency_clash_refused_without_the_override(
    client: TestClient, secretariat: Headers, sites: dict[str, Site], briefing: int
) -> None:
    body = _one_meeting("Họp khẩn phòng chống bão", sites["hq"], [sites["p1"]])
    response = client.post("/api/v1/series", json=body, headers=secretariat)
    assert response.status_code == 409
    assert {c["occurrence_id"] for c in response.json()["conflicts"]} == {briefing}


def test_emergency_cancel_books_and_records_who_overrode(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    briefing: int,
    database: Database,
) -> None:
    body = _emergency(
        _one_meeting("Họp khẩn phòng chống bão", sites["hq"], [sites["p1"], sites["p2"]]),
        displaced=[{"occurrence_id": briefing, "action": "cancel"}],
    )
    response = client.post("/api/v1/series", json=body, headers=secretariat)
    assert response.status_code == 201, response.text
    emergency_id = response.json()["id"]
    displaced = _occurrence(client, secretariat, briefing)
    assert displaced["status"] == "cancelled"
    (note,) = displaced["displacements"]
    assert (note["action"], note["actor"], note["reason"]) == (
        "cancel",
        "user:vanphong",
        "Bão số 3 đổ bộ",
    )
    assert note["emergency_series_id"] == emergency_id
    with database.session() as session:
        row = session.scalars(select(Displacement)).one()
        assert (row.occurrence_id, row.action, row.actor) == (briefing, "cancel", "user:vanphong")
        assert row.reason == "Bão số 3 đổ bộ"
        assert row.emergency_series_id == emergency_id
        emergency_occurrence = session.scalars(
            select(Occurrence).where(Occurrence.series_id == emergency_id)
        ).one()
        assert row.emergency_occurrence_id == emergency_occurrence.id
        actions = {
            (a.action, a.entity, a.entity_id)
            for a in session.scalars(select(AuditEntry).where(AuditEntry.action.like("%emerg%")))
        } | {
            (a.action, a.entity, a.entity_id)
            for a in session.scalars(
                select(AuditEntry).where(AuditEntry.action.like("occurrence_displaced%"))
            )
        }
    assert actions == {
        ("emergency_booked", "series", emergency_id),
        ("occurrence_displaced_cancel", "occurrence", briefing),
    }


def test_emergency_move_shifts_the_displaced_meeting(
    client: TestClient, secretariat: Headers, sites: dict[str, Site], briefing: int
) -> None:
    body = _emergency(
        _one_meeting("Họp khẩn", sites["hq"], [sites["p1"]]),
        displaced=[
            {"occurrence_id": briefing, "action": "move", "new_start": "2030-03-04T14:00:00+07:00"}
        ],
    )
    response = client.post("/api/v1/series", json=body, headers=secretariat)
    assert response.status_code == 201, response.text
    moved = _occurrence(client, secretariat, briefing)
    assert moved["status"] == "scheduled"
    assert moved["moved"] is True
    assert moved["start_at"].startswith("2030-03-04T07:00:00")  # 14:00 +07:00


@pytest.mark.parametrize(
    ("emergency", "status", "code"),
    [
        ({"confirm": False}, 422, "emergency_confirm_needed"),
        ({"reason": "  "}, 422, "emergency_reason_needed"),
        ({"displaced": "move-without-start"}, 422, "emergency_new_start_needed"),
        ({"displaced": "someone-else"}, 422, "emergency_not_clashing"),
        ({"displaced": "move-onto-other"}, 409, "emergency_move_clash"),
        ({"displaced": "move-onto-itself"}, 409, "emergency_move_clash"),
    ],
)
def test_emergency_refusals_are_clear_and_change_nothing(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    briefing: int,
    database: Database,
    emergency: dict[str, Any],
    status: int,
    code: str,
) -> None:
    other = _book(
        client,
        secretariat,
        _one_meeting("Tập huấn", sites["hq"], [sites["p1"]], at="2030-03-04T14:00:00"),
    )
    unrelated = _book(
        client,
        secretariat,
        _one_meeting("Họp sở", sites["dept"], [sites["dept"]], at="2030-03-05T08:00:00"),
    )
    displaced = {
        "move-without-start": [{"occurrence_id": briefing, "action": "move"}],
        "someone-else": [
            {"occurrence_id": briefing, "action": "cancel"},
            {"occurrence_id": unrelated, "action": "cancel"},
        ],
        "move-onto-other": [
            {"occurrence_id": briefing, "action": "move", "new_start": "2030-03-04T14:30:00+07:00"}
        ],
        "move-onto-itself": [
            {"occurrence_id": briefing, "action": "move", "new_start": "2030-03-04T08:00:00+07:00"}
        ],
    }.get(str(emergency.get("displaced")), [{"occurrence_id": briefing, "action": "cancel"}])
    body = _emergency(
        _one_meeting("Họp khẩn", sites["hq"], [sites["p1"]]),
        **{**emergency, "displaced": displaced},
    )
    response = client.post("/api/v1/series", json=body, headers=secretariat)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.json()["detail"]
    for occurrence_id in (briefing, other, unrelated):
        unchanged = _occurrence(client, secretariat, occurrence_id)
        assert (unchanged["status"], unchanged["moved"]) == ("scheduled", False)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Displacement)) == 0
        assert session.scalar(select(func.count()).select_from(Series)) == 3


def test_emergency_must_cover_every_clash(
    client: TestClient, secretariat: Headers, sites: dict[str, Site], briefing: int
) -> None:
    training = _book(
        client,
        secretariat,
        _one_meeting("Tập huấn", sites["dept"], [sites["p2"]], at="2030-03-04T08:00:00"),
    )
    body = _emergency(
        _one_meeting("Họp khẩn", sites["hq"], [sites["p1"], sites["p2"]]),
        displaced=[{"occurrence_id": briefing, "action": "cancel"}],
    )
    response = client.post("/api/v1/series", json=body, headers=secretariat)
    assert response.status_code == 409
    assert response.json()["code"] == "emergency_uncovered"
    assert response.json()["uncovered_occurrence_ids"] == [training]
    assert _occurrence(client, secretariat, briefing)["status"] == "scheduled"


def test_emergency_ward_secretariat_cannot_displace_a_province_meeting(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    briefing: int,
    database: Database,
) -> None:
    ward = scoped_user(database, client, "vp_phuong1", [(sites["p1"].unit_id, Role.secretariat)])
    body = _emergency(
        _one_meeting("Họp khẩn phường", sites["p1"], [sites["p1"]]),
        displaced=[{"occurrence_id": briefing, "action": "cancel"}],
    )
    response = client.post("/api/v1/series", json=body, headers=ward)
    assert response.status_code == 403
    assert response.json()["code"] == "emergency_forbidden"
    assert "Giao ban tỉnh" in response.json()["detail"]
    assert _occurrence(client, secretariat, briefing)["status"] == "scheduled"
    # its own ward's meeting it may displace
    own = _book(
        client,
        ward,
        _one_meeting("Giao ban phường", sites["p1"], [sites["p1"]], at="2030-03-06T07:30:00"),
    )
    body = _emergency(
        _one_meeting("Họp khẩn phường", sites["p1"], [sites["p1"]], at="2030-03-06T07:30:00"),
        displaced=[{"occurrence_id": own, "action": "cancel"}],
    )
    assert client.post("/api/v1/series", json=body, headers=ward).status_code == 201


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    server = ServerThread(app).start()
    yield server.url
    server.stop()


def test_emergency_two_racing_for_one_slot_one_wins(
    live_server: str,
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    briefing: int,
    database: Database,
) -> None:
    """Both displace the same briefing; the second finds the first's meeting in the slot."""
    barrier = threading.Barrier(CONTENDERS)

    def contend(index: int) -> tuple[int, dict[str, Any]]:
        body = _emergency(
            _one_meeting(f"Họp khẩn {index}", sites["hq"], [sites["p1"]]),
            displaced=[{"occurrence_id": briefing, "action": "cancel"}],
        )
        with httpx.Client(base_url=live_server, headers=secretariat, timeout=60) as http:
            barrier.wait()
            response = http.post("/api/v1/series", json=body)
            return response.status_code, response.json()

    with ThreadPoolExecutor(CONTENDERS) as pool:
        results = sorted(pool.map(contend, range(CONTENDERS)), key=lambda r: r[0])
    assert [code for code, _ in results] == [201, 409]
    assert results[1][1]["code"] == "emergency_uncovered"
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Displacement)) == 1
        titles = set(session.scalars(select(Series.title)))
    assert titles & {"Họp khẩn 0", "Họp khẩn 1"} and len(titles) == 2


def test_emergency_scope_of_book_rule(
    client: TestClient,
    make_user: Callable[..., Headers],
    sites: dict[str, Site],
    briefing: int,
) -> None:
    """Viewers and IT staff may not book at all, emergency or not."""
    body = _emergency(
        _one_meeting("Họp khẩn", sites["hq"], [sites["p1"]]),
        displaced=[{"occurrence_id": briefing, "action": "cancel"}],
    )
    for role in (Role.viewer, Role.it):
        response = client.post("/api/v1/series", json=body, headers=make_user(role))
        assert response.status_code == 403
