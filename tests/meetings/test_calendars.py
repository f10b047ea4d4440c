"""iCalendar feeds, read back by icalendar and expanded by an independent RRULE engine."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import recurring_ical_events
from fastapi.testclient import TestClient
from icalendar import Calendar

from confbridge.auth.models import Role
from confbridge.sites.models import Site

Headers = dict[str, str]
Book = Callable[..., dict[str, Any]]
Occurrences = Callable[[int], list[dict[str, Any]]]


def _feed(client: TestClient, path: str, headers: Headers) -> Calendar:
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    return Calendar.from_ical(response.content)


def _expanded_starts(calendar: Calendar) -> list[datetime]:
    events = recurring_ical_events.of(calendar).between(
        datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    )
    return sorted(e["DTSTART"].dt.astimezone(UTC) for e in events)


def _scheduled_starts(items: list[dict[str, Any]]) -> list[datetime]:
    return sorted(
        datetime.fromisoformat(o["start_at"]) for o in items if o["status"] == "scheduled"
    )


def test_series_feed_matches_the_planned_occurrences(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    occurrences: Occurrences,
) -> None:
    # Tết (16 Feb 2026) is skipped; one occurrence is cancelled, one moved.
    series = book(dtstart="2026-01-26T07:30", rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=6")
    items = occurrences(series["id"])
    client.patch(
        f"/api/v1/occurrences/{items[1]['id']}", json={"status": "cancelled"}, headers=secretariat
    )
    client.patch(
        f"/api/v1/occurrences/{items[2]['id']}",
        json={"start_at": "2026-02-10T09:00:00+07:00"},
        headers=secretariat,
    )
    calendar = _feed(client, f"/api/v1/series/{series['id']}/calendar.ics", secretariat)

    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Asia/Ho_Chi_Minh"]
    master, override = calendar.walk("VEVENT")
    assert master["RRULE"]["FREQ"] == ["WEEKLY"]
    assert master["DTSTART"].params["TZID"] == "Asia/Ho_Chi_Minh"
    excluded = {d.dt.date().isoformat() for exdate in [master["EXDATE"]] for d in exdate.dts}
    assert excluded == {"2026-02-02", "2026-02-16"}  # cancelled, Tết
    assert override["UID"] == master["UID"]
    assert override["RECURRENCE-ID"].dt.date().isoformat() == "2026-02-09"
    assert override["SEQUENCE"] == 1

    expanded = _expanded_starts(calendar)
    assert expanded == _scheduled_starts(occurrences(series["id"]))


def test_series_feed_uid_is_stable(client: TestClient, secretariat: Headers, book: Book) -> None:
    series = book()
    path = f"/api/v1/series/{series['id']}/calendar.ics"
    first = _feed(client, path, secretariat).walk("VEVENT")[0]["UID"]
    client.patch(f"/api/v1/series/{series['id']}", json={"title": "Đổi tên"}, headers=secretariat)
    assert _feed(client, path, secretariat).walk("VEVENT")[0]["UID"] == first


def test_site_feed_lists_every_occurrence_and_cancellations(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    occurrences: Occurrences,
    sites: dict[str, Site],
) -> None:
    series = book()
    book(
        title="Tập huấn",
        kind="tap_huan",
        dtstart="2030-03-05T14:00",
        rrule="FREQ=WEEKLY;COUNT=2",
        chair_site_id=sites["p1"].id,
        site_ids=[],
    )
    first = occurrences(series["id"])[0]
    client.patch(
        f"/api/v1/occurrences/{first['id']}", json={"status": "cancelled"}, headers=secretariat
    )
    calendar = _feed(client, f"/api/v1/sites/{sites['p1'].id}/calendar.ics", secretariat)
    events = calendar.walk("VEVENT")
    assert len(events) == 10
    assert len({e["UID"] for e in events}) == 10
    cancelled = [e for e in events if e["STATUS"] == "CANCELLED"]
    assert len(cancelled) == 1
    assert cancelled[0]["DTSTART"].dt.astimezone(UTC).isoformat() == "2030-03-04T00:30:00+00:00"


def test_site_feed_terminal_reads_only_its_own(
    client: TestClient,
    make_user: Callable[..., Headers],
    book: Book,
    sites: dict[str, Site],
) -> None:
    book()
    it = make_user(Role.it)
    token = client.post(f"/api/v1/sites/{sites['p1'].id}/terminals", headers=it).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    own = client.get(f"/api/v1/sites/{sites['p1'].id}/calendar.ics", headers=auth)
    assert own.status_code == 200
    other = client.get(f"/api/v1/sites/{sites['p2'].id}/calendar.ics", headers=auth)
    assert other.status_code == 403
