"""Verified online ratio: a meeting booked online counts as held on the bridge only when its
chair site and at least one invited site had media flowing for half of it."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from confbridge.sites.models import Site, Unit
from confbridge_kernel.contracts import EventType
from tests.attendance.conftest import meeting, post_events, settings
from tests.support.events import event, local, media

__all__ = ["meeting", "post_events", "settings"]  # fixtures shared with the attendance tests

Headers = dict[str, str]
J, L = EventType.joined, EventType.left
RATIO = "/api/v1/reports/online-ratio"


def connect(
    occ: int, site_id: int, day: str, start: str, end: str, *, with_media: bool = True
) -> list[Any]:
    """A site's ingest peer connected from `start` to `end`, sending media or not."""
    begin, finish = local(f"{day} {start}"), local(f"{day} {end}")
    flowing = media(occ, site_id, begin, finish, every_min=1) if with_media else []
    return [event(occ, site_id, J, begin), *flowing, event(occ, site_id, L, finish)]


@pytest.fixture
def month(
    meeting: Callable[..., int], post_events: Callable[..., None], sites: dict[str, Site]
) -> dict[str, int]:
    """March 2025 in the small province, chaired by hq, p1 and p2 invited:

    - 3rd, briefing, online: no media event at all (nobody connected);
    - 4th, review, online: hq and p1 (31 of 60 minutes) with media, p2 connected without;
    - 5th, training, hybrid: hq with media, p1 only 20 minutes, p2 connected without;
    - 6th, briefing, online: only the chair had media;
    - 7th, review, in person.
    """
    hq, p1, p2 = sites["hq"].id, sites["p1"].id, sites["p2"].id
    ids = {
        "none": meeting("2025-03-03T08:00:00", 60),
        "verified": meeting("2025-03-04T08:00:00", 60, kind="so_ket"),
        "short": meeting("2025-03-05T08:00:00", 60, kind="tap_huan", mode="hybrid"),
        "chair_only": meeting("2025-03-06T08:00:00", 60),
        "in_person": meeting("2025-03-07T08:00:00", 60, kind="so_ket", mode="in_person"),
    }
    post_events(
        *connect(ids["verified"], hq, "2025-03-04", "07:55", "09:00"),
        *connect(ids["verified"], p1, "2025-03-04", "08:00", "08:31"),
        *connect(ids["verified"], p2, "2025-03-04", "08:00", "09:00", with_media=False),
        *connect(ids["short"], hq, "2025-03-05", "07:55", "09:00"),
        *connect(ids["short"], p1, "2025-03-05", "08:00", "08:20"),
        *connect(ids["short"], p2, "2025-03-05", "08:00", "09:00", with_media=False),
        *connect(ids["chair_only"], hq, "2025-03-06", "07:55", "09:00"),
    )
    return ids


def report(client: TestClient, headers: Headers, province: Unit, **params: str) -> Any:
    query = {"from": "2025-03-01", "to": "2025-03-31", "unit_id": str(province.id), **params}
    response = client.get(RATIO, params=query, headers=headers)
    assert response.status_code == 200, response.text
    return response


def test_verified_ratio_counts_only_meetings_held_on_the_bridge(
    client: TestClient, secretariat: Headers, province: Unit, month: dict[str, int]
) -> None:
    total = report(client, secretariat, province).json()["total"]
    assert (total["held"], total["online"], total["hybrid"], total["in_person"]) == (5, 3, 1, 1)
    assert total["ratio"] == pytest.approx(4 / 5)  # as booked
    assert (total["online_verified"], total["hybrid_verified"]) == (1, 0)
    assert total["ratio_verified"] == pytest.approx(1 / 5)
    # a commune is connected by media in a verified meeting: p1's ward, not p2's
    assert (total["communes"], total["communes_connected"]) == (2, 1)


def test_verified_targets_are_judged_on_verified_meetings(
    client: TestClient, secretariat: Headers, province: Unit, month: dict[str, int]
) -> None:
    """Booked, briefings would be 100 % online and meet their 30 %; held, they are 0 %."""
    total = report(client, secretariat, province).json()["total"]
    targets = {t["key"]: t for t in total["targets"]}
    briefings = targets["briefing_online_ratio"]
    assert (briefings["numerator"], briefings["denominator"], briefings["met"]) == (0, 2, False)
    reviews = targets["online_ratio"]
    assert (reviews["numerator"], reviews["denominator"]) == (1, 3)
    assert reviews["met"] is False
    communes = targets["communes_connected"]
    assert (communes["numerator"], communes["denominator"]) == (1, 2)


def test_verified_rows_by_kind(
    client: TestClient, secretariat: Headers, province: Unit, month: dict[str, int]
) -> None:
    rows = {
        r["group"]: r for r in report(client, secretariat, province, group_by="kind").json()["rows"]
    }
    assert (rows["giao_ban"]["online"], rows["giao_ban"]["online_verified"]) == (2, 0)
    assert (rows["so_ket"]["online"], rows["so_ket"]["online_verified"]) == (1, 1)
    assert (rows["tap_huan"]["hybrid"], rows["tap_huan"]["hybrid_verified"]) == (1, 0)


def test_verified_min_ratio_is_a_setting(
    client: TestClient,
    secretariat: Headers,
    province: Unit,
    month: dict[str, int],
    settings: Any,
) -> None:
    """At 30 %, p1's 20 minutes of the training are enough."""
    settings.reports.verified_min_ratio = 0.3
    total = report(client, secretariat, province).json()["total"]
    assert (total["online_verified"], total["hybrid_verified"]) == (1, 1)


def test_verified_attendance_of_a_bare_connection_is_absent(
    client: TestClient, secretariat: Headers, sites: dict[str, Site], month: dict[str, int]
) -> None:
    response = client.get(
        f"/api/v1/occurrences/{month['verified']}/attendance", headers=secretariat
    )
    records = {r["site_id"]: r for r in response.json()["records"]}
    p1, p2 = records[sites["p1"].id], records[sites["p2"].id]
    assert (p1["status"], p1["media_min"]) == ("partial", 31.0)
    assert (p2["status"], p2["connected_min"], p2["media_min"]) == ("absent", 60.0, 0.0)


def test_verified_columns_in_csv_and_xlsx(
    client: TestClient, secretariat: Headers, province: Unit, month: dict[str, int]
) -> None:
    workbook = load_workbook(
        io.BytesIO(report(client, secretariat, province, format="xlsx").content)
    )
    sheet = workbook["Tỷ lệ họp trực tuyến"]
    header = [c.value for c in sheet[1]]
    total = dict(zip(header, [c.value for c in sheet[sheet.max_row]], strict=True))
    assert total["Trực tuyến (theo lịch)"] == 3 and total["Kết hợp (theo lịch)"] == 1
    assert total["Trực tuyến (đã xác minh)"] == 1 and total["Kết hợp (đã xác minh)"] == 0
    assert total["Tỷ lệ trực tuyến (theo lịch)"] == pytest.approx(0.8)
    assert total["Tỷ lệ trực tuyến (đã xác minh)"] == pytest.approx(0.2)
    text = report(client, secretariat, province, format="csv").content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[-1]["Tỷ lệ trực tuyến (đã xác minh) (%)"] == "20.00"
    assert rows[-1]["Tỷ lệ trực tuyến (theo lịch) (%)"] == "80.00"
