"""Nothing vanishes: a meeting the planner cannot place is recorded, alerted on, shown on the
series, and resolved there by the secretariat (moved, or its skip accepted)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.alerts.models import Alert
from confbridge.auth.models import AuditEntry, Role
from confbridge.db import Database
from confbridge.meetings import flows as meeting_flows
from confbridge.meetings.models import Booking, Occurrence, UnplannedOccurrence
from confbridge.settings import Settings
from confbridge.sites.models import Site

Headers = dict[str, str]
# The weekly series is first planned to 4 March 2030 + 30 days; planning at LATER reaches May.
SHORT = {"meetings": {"horizon_days": 30}}
LATER = datetime(2030, 3, 29, tzinfo=UTC)
CLASH_DAY = "2030-04-15"  # a Monday beyond the first horizon
CLASH_START = datetime(2030, 4, 15, 0, 30, tzinfo=UTC)  # 07:30 in Hà Nội


@pytest.fixture
def settings(database: Database, tmp_path: Any) -> Settings:
    from tests.support.factories import make_settings

    return make_settings(database.settings.database_url or "", tmp_path, **SHORT)


@pytest.fixture
def clash(
    book: Callable[..., dict[str, Any]],
    session: Session,
    settings: Settings,
    sites: dict[str, Site],
) -> dict[str, Any]:
    """The weekly briefing (open-ended); ward p1 then booked for a training on the 15th of
    April; the planner extends the briefing past it."""
    briefing = book(rrule="FREQ=WEEKLY;BYDAY=MO")
    training = book(
        title="Tập huấn chuyển đổi số",
        rrule="FREQ=DAILY;COUNT=1",
        dtstart=f"{CLASH_DAY}T08:00:00",
        chair_site_id=sites["p1"].id,
        site_ids=[],
    )
    results = meeting_flows.plan_ahead(session=session, settings=settings, now=LATER)
    session.commit()
    mine = next(r for r in results if r.series_id == briefing["id"])
    assert [u.recurrence_at for u in mine.unplanned] == [CLASH_START]
    return {"briefing": briefing, "training": training}


def series(client: TestClient, headers: Headers, series_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/series/{series_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def open_alerts(client: TestClient, headers: Headers) -> list[dict[str, Any]]:
    response = client.get("/api/v1/alerts?open=true&kind=occurrence_unplanned", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def resolve(client: TestClient, headers: Headers, series_id: int, day: str, **body: Any) -> Any:
    return client.post(f"/api/v1/series/{series_id}/unplanned/{day}", json=body, headers=headers)


def test_unplanned_is_listed_on_the_series_and_alerted(
    client: TestClient,
    secretariat: Headers,
    make_user: Callable[..., Headers],
    clash: dict[str, Any],
) -> None:
    body = series(client, secretariat, clash["briefing"]["id"])
    (item,) = body["unplanned"]
    assert (item["date"], item["reason"], item["status"]) == (CLASH_DAY, "clash", "pending")
    assert item["start_at"] == "2030-04-15T00:30:00Z"
    (conflict,) = item["conflicts"]
    assert conflict["series_title"] == "Tập huấn chuyển đổi số"
    # IT staff and the secretariat both see the alert
    for headers in (make_user(Role.it), secretariat):
        (alert,) = open_alerts(client, headers)
        assert alert["details"]["date"] == CLASH_DAY
        assert alert["details"]["series_id"] == clash["briefing"]["id"]
        assert "15/04/2030" in alert["message"] and "Tập huấn" in alert["message_en"]
    assert client.get("/api/v1/alerts", headers=make_user(Role.viewer)).status_code == 403


def test_unplanned_start_is_excluded_from_the_series_calendar(
    client: TestClient, secretariat: Headers, clash: dict[str, Any]
) -> None:
    feed = client.get(f"/api/v1/series/{clash['briefing']['id']}/calendar.ics", headers=secretariat)
    master = Calendar.from_ical(feed.content).walk("VEVENT")[0]
    exdate = master["EXDATE"]
    lists = exdate if isinstance(exdate, list) else [exdate]
    excluded = {d.dt.replace(tzinfo=None) for found in lists for d in found.dts}
    assert datetime(2030, 4, 15, 7, 30) in excluded


def test_unplanned_planning_again_changes_nothing(
    client: TestClient,
    secretariat: Headers,
    clash: dict[str, Any],
    session: Session,
    settings: Settings,
) -> None:
    meeting_flows.plan_ahead(session=session, settings=settings, now=LATER + timedelta(days=1))
    session.commit()
    assert len(series(client, secretariat, clash["briefing"]["id"])["unplanned"]) == 1
    assert len(open_alerts(client, secretariat)) == 1


def test_unplanned_move_to_a_free_time_books_it_and_closes_the_alert(
    client: TestClient,
    secretariat: Headers,
    clash: dict[str, Any],
    database: Database,
    occurrences: Callable[[int], list[dict[str, Any]]],
) -> None:
    series_id = clash["briefing"]["id"]
    moved = resolve(
        client,
        secretariat,
        series_id,
        CLASH_DAY,
        action="move",
        start_at="2030-04-15T14:00:00+07:00",
    )
    assert moved.status_code == 200, moved.text
    occurrence = moved.json()["occurrence"]
    assert occurrence["start_at"] == "2030-04-15T07:00:00Z"
    assert occurrence["recurrence_at"] == "2030-04-15T00:30:00Z" and occurrence["moved"]
    assert occurrence["site_count"] == 2
    assert moved.json()["series"]["unplanned"] == []
    assert occurrence["id"] in [o["id"] for o in occurrences(series_id)]
    assert open_alerts(client, secretariat) == []
    with database.session() as session:
        bookings = session.scalars(
            select(Booking).where(Booking.occurrence_id == occurrence["id"])
        ).all()
        assert len(bookings) == 2 and all(b.active for b in bookings)
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "unplanned_moved")
        ).one()
        assert entry.detail["date"] == CLASH_DAY
        (alert,) = session.scalars(select(Alert)).all()
        assert alert.resolved_at is not None


def test_unplanned_move_into_another_clash_is_refused(
    client: TestClient, secretariat: Headers, clash: dict[str, Any], database: Database
) -> None:
    series_id = clash["briefing"]["id"]
    busy = resolve(
        client,
        secretariat,
        series_id,
        CLASH_DAY,
        action="move",
        start_at="2030-04-15T08:30:00+07:00",  # during the training
    )
    assert busy.status_code == 409, busy.text
    assert busy.json()["conflicts"][0]["series_title"] == "Tập huấn chuyển đổi số"
    own = resolve(
        client,
        secretariat,
        series_id,
        CLASH_DAY,
        action="move",
        start_at="2030-04-22T07:00:00+07:00",  # over the next Monday's briefing
    )
    assert own.status_code == 409, own.text
    assert series(client, secretariat, series_id)["unplanned"][0]["status"] == "pending"
    assert len(open_alerts(client, secretariat)) == 1
    with database.session() as session:
        assert session.scalars(select(UnplannedOccurrence)).one().status == "pending"


def test_unplanned_skip_stays_listed_and_stops_alerting(
    client: TestClient,
    secretariat: Headers,
    clash: dict[str, Any],
    session: Session,
    settings: Settings,
) -> None:
    series_id = clash["briefing"]["id"]
    skipped = resolve(client, secretariat, series_id, CLASH_DAY, action="skip")
    assert skipped.status_code == 200, skipped.text
    assert skipped.json()["occurrence"] is None
    (item,) = skipped.json()["series"]["unplanned"]
    assert (item["status"], item["resolved_by"]) == ("skipped", "user:vanphong")
    assert open_alerts(client, secretariat) == []
    again = resolve(client, secretariat, series_id, CLASH_DAY, action="skip")
    assert again.status_code == 409 and "already skipped" in again.json()["detail"]
    meeting_flows.plan_ahead(session=session, settings=settings, now=LATER + timedelta(days=7))
    session.commit()
    assert open_alerts(client, secretariat) == []  # an accepted skip does not alert again


@pytest.mark.parametrize(
    ("day", "body", "status", "needle"),
    [
        ("2030-04-22", {"action": "skip"}, 404, "no unplanned meeting on 2030-04-22"),
        (CLASH_DAY, {"action": "move"}, 422, "start_at"),
        (CLASH_DAY, {"action": "explode"}, 422, "action"),
        (CLASH_DAY, {"action": "move", "start_at": "2030-04-15T14:00:00"}, 422, "timezone"),
        ("15-04-2030", {"action": "skip"}, 422, "date"),
        (CLASH_DAY, {"action": "skip", "why": "x"}, 422, "why"),
    ],
)
def test_unplanned_bad_requests(
    client: TestClient,
    secretariat: Headers,
    clash: dict[str, Any],
    day: str,
    body: dict[str, Any],
    status: int,
    needle: str,
) -> None:
    response = resolve(client, secretariat, clash["briefing"]["id"], day, **body)
    assert response.status_code == status, response.text
    assert needle in response.text


def test_unplanned_only_the_secretariat_resolves(
    client: TestClient, make_user: Callable[..., Headers], clash: dict[str, Any]
) -> None:
    for role in (Role.viewer, Role.it):
        response = resolve(
            client, make_user(role), clash["briefing"]["id"], CLASH_DAY, action="skip"
        )
        assert response.status_code == 403


def test_unplanned_replan_keeps_dates_the_rule_still_gives(
    client: TestClient, secretariat: Headers, clash: dict[str, Any], database: Database
) -> None:
    """A longer meeting is re-planned without tripping over the clash already known."""
    series_id = clash["briefing"]["id"]
    longer = client.patch(
        f"/api/v1/series/{series_id}", json={"duration_min": 100}, headers=secretariat
    )
    assert longer.status_code == 200, longer.text
    assert [u["date"] for u in longer.json()["unplanned"]] == [CLASH_DAY]
    with database.session() as session:
        starts = session.scalars(
            select(Occurrence.recurrence_at).where(Occurrence.series_id == series_id)
        ).all()
        assert CLASH_START not in starts
    assert len(open_alerts(client, secretariat)) == 1


def test_unplanned_replan_drops_dates_the_rule_no_longer_gives(
    client: TestClient, secretariat: Headers, clash: dict[str, Any]
) -> None:
    series_id = clash["briefing"]["id"]
    tuesdays = client.patch(
        f"/api/v1/series/{series_id}", json={"rrule": "FREQ=WEEKLY;BYDAY=TU"}, headers=secretariat
    )
    assert tuesdays.status_code == 200, tuesdays.text
    assert tuesdays.json()["unplanned"] == []
    assert open_alerts(client, secretariat) == []


def test_unplanned_series_deleted_closes_its_alerts(
    client: TestClient, secretariat: Headers, clash: dict[str, Any]
) -> None:
    response = client.delete(f"/api/v1/series/{clash['briefing']['id']}", headers=secretariat)
    assert response.status_code == 204
    assert open_alerts(client, secretariat) == []
