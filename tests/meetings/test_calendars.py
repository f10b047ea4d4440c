"""iCalendar feeds, read back by icalendar and expanded by an independent RRULE engine."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import recurring_ical_events
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy import select

from confbridge.auth.models import Role, User
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
        json={"start_at": "2026-02-10T09:00:00+07:00", "record_past": True},
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


def test_feed_token_subscribes_without_a_header(
    client: TestClient,
    app: Any,
    serve: Callable[..., Any],
    secretariat: Headers,
    book: Book,
    occurrences: Occurrences,
    sites: dict[str, Site],
) -> None:
    """A calendar program fetches the series and site feeds over HTTP with only `?feed=`."""
    series = book()
    created = client.post("/api/v1/me/feed-token", headers=secretariat)
    assert created.status_code == 201
    token = created.json()["feed_token"]
    server = serve(app)
    with httpx.Client(base_url=server.url) as program:  # no header, no cookie
        series_feed = program.get(f"/api/v1/series/{series['id']}/calendar.ics?feed={token}")
        site_feed = program.get(f"/api/v1/sites/{sites['p1'].id}/calendar.ics?feed={token}")
        refused = program.get(f"/api/v1/series/{series['id']}/calendar.ics")
        # The feed token reads calendars and nothing else.
        other = program.get(f"/api/v1/series/{series['id']}?feed={token}")
    assert series_feed.status_code == 200 and site_feed.status_code == 200
    starts = _expanded_starts(Calendar.from_ical(series_feed.content))
    assert starts == _scheduled_starts(occurrences(series["id"]))
    assert len(Calendar.from_ical(site_feed.content).walk("VEVENT")) == 8
    assert refused.status_code == 401
    assert other.status_code == 401


def test_feed_token_renewed_revoked_or_disabled_user_is_refused(
    client: TestClient,
    admin: Headers,
    make_user: Callable[..., Headers],
    book: Book,
    session: Any,
) -> None:
    series = book()
    viewer = make_user(Role.viewer, "xem")
    path = f"/api/v1/series/{series['id']}/calendar.ics"
    first = client.post("/api/v1/me/feed-token", headers=viewer).json()["feed_token"]
    second = client.post("/api/v1/me/feed-token", headers=viewer).json()["feed_token"]
    assert first != second and first.startswith("cbf_")
    stored = session.scalar(select(User.feed_token_hash).where(User.username == "xem"))
    assert stored and second not in stored  # kept as a hash only

    replaced = client.get(f"{path}?feed={first}")
    assert replaced.status_code == 401
    assert "unknown or revoked calendar feed token" in replaced.json()["detail"]
    assert client.get(f"{path}?feed={second}").status_code == 200

    user_id = client.get("/api/v1/me", headers=viewer).json()["user"]["id"]
    client.patch(f"/api/v1/users/{user_id}", json={"active": False}, headers=admin)
    disabled = client.get(f"{path}?feed={second}")
    assert disabled.status_code == 401
    assert "disabled" in disabled.json()["detail"]
    client.patch(f"/api/v1/users/{user_id}", json={"active": True}, headers=admin)
    viewer = make_user_token(client, "xem")
    assert client.get(f"{path}?feed={second}").status_code == 200

    assert client.delete("/api/v1/me/feed-token", headers=viewer).status_code == 204
    revoked = client.get(f"{path}?feed={second}")
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]


def make_user_token(client: TestClient, username: str) -> Headers:
    response = client.post(
        "/api/v1/auth/token", data={"username": username, "password": "correct-horse"}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_feeds_say_how_to_dial_in_with_the_pin_for_those_who_may_see_it(
    client: TestClient,
    secretariat: Headers,
    make_user: Callable[..., Headers],
    book: Book,
    sites: dict[str, Site],
) -> None:
    series = book(meeting_number="2468135", pin="975310")
    line = "Gọi SIP / SIP: sip:2468135@127.0.0.1"
    it = make_user(Role.it)
    token = client.post(f"/api/v1/sites/{sites['p1'].id}/terminals", headers=it).json()["token"]
    terminal = {"Authorization": f"Bearer {token}"}
    series_path = f"/api/v1/series/{series['id']}/calendar.ics"
    site_path = f"/api/v1/sites/{sites['p1'].id}/calendar.ics"
    readers = [
        (series_path, secretariat, True),
        (series_path, make_user(Role.viewer), False),
        (site_path, terminal, True),  # the invited site dials in with it
        (site_path, it, False),
    ]
    for path, headers, with_pin in readers:
        events = list(_feed(client, path, headers).walk("VEVENT"))
        assert events
        for event in events:
            description = str(event["DESCRIPTION"])
            assert description.splitlines()[-1] == (f"{line} — PIN 975310" if with_pin else line), (
                path,
                description,
            )
