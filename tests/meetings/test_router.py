"""Booking series over HTTP: occurrences, conflicts, moves, cancellations, agendas."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from confbridge.auth.models import Role
from confbridge.sites.models import Site, Unit

Headers = dict[str, str]
Book = Callable[..., dict[str, Any]]
Occurrences = Callable[[int], list[dict[str, Any]]]


def test_series_create_plans_occurrences(book: Book, occurrences: Occurrences) -> None:
    series = book()
    assert series["occurrence_count"] == 8
    assert series["tz"] == "Asia/Ho_Chi_Minh"
    items = occurrences(series["id"])
    assert [o["start_at"] for o in items[:2]] == ["2030-03-04T00:30:00Z", "2030-03-11T00:30:00Z"]
    assert all(o["site_count"] == 2 and o["status"] == "scheduled" for o in items)


def test_series_invites_every_site_under_a_unit(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    province: Unit,
    sites: dict[str, Site],
    occurrences: Occurrences,
) -> None:
    series = book(site_ids=[], unit_ids=[province.id])
    first = occurrences(series["id"])[0]
    detail = client.get(f"/api/v1/occurrences/{first['id']}", headers=secretariat).json()
    assert detail["site_ids"] == sorted(s.id for s in sites.values())


def test_series_skips_holidays_and_exdates(book: Book, occurrences: Occurrences) -> None:
    # Mondays from 26 Jan 2026: 16 Feb is Tết; 2 Mar is excluded by hand.
    series = book(
        dtstart="2026-01-26T07:30", rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=7", exdates=["2026-03-02"]
    )
    days = [o["start_at"][:10] for o in occurrences(series["id"])]
    assert days == ["2026-01-26", "2026-02-02", "2026-02-09", "2026-02-23", "2026-03-09"]


def test_series_overlap_is_refused_with_the_clashes(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    series_body: Callable[..., dict],
    sites: dict[str, Site],
) -> None:
    first = book()
    clash = series_body(
        title="Tập huấn",
        kind="tap_huan",
        dtstart="2030-03-11T08:00",
        rrule="FREQ=WEEKLY;COUNT=1",
        chair_site_id=sites["p2"].id,
        site_ids=[sites["p1"].id],
    )
    response = client.post("/api/v1/series", json=clash, headers=secretariat)
    assert response.status_code == 409
    body = response.json()
    assert body["conflict_count"] == 1
    conflict = body["conflicts"][0]
    assert conflict["site_id"] == sites["p1"].id
    assert conflict["site_name"] == "Hội trường UBND Phường Một"
    assert conflict["series_title"] == "Giao ban tuần" and conflict["series_id"] == first["id"]
    assert conflict["start_at"].startswith("2030-03-11T00:30")
    listed = client.get("/api/v1/series", headers=secretariat).json()
    assert listed["total"] == 1  # nothing of the refused series was written


def test_series_back_to_back_and_other_sites_are_fine(book: Book, sites: dict[str, Site]) -> None:
    book()
    book(title="Sau giao ban", dtstart="2030-03-04T09:00")  # starts when the first ends
    book(title="Cùng giờ, điểm cầu khác", chair_site_id=sites["p2"].id, site_ids=[sites["dept"].id])


def test_series_chair_counts_as_booked(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    series_body: Callable[..., dict],
    sites: dict[str, Site],
) -> None:
    book()
    other = series_body(chair_site_id=sites["p2"].id, site_ids=[sites["hq"].id])
    assert client.post("/api/v1/series", json=other, headers=secretariat).status_code == 409


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"rrule": "FREQ=SOMETIMES"}, "rrule"),
        ({"tz": "Mars/Olympus"}, "time zone"),
        ({"duration_min": 0}, "duration_min"),
        ({"duration_min": 24 * 60 + 1}, "duration_min"),
        ({"chair_site_id": 987654}, "unknown site"),
        ({"site_ids": [987654]}, "unknown site"),
        ({"unit_ids": [987654]}, "unknown unit"),
        ({"kind": "party"}, "kind"),
        ({"mode": "telepathy"}, "mode"),
        ({"exdates": ["yesterday"]}, "exdates"),
        ({"dtstart": "not a date"}, "dtstart"),
        ({"title": ""}, "title"),
        ({"colour": "red"}, "colour"),
        ({"rrule": "FREQ=DAILY;BYHOUR=7,8;COUNT=4", "duration_min": 90}, "once a day"),
        ({"rrule": "FREQ=WEEKLY;UNTIL=20000101"}, "never occurs"),
        ({"dtstart": "9999-12-31T07:30"}, "year"),
        ({"dtstart": "0001-01-01T07:30"}, "year"),
        ({"dtstart": 1900000000}, "ISO date"),
        ({"dtstart": "2030-03-04"}, "time of day"),
        ({"exdates": [12345]}, "ISO date"),
        ({"exdates": ["9999-01-01"]}, "year"),
    ],
)
def test_series_bad_input_is_422_with_a_reason(
    client: TestClient,
    secretariat: Headers,
    series_body: Callable[..., dict],
    changes: dict[str, Any],
    needle: str,
) -> None:
    response = client.post("/api/v1/series", json=series_body(**changes), headers=secretariat)
    assert response.status_code == 422, response.text
    assert needle in response.text
    assert client.get("/api/v1/series", headers=secretariat).json()["total"] == 0


@pytest.mark.parametrize(
    "rrule",
    [
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;BYSETPOS=-366",
        "FREQ=YEARLY;BYSETPOS=-366;BYMONTH=2",
        "FREQ=YEARLY;BYWEEKNO=53;BYMONTH=6",
        "FREQ=DAILY;INTERVAL=7;BYDAY=TU",
        "FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23",
        "FREQ=HOURLY",
    ],
)
def test_series_costly_rules_are_refused_quickly(
    client: TestClient,
    secretariat: Headers,
    series_body: Callable[..., dict],
    rrule: str,
) -> None:
    """Such rules took seconds (or booked thousands of meetings) before they were answered."""
    body = series_body(rrule=rrule, dtstart="2030-01-07T08:00:00")  # a Monday
    started = time.perf_counter()
    response = client.post("/api/v1/series", json=body, headers=secretariat)
    assert time.perf_counter() - started < 1.0  # a bound, not a benchmark
    assert response.status_code == 422, response.text
    assert (
        "never occurs" in response.text
        or "once a day" in response.text
        or "BYSETPOS" in (response.text)
    )
    changed = client.patch("/api/v1/series/1", json={"rrule": rrule}, headers=secretariat)
    assert changed.status_code in (404, 422)


def test_series_viewer_and_it_may_not_book(
    client: TestClient,
    make_user: Callable[..., Headers],
    series_body: Callable[..., dict],
    sites: dict[str, Site],
) -> None:
    for role in (Role.viewer, Role.it):
        response = client.post("/api/v1/series", json=series_body(), headers=make_user(role))
        assert response.status_code == 403


def test_series_in_person_meetings_are_recorded(book: Book, occurrences: Occurrences) -> None:
    series = book(mode="in_person", kind="so_ket", rrule="FREQ=MONTHLY;COUNT=3")
    assert series["mode"] == "in_person"
    assert {o["mode"] for o in occurrences(series["id"])} == {"in_person"}


def test_occurrence_move_checks_conflicts(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    occurrences: Occurrences,
) -> None:
    first = book()
    second = book(title="Họp chiều", dtstart="2030-03-04T14:00")
    morning = occurrences(first["id"])[0]
    afternoon = occurrences(second["id"])[0]
    clash = client.patch(
        f"/api/v1/occurrences/{morning['id']}",
        json={"start_at": "2030-03-04T14:30:00+07:00"},
        headers=secretariat,
    )
    assert clash.status_code == 409
    assert clash.json()["conflicts"][0]["occurrence_id"] == afternoon["id"]
    moved = client.patch(
        f"/api/v1/occurrences/{morning['id']}",
        json={"start_at": "2030-03-04T10:00:00+07:00"},
        headers=secretariat,
    )
    assert moved.status_code == 200
    assert moved.json()["moved"] is True
    assert moved.json()["end_at"] == "2030-03-04T04:30:00Z"
    # The old slot is free again.
    book(title="Vào chỗ trống", rrule="FREQ=WEEKLY;COUNT=1", duration_min=60)


def test_occurrence_move_onto_a_sibling_is_refused(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    occurrences: Occurrences,
) -> None:
    items = occurrences(book()["id"])
    response = client.patch(
        f"/api/v1/occurrences/{items[0]['id']}",
        json={"start_at": items[1]["start_at"]},
        headers=secretariat,
    )
    assert response.status_code == 409


def test_occurrence_cancel_frees_the_slot_and_restore_checks_again(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    occurrences: Occurrences,
) -> None:
    first = occurrences(book()["id"])[0]
    cancelled = client.patch(
        f"/api/v1/occurrences/{first['id']}", json={"status": "cancelled"}, headers=secretariat
    )
    assert cancelled.json()["status"] == "cancelled"
    book(title="Thay thế", rrule="FREQ=WEEKLY;COUNT=1")
    restore = client.patch(
        f"/api/v1/occurrences/{first['id']}", json={"status": "scheduled"}, headers=secretariat
    )
    assert restore.status_code == 409


def test_occurrence_bad_input(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    occurrences: Occurrences,
) -> None:
    first = occurrences(book()["id"])[0]
    path = f"/api/v1/occurrences/{first['id']}"
    naive = client.patch(path, json={"start_at": "2030-03-04T10:00:00"}, headers=secretariat)
    assert naive.status_code == 422
    far = client.patch(path, json={"start_at": "9999-12-31T23:00:00+07:00"}, headers=secretariat)
    assert far.status_code == 422
    assert client.patch(path, json={"status": "maybe"}, headers=secretariat).status_code == 422
    assert (
        client.patch(
            "/api/v1/occurrences/999999", json={"status": "cancelled"}, headers=secretariat
        ).status_code
        == 404
    )


def test_occurrences_window_and_site_filter(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    sites: dict[str, Site],
) -> None:
    book()
    book(title="Phường Hai", chair_site_id=sites["p2"].id, site_ids=[])
    march = client.get(
        "/api/v1/occurrences?from=2030-03-01&to=2030-03-31", headers=secretariat
    ).json()
    assert march["total"] == 8  # 4 Mondays × 2 series
    only_p2 = client.get(
        f"/api/v1/occurrences?from=2030-03-01&to=2030-03-31&site_id={sites['p2'].id}",
        headers=secretariat,
    ).json()
    assert {o["title"] for o in only_p2["items"]} == {"Phường Hai"}
    for query, code in [
        ("from=2030-04-01&to=2030-03-01", 422),
        ("from=someday", 422),
        ("site_id=999999", 404),
    ]:
        response = client.get(f"/api/v1/occurrences?{query}", headers=secretariat)
        assert response.status_code == code, query


def test_series_patch_replans_in_place(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    occurrences: Occurrences,
) -> None:
    series = book()
    before = occurrences(series["id"])
    response = client.patch(
        f"/api/v1/series/{series['id']}",
        json={"rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=4", "duration_min": 60, "title": "Giao ban"},
        headers=secretariat,
    )
    assert response.status_code == 200, response.text
    after = occurrences(series["id"])
    assert len(after) == 4 and response.json()["title"] == "Giao ban"
    # The same slots keep their occurrence ids (attendance will hang off them).
    assert [o["id"] for o in after] == [o["id"] for o in before[:4]]
    assert after[0]["end_at"] == "2030-03-04T01:30:00Z"


def test_series_patch_conflict_changes_nothing(
    client: TestClient,
    secretariat: Headers,
    book: Book,
    occurrences: Occurrences,
) -> None:
    series = book()
    book(title="Chiều", dtstart="2030-03-04T14:00")
    response = client.patch(
        f"/api/v1/series/{series['id']}",
        json={"dtstart": "2030-03-04T14:00"},
        headers=secretariat,
    )
    assert response.status_code == 409
    unchanged = client.get(f"/api/v1/series/{series['id']}", headers=secretariat).json()
    assert unchanged["dtstart"] == "2030-03-04T07:30:00"
    assert [o["start_at"][11:16] for o in occurrences(series["id"])] == ["00:30"] * 8


def test_series_patch_null_is_refused(client: TestClient, secretariat: Headers, book: Book) -> None:
    series = book()
    response = client.patch(
        f"/api/v1/series/{series['id']}", json={"title": None}, headers=secretariat
    )
    assert response.status_code == 422


def test_series_delete_future_only_removes_it(
    client: TestClient, secretariat: Headers, book: Book
) -> None:
    series = book()
    assert client.delete(f"/api/v1/series/{series['id']}", headers=secretariat).status_code == 204
    assert client.get(f"/api/v1/series/{series['id']}", headers=secretariat).status_code == 404
    book()  # the slots are free again


def test_series_delete_with_history_ends_it(
    client: TestClient, secretariat: Headers, book: Book, occurrences: Occurrences
) -> None:
    series = book(dtstart="2026-01-05T07:30", rrule="FREQ=WEEKLY;BYDAY=MO")
    assert client.delete(f"/api/v1/series/{series['id']}", headers=secretariat).status_code == 204
    ended = client.get(f"/api/v1/series/{series['id']}", headers=secretariat).json()
    assert ended["ended_at"] is not None
    kept = occurrences(series["id"])
    assert kept and all(o["start_at"] < ended["ended_at"] for o in kept)
    refused = client.patch(
        f"/api/v1/series/{series['id']}", json={"duration_min": 30}, headers=secretariat
    )
    assert refused.status_code == 409


def test_terminal_agenda_lists_its_sites_coming_meetings(
    client: TestClient,
    make_user: Callable[..., Headers],
    book: Book,
    sites: dict[str, Site],
    secretariat: Headers,
    occurrences: Occurrences,
) -> None:
    it = make_user(Role.it)
    series = book()
    book(
        title="Không mời p1", chair_site_id=sites["p2"].id, site_ids=[], dtstart="2030-03-05T08:00"
    )
    token = client.post(f"/api/v1/sites/{sites['p1'].id}/terminals", headers=it).json()["token"]
    first = occurrences(series["id"])[0]
    client.patch(
        f"/api/v1/occurrences/{first['id']}", json={"status": "cancelled"}, headers=secretariat
    )
    agenda = client.get("/api/v1/terminals/me/agenda", headers={"Authorization": f"Bearer {token}"})
    assert agenda.status_code == 200
    body = agenda.json()
    assert body["site_name"] == "Hội trường UBND Phường Một"
    assert [i["start_at"][:10] for i in body["items"]][:2] == ["2030-03-11", "2030-03-18"]
    assert {i["title"] for i in body["items"]} == {"Giao ban tuần"}
    assert all(i["is_chair"] is False for i in body["items"])
    assert client.get("/api/v1/terminals/me/agenda", headers=secretariat).status_code == 403
