"""When a meeting runs, over the API: one occurrence's end (`end_at`, `duration_min`) checked
for clashes like a move; a running meeting extended, ended now, or ending by itself after
running over; meetings already over recorded only on purpose (`record_past`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from confbridge.auth.models import AuditEntry
from confbridge.bridge import timing
from confbridge.db import Database
from confbridge.meetings.models import Occurrence
from confbridge.settings import MeetingSettings
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from tests.support.factories import LOCAL_TZ

Headers = dict[str, str]
Book = Callable[..., dict[str, Any]]
Occurrences = Callable[[int], list[dict[str, Any]]]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _local(instant: datetime) -> str:
    """A series' dtstart: wall-clock time in Vietnam, to the minute."""
    return instant.astimezone(LOCAL_TZ).replace(tzinfo=None).isoformat(timespec="minutes")


def test_series_with_meetings_already_over_needs_record_past(
    client: TestClient,
    secretariat: Headers,
    series_body: Callable[..., dict[str, Any]],
    occurrences: Occurrences,
) -> None:
    first = utcnow() - timedelta(days=14)
    body = series_body(dtstart=_local(first), rrule="FREQ=WEEKLY;COUNT=4")
    refused = client.post("/api/v1/series", json=body, headers=secretariat)
    assert refused.status_code == 422, refused.text
    answer = refused.json()
    assert answer["code"] == "record_past_needed" and answer["past_count"] == 2
    assert "Ghi nhận cuộc họp đã diễn ra" in answer["detail"]
    assert "record_past: true" in answer["detail"]
    recorded = client.post(
        "/api/v1/series", json={**body, "record_past": True}, headers=secretariat
    )
    assert recorded.status_code == 201, recorded.text
    # what is saved is what was asked: the two that took place and the two to come
    saved = occurrences(recorded.json()["id"])
    assert len(saved) == 4
    assert sum(_at(o["end_at"]) <= utcnow() for o in saved) == 2


def test_series_starting_now_is_not_a_past_meeting(
    client: TestClient, secretariat: Headers, series_body: Callable[..., dict[str, Any]]
) -> None:
    body = series_body(dtstart=_local(utcnow() - timedelta(minutes=5)), rrule="FREQ=DAILY;COUNT=1")
    assert client.post("/api/v1/series", json=body, headers=secretariat).status_code == 201


def test_occurrence_move_into_the_past_needs_record_past(
    client: TestClient, secretariat: Headers, book: Book, occurrences: Occurrences
) -> None:
    coming = occurrences(book()["id"])[0]
    url = f"/api/v1/occurrences/{coming['id']}"
    into_past = {"start_at": "2025-03-03T08:00:00+07:00"}
    refused = client.patch(url, json=into_past, headers=secretariat)
    assert refused.status_code == 422 and refused.json()["code"] == "record_past_needed"
    assert client.get(url, headers=secretariat).json()["start_at"] == coming["start_at"]
    moved = client.patch(url, json={**into_past, "record_past": True}, headers=secretariat)
    assert moved.status_code == 200, moved.text
    # cancelled, then restored: taking place again in the past is recording it too
    assert client.patch(url, json={"status": "cancelled"}, headers=secretariat).status_code == 200
    restore = client.patch(url, json={"status": "scheduled"}, headers=secretariat)
    assert restore.status_code == 422 and restore.json()["code"] == "record_past_needed"
    restored = client.patch(
        url, json={"status": "scheduled", "record_past": True}, headers=secretariat
    )
    assert restored.status_code == 200 and restored.json()["status"] == "scheduled"


def test_occurrence_end_at_and_duration_min(
    client: TestClient, secretariat: Headers, book: Book, occurrences: Occurrences
) -> None:
    one = occurrences(book()["id"])[0]
    url = f"/api/v1/occurrences/{one['id']}"
    start_at = _at(one["start_at"])
    later = client.patch(
        url, json={"end_at": (start_at + timedelta(hours=2)).isoformat()}, headers=secretariat
    )
    assert later.status_code == 200, later.text
    assert _at(later.json()["end_at"]) == start_at + timedelta(hours=2)
    shorter = client.patch(url, json={"duration_min": 30}, headers=secretariat)
    assert _at(shorter.json()["end_at"]) == start_at + timedelta(minutes=30)
    both = client.patch(
        url, json={"end_at": one["end_at"], "duration_min": 30}, headers=secretariat
    )
    assert both.status_code == 422
    before_start = client.patch(url, json={"end_at": one["start_at"]}, headers=secretariat)
    assert before_start.status_code == 422 and "end_at" in before_start.json()["detail"]


def test_occurrence_longer_end_is_checked_for_clashes_like_a_move(
    client: TestClient, secretariat: Headers, book: Book, occurrences: Occurrences
) -> None:
    morning = occurrences(book(rrule="FREQ=DAILY;COUNT=1")["id"])[0]  # 07:30-09:00, p1
    book(title="Họp chuyên đề", dtstart="2030-03-04T09:00:00", rrule="FREQ=DAILY;COUNT=1")
    url = f"/api/v1/occurrences/{morning['id']}"
    clash = client.patch(url, json={"end_at": "2030-03-04T09:30:00+07:00"}, headers=secretariat)
    assert clash.status_code == 409, clash.text
    assert {c["series_title"] for c in clash.json()["conflicts"]} == {"Họp chuyên đề"}
    assert client.get(url, headers=secretariat).json()["end_at"] == morning["end_at"]
    back_to_back = client.patch(
        url, json={"end_at": "2030-03-04T09:00:00+07:00"}, headers=secretariat
    )
    assert back_to_back.status_code == 200


def _terminal_of(database: Database, site: Site) -> Headers:
    with database.session() as session:
        row = session.get(Site, site.id)
        assert row is not None
        _terminal, token = terminal_service.create_with_token(session=session, site=row)
        session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_running_meeting_is_extended_then_ended_now(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    occurrences: Occurrences,
    database: Database,
    sites: dict[str, Site],
) -> None:
    started = utcnow() - timedelta(minutes=10)
    one = occurrences(book(dtstart=_local(started), rrule="FREQ=DAILY;COUNT=1")["id"])[0]
    url = f"/api/v1/occurrences/{one['id']}"
    hall = _terminal_of(database, sites["p1"])
    (item,) = client.get("/api/v1/terminals/me/agenda", headers=hall).json()["items"]
    end_at = _at(item["end_at"])
    assert _at(item["closes_at"]) == end_at + timedelta(minutes=10)  # the default grace

    extended = client.patch(
        url, json={"end_at": (end_at + timedelta(minutes=15)).isoformat()}, headers=secretariat
    )
    assert extended.status_code == 200 and extended.json()["ended_at"] is None
    (item,) = client.get("/api/v1/terminals/me/agenda", headers=hall).json()["items"]
    assert _at(item["end_at"]) == end_at + timedelta(minutes=15)

    ended = client.patch(url, json={"end_at": utcnow().isoformat()}, headers=secretariat)
    assert ended.status_code == 200, ended.text
    assert ended.json()["ended_at"] is not None
    assert _at(ended.json()["end_at"]) <= utcnow()
    assert client.get("/api/v1/terminals/me/agenda", headers=hall).json()["items"] == []
    floor = client.get(f"/api/v1/terminals/me/floor?occurrence_id={one['id']}", headers=hall)
    assert floor.json()["ended"] is True
    refused = client.post(f"{url}/join", headers=hall)
    assert refused.status_code == 409 and "closed_at" in refused.json()
    with database.session() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(
                AuditEntry.entity == "occurrence", AuditEntry.entity_id == one["id"]
            )
        ).all()
    assert actions.count("occurrence_updated") == 2


def test_meeting_left_running_ends_by_itself_after_the_grace(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    occurrences: Occurrences,
    database: Database,
    sites: dict[str, Site],
) -> None:
    now = utcnow()
    long_over = occurrences(
        book(
            dtstart=_local(now - timedelta(minutes=50)), duration_min=35, rrule="FREQ=DAILY;COUNT=1"
        )["id"]
    )[0]  # ended 15 minutes ago
    running_over = occurrences(
        book(
            title="Tập huấn",
            dtstart=_local(now - timedelta(minutes=50)),
            duration_min=45,
            rrule="FREQ=DAILY;COUNT=1",
            site_ids=[sites["p2"].id],
            chair_site_id=sites["dept"].id,
        )["id"]
    )[0]  # ended 5 minutes ago: still running over
    hall = _terminal_of(database, sites["p2"])
    listed = client.get("/api/v1/terminals/me/agenda", headers=hall).json()["items"]
    assert [i["occurrence_id"] for i in listed] == [running_over["id"]]

    with database.session() as session:
        changes = timing.end_overrun(session=session, settings=MeetingSettings(), now=utcnow())
        session.commit()
        assert [c.occurrence_id for c in changes] == [long_over["id"]]
        over = session.get(Occurrence, long_over["id"])
        assert over is not None and over.ended_at == over.end_at + timedelta(minutes=10)
        # its scheduled end stays its end in reports: nobody extended it
        assert over.end_at == _at(long_over["end_at"])
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.entity == "occurrence", AuditEntry.entity_id == long_over["id"]
            )
        ).one()
        assert (entry.actor, entry.action, entry.detail["by_itself"]) == (
            "system",
            "occurrence_ended",
            True,
        )
        still = session.get(Occurrence, running_over["id"])
        assert still is not None and still.ended_at is None
