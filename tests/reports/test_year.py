"""A realistic year of Quảng Ninh's meetings (see `year.py`), every figure checked by hand."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from confbridge.db import Database
from confbridge.main import create_app
from tests.reports.year import (
    BRIEFING_MIN,
    NODE_SECRET,
    REVIEW_MIN,
    TRAINING_MIN,
    Year,
    build_year,
)
from tests.support.database import empty_tables
from tests.support.factories import make_settings
from tests.support.untranslated import untranslated

# Online and hybrid occurrences held in 2025, each inviting the 55 sites of Quảng Ninh:
# 48 briefings, 6 online reviews, 2 hybrid trainings.
ONLINE_HELD = 48 + 6 + 2
SITES = 55
# (held, online, hybrid, in person) per month of 2025, from the calendar in year.py.
MONTHS = {
    "2025-01": (4, 4, 0, 0),  # briefings 6, 13, 20 Jan; online review 31 Jan
    "2025-02": (5, 4, 0, 1),  # 4 briefings; review in person
    "2025-03": (7, 6, 1, 0),  # 5 briefings; online review; hybrid training 10 Mar
    "2025-04": (4, 3, 0, 1),  # 7 Apr is a holiday
    "2025-05": (5, 5, 0, 0),
    "2025-06": (7, 5, 0, 2),  # review and training in person
    "2025-07": (4, 4, 0, 0),  # 28 Jul cancelled
    "2025-08": (5, 4, 0, 1),
    "2025-09": (6, 5, 1, 0),  # 1 Sep is a holiday; hybrid training 10 Sep
    "2025-10": (5, 4, 0, 1),
    "2025-11": (5, 5, 0, 0),
    "2025-12": (6, 5, 0, 1),
}


@pytest.fixture(scope="module")
def year_client(
    migrated_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    settings = make_settings(
        migrated_database.settings.database_url or "",
        tmp_path_factory.mktemp("year"),
        sfu={"node_secret": NODE_SECRET},
    )
    with TestClient(create_app(settings, database=migrated_database)) as client:
        yield client
    empty_tables(migrated_database)


@pytest.fixture(scope="module")
def year(migrated_database: Database, year_client: TestClient) -> Year:
    return build_year(migrated_database, year_client)


def get(client: TestClient, url: str, headers: dict[str, str], **params: Any) -> Any:
    response = client.get(url, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response


def targets(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["key"]: t for t in row["targets"]}


def test_year_events_went_through_the_worker_endpoint(year: Year) -> None:
    # 55 sites × 2 peers × (join + leave) per briefing, less absences, plus the extra events,
    # plus the media reports of every connection.
    briefings = 48 * SITES * 4 - (3 + 4) * 4 + 4 * 1 + 3
    reviews = 6 * SITES * 4 - 4
    trainings = 2 * SITES * 4
    media = year.extra["media_reports"]
    assert media > 48 * SITES * 3
    assert year.events_posted == briefings + reviews + trainings + media


def test_year_online_ratio_by_month(year: Year, year_client: TestClient) -> None:
    report = get(
        year_client,
        "/api/v1/reports/online-ratio",
        year.viewer,
        **{"from": "2025-01-01", "to": "2025-12-31", "unit_id": year.province_id},
    ).json()
    assert report["unit"]["name"] == "Quảng Ninh" and report["group_by"] == "month"
    rows = {row["group"]: row for row in report["rows"]}
    assert list(rows) == list(MONTHS)
    for month, (held, online, hybrid, in_person) in MONTHS.items():
        row = rows[month]
        assert (row["held"], row["online"], row["hybrid"], row["in_person"]) == (
            held,
            online,
            hybrid,
            in_person,
        ), month
        assert row["ratio"] == pytest.approx((online + hybrid) / held)
        # media flowed at every online meeting: all of them verified on the bridge
        assert (row["online_verified"], row["hybrid_verified"]) == (online, hybrid)
        assert row["ratio_verified"] == row["ratio"]
        assert targets(row)["briefing_online_ratio"]["met"] is True
    assert rows["2025-01"]["label"] == "Tháng 01/2025"
    # January: c0 took part in nothing online, so 53 of 54 communes were connected.
    january = targets(rows["2025-01"])
    assert (rows["2025-01"]["communes_connected"], rows["2025-01"]["communes"]) == (53, 54)
    assert january["communes_connected"]["actual"] == pytest.approx(53 / 54)
    assert january["communes_connected"]["met"] is False
    assert january["online_ratio"]["actual"] == 1.0 and january["online_ratio"]["met"] is True
    february = targets(rows["2025-02"])
    assert february["communes_connected"]["met"] is True
    assert (february["online_ratio"]["numerator"], february["online_ratio"]["denominator"]) == (
        0,
        1,
    )
    assert february["online_ratio"]["met"] is False
    march = targets(rows["2025-03"])
    assert (march["online_ratio"]["numerator"], march["online_ratio"]["denominator"]) == (2, 2)

    total = report["total"]
    assert (total["held"], total["online"], total["hybrid"], total["in_person"]) == (63, 54, 2, 7)
    assert total["ratio"] == pytest.approx(56 / 63)
    year_targets = targets(total)
    # Reviews and trainings: 6 online reviews + 2 hybrid trainings of 15 held.
    assert (
        year_targets["online_ratio"]["numerator"],
        year_targets["online_ratio"]["denominator"],
    ) == (8, 15)
    assert year_targets["online_ratio"]["actual"] == pytest.approx(8 / 15)
    assert year_targets["online_ratio"]["target"] == 0.8
    assert year_targets["online_ratio"]["met"] is False
    assert year_targets["briefing_online_ratio"]["actual"] == 1.0
    assert year_targets["briefing_online_ratio"]["met"] is True
    assert year_targets["communes_connected"]["actual"] == 1.0
    assert year_targets["communes_connected"]["met"] is True
    assert year_targets["communes_connected"]["label_vi"].startswith("Tỷ lệ xã")


def test_year_online_ratio_by_quarter_and_kind(year: Year, year_client: TestClient) -> None:
    period = {"from": "2025-01-01", "to": "2025-12-31", "unit_id": year.province_id}
    quarters = get(
        year_client, "/api/v1/reports/online-ratio", year.viewer, group_by="quarter", **period
    ).json()["rows"]
    assert [(q["group"], q["label"], q["held"]) for q in quarters] == [
        ("2025-Q1", "Quý I/2025", 16),
        ("2025-Q2", "Quý II/2025", 16),
        ("2025-Q3", "Quý III/2025", 15),
        ("2025-Q4", "Quý IV/2025", 16),
    ]
    assert (quarters[0]["online"], quarters[0]["hybrid"], quarters[0]["in_person"]) == (14, 1, 1)
    kinds = get(
        year_client, "/api/v1/reports/online-ratio", year.viewer, group_by="kind", **period
    ).json()["rows"]
    by_kind = {k["group"]: k for k in kinds}
    assert (by_kind["giao_ban"]["held"], by_kind["giao_ban"]["online"]) == (48, 48)
    assert (by_kind["so_ket"]["held"], by_kind["so_ket"]["online"]) == (12, 6)
    assert (by_kind["tap_huan"]["held"], by_kind["tap_huan"]["hybrid"]) == (3, 2)
    assert by_kind["tong_ket"]["held"] == 0 and by_kind["tong_ket"]["ratio"] is None
    assert by_kind["giao_ban"]["label"] == "Giao ban"


def test_year_online_ratio_country_by_unit(year: Year, year_client: TestClient) -> None:
    """The other province's 4 in-person briefings count for the country, not for Quảng Ninh."""
    report = get(
        year_client,
        "/api/v1/reports/online-ratio",
        year.viewer,
        **{"from": "2025-01-01", "to": "2025-12-31", "group_by": "unit"},
    ).json()
    assert report["unit"] is None
    rows = {row["label"]: row for row in report["rows"]}
    assert set(rows) == {"Quảng Ninh", "Tỉnh Khác"}
    assert (rows["Quảng Ninh"]["held"], rows["Tỉnh Khác"]["held"]) == (63, 4)
    assert rows["Tỉnh Khác"]["online"] == 0 and rows["Tỉnh Khác"]["ratio"] == 0.0
    assert (rows["Tỉnh Khác"]["communes_connected"], rows["Tỉnh Khác"]["communes"]) == (0, 1)
    total = report["total"]
    assert (total["held"], total["communes_connected"], total["communes"]) == (67, 54, 55)
    briefing = targets(total)["briefing_online_ratio"]
    assert (briefing["numerator"], briefing["denominator"]) == (48, 52)
    assert targets(total)["communes_connected"]["met"] is False


def test_year_attendance_report(year: Year, year_client: TestClient) -> None:
    report = get(
        year_client,
        "/api/v1/reports/attendance",
        year.viewer,
        **{"from": "2025-01-01", "to": "2025-12-31", "unit_id": year.province_id},
    ).json()
    assert report["occurrences"] == ONLINE_HELD
    rows = {row["site_id"]: row for row in report["rows"]}
    assert len(rows) == SITES
    assert all(row["invited"] == ONLINE_HELD for row in rows.values())
    full_min = 48 * BRIEFING_MIN + 6 * REVIEW_MIN + 2 * TRAINING_MIN
    chair = rows[year.chair_site_id]
    assert (chair["present"], chair["absent"], chair["rate"]) == (56, 0, 1.0)
    assert chair["connected_min"] == full_min
    c1 = rows[year.c(1)]
    assert (c1["present"], c1["partial"], c1["absent"]) == (52, 0, 4)
    assert c1["rate"] == pytest.approx(52 / 56)
    assert c1["connected_min"] == full_min - 4 * BRIEFING_MIN
    c2 = rows[year.c(2)]
    assert (c2["present"], c2["partial"], c2["absent"], c2["joined_late"]) == (51, 5, 0, 5)
    assert c2["connected_min"] == full_min - 5 * 20
    c3 = rows[year.c(3)]
    assert (c3["present"], c3["joined_late"], c3["left_early"]) == (56, 48, 0)
    assert c3["connected_min"] == full_min - 48 * 10
    assert rows[year.c(4)]["present"] == 56
    assert rows[year.c(4)]["connected_min"] == full_min - 5
    c5 = rows[year.c(5)]
    assert (c5["present"], c5["partial"], c5["left_early"]) == (55, 1, 1)
    assert rows[year.c(6)]["present"] == 56 and rows[year.c(6)]["connected_min"] == full_min
    # c0 is checked after its correction, in test_year_correction_changes_the_rate.
    others = [r for sid, r in rows.items() if sid not in {year.c(i) for i in range(6)}]
    assert all((r["present"], r["absent"]) == (56, 0) for r in others)
    assert (report["invited"], report["absent"], report["partial"]) == (SITES * 56, 3 + 1 + 4, 6)


def test_year_occurrence_attendance_details(year: Year, year_client: TestClient) -> None:
    def record(occurrence_index: int, site_id: int) -> dict[str, Any]:
        occurrence = year.briefings[occurrence_index]
        body = get(
            year_client, f"/api/v1/occurrences/{occurrence.id}/attendance", year.viewer
        ).json()
        assert body["ended"] is True and body["summary"]["invited"] == SITES
        return next(r for r in body["records"] if r["site_id"] == site_id)

    first = get(
        year_client, f"/api/v1/occurrences/{year.briefings[0].id}/attendance", year.viewer
    ).json()
    assert first["local_date"] == "2025-01-06" and first["duration_min"] == BRIEFING_MIN
    assert first["records"][0]["is_chair"] is True
    assert first["records"][0]["site_id"] == year.chair_site_id
    assert first["summary"]["absent"] == 1 and first["summary"]["joined_late"] == 1
    c0 = next(r for r in first["records"] if r["site_id"] == year.c(0))
    assert (c0["computed_status"], c0["first_join_at"], c0["connected_min"]) == ("absent", None, 0)
    c7 = next(r for r in first["records"] if r["site_id"] == year.c(7))
    assert (c7["rtt_median_ms"], c7["loss_max"]) == (60.0, 0.05)
    assert c7["status"] == "present" and c7["last_leave_reason"] == "meeting_ended"

    late = record(4, year.c(2))
    assert (late["status"], late["joined_late"], late["connected_min"]) == ("partial", True, 70)
    assert late["connected_ratio"] == pytest.approx(70 / 90, abs=1e-4)
    assert late["first_join_at"] == "2025-02-10T01:20:00Z"
    dropped = record(10, year.c(4))
    assert (dropped["status"], dropped["reconnects"], dropped["connected_min"]) == (
        "present",
        1,
        85,
    )
    assert dropped["left_early"] is False
    early = record(11, year.c(5))
    assert (early["status"], early["left_early"], early["connected_min"]) == ("partial", True, 60)
    assert early["last_leave_reason"] == "deleted"
    one_peer = record(12, year.c(6))
    assert (one_peer["status"], one_peer["reconnects"], one_peer["connected_min"]) == (
        "present",
        0,
        90,
    )


def test_year_cancelled_occurrence_does_not_count(year: Year, year_client: TestClient) -> None:
    july = get(
        year_client,
        "/api/v1/reports/online-ratio",
        year.viewer,
        **{"from": "2025-07-28", "to": "2025-07-28", "unit_id": year.province_id},
    ).json()
    assert july["total"]["held"] == 0 and july["total"]["ratio"] is None
    assert targets(july["total"])["briefing_online_ratio"]["met"] is None


def test_year_correction_changes_the_rate(year: Year, year_client: TestClient) -> None:
    occurrence = year.briefings[0]
    url = f"/api/v1/occurrences/{occurrence.id}/attendance/{year.c(0)}/corrections"
    body = {"status": "present", "reason": "Tham dự qua điện thoại do mất mạng"}
    assert year_client.post(url, json=body, headers=year.viewer).status_code == 403
    response = year_client.post(url, json=body, headers=year.secretariat)
    assert response.status_code == 201, response.text
    corrected = response.json()
    assert (corrected["status"], corrected["computed_status"]) == ("present", "absent")
    assert corrected["correction"]["created_by"] == "user:vanphong"
    history = get(year_client, url, year.viewer).json()
    assert [c["reason"] for c in history] == [body["reason"]]

    report = get(
        year_client,
        "/api/v1/reports/attendance",
        year.viewer,
        **{"from": "2025-01-01", "to": "2025-12-31", "unit_id": year.province_id},
    ).json()
    c0 = next(r for r in report["rows"] if r["site_id"] == year.c(0))
    # Absent from 3 briefings and 1 review; one absence corrected to present.
    assert (c0["present"], c0["absent"], c0["corrected"]) == (53, 3, 1)
    assert c0["rate"] == pytest.approx(53 / 56)
    assert (report["present"], report["absent"]) == (SITES * 56 - 7 - 6, 7)
    assert report["rate"] == pytest.approx((SITES * 56 - 13) / (SITES * 56))
    # A phone call is not the video bridge: January still has 53 of 54 communes connected.
    january = get(
        year_client,
        "/api/v1/reports/online-ratio",
        year.viewer,
        **{"from": "2025-01-01", "to": "2025-01-31", "unit_id": year.province_id},
    ).json()
    assert january["total"]["communes_connected"] == 53


def test_year_attendance_xlsx_reads_back(
    year: Year, year_client: TestClient, tmp_path: Path
) -> None:
    response = get(
        year_client,
        "/api/v1/reports/attendance",
        year.viewer,
        **{
            "from": "2025-01-01",
            "to": "2025-12-31",
            "unit_id": year.province_id,
            "format": "xlsx",
        },
    )
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "tham-du_2025-01-01_2025-12-31.xlsx" in response.headers["content-disposition"]
    path = tmp_path / "report.xlsx"
    path.write_bytes(response.content)
    workbook = load_workbook(path)
    sheet = workbook["Tỷ lệ tham dự"]
    header = [cell.value for cell in sheet[1]]
    assert header[:4] == ["Điểm cầu", "Đơn vị", "Số cuộc họp được mời", "Có mặt"]
    assert header[-1] == "Tỷ lệ có mặt"
    assert sheet.max_row == 1 + SITES
    by_site = {row[0].value: row for row in sheet.iter_rows(min_row=2)}
    c1_name = year.communes[1].name
    c1 = by_site[c1_name]
    assert (c1[2].value, c1[3].value, c1[5].value) == (56, 52, 4)
    assert c1[-1].value == pytest.approx(52 / 56) and c1[-1].number_format == "0.0%"
    cover = {row[0].value: row[1] for row in workbook["Thông tin"].iter_rows()}
    assert cover["Từ ngày"].value == datetime(2025, 1, 1)
    assert cover["Từ ngày"].number_format == "dd/mm/yyyy"
    assert cover["Đơn vị"].value == "Quảng Ninh"


def test_year_online_ratio_xlsx_and_csv(
    year: Year, year_client: TestClient, tmp_path: Path
) -> None:
    params = {"from": "2025-01-01", "to": "2025-12-31", "unit_id": year.province_id}
    xlsx = get(
        year_client, "/api/v1/reports/online-ratio", year.viewer, format="xlsx", **params
    ).content
    (tmp_path / "ratio.xlsx").write_bytes(xlsx)
    workbook = load_workbook(tmp_path / "ratio.xlsx")
    sheet = workbook["Tỷ lệ họp trực tuyến"]
    header = [cell.value for cell in sheet[1]]
    assert header[:9] == [
        "Tháng",
        "Số cuộc họp đã tổ chức",
        "Trực tuyến (theo lịch)",
        "Kết hợp (theo lịch)",
        "Trực tiếp",
        "Tỷ lệ trực tuyến (theo lịch)",
        "Trực tuyến (đã xác minh)",
        "Kết hợp (đã xác minh)",
        "Tỷ lệ trực tuyến (đã xác minh)",
    ]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 12 + 1 and rows[-1][0] == "Tổng cộng"
    assert rows[0][:8] == ("Tháng 01/2025", 4, 4, 0, 0, 1, 4, 0)
    assert rows[-1][5] == rows[-1][8] == pytest.approx(56 / 63)  # every one held on the bridge
    assert sheet.cell(2, 6).number_format == sheet.cell(2, 9).number_format == "0.0%"
    goals = list(workbook["Chỉ tiêu"].iter_rows(min_row=2, values_only=True))
    by_label = {row[0]: row for row in goals}
    review = by_label["Tỷ lệ cuộc họp sơ kết, tổng kết, tập huấn trực tuyến"]
    assert review[1] == "Sơ kết, Tổng kết, Tập huấn"  # the kinds' names, not their codes
    assert review[2:] == (8, 15, pytest.approx(8 / 15), 0.8, "Chưa đạt")  # the page's word
    assert by_label["Tỷ lệ cuộc họp giao ban trực tuyến"][-1] == "Đạt"
    assert "Target (English)" not in [cell.value for cell in workbook["Chỉ tiêu"][1]]

    text = get(
        year_client, "/api/v1/reports/online-ratio", year.viewer, format="csv", **params
    ).content.decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0][:2] == ["Tháng", "Số cuộc họp đã tổ chức"]
    assert lines[0][5] == "Tỷ lệ trực tuyến (theo lịch) (%)"
    assert lines[0][8] == "Tỷ lệ trực tuyến (đã xác minh) (%)"
    assert lines[1][:6] == ["Tháng 01/2025", "4", "4", "0", "0", "100.00"]
    assert lines[-1][0] == "Tổng cộng" and lines[-1][5] == f"{56 / 63 * 100:.2f}"


def test_year_occurrence_attendance_xlsx_has_local_times(
    year: Year, year_client: TestClient, tmp_path: Path
) -> None:
    occurrence = year.briefings[4]
    content = get(
        year_client,
        f"/api/v1/occurrences/{occurrence.id}/attendance",
        year.viewer,
        format="xlsx",
    ).content
    (tmp_path / "occ.xlsx").write_bytes(content)
    sheet = load_workbook(tmp_path / "occ.xlsx")["Điểm danh"]
    rows = {row[0]: row for row in sheet.iter_rows(min_row=2, values_only=True)}
    late = rows[year.communes[2].name]
    assert late[3] == "Tham dự một phần" and late[5] == 70
    assert late[7] == 70  # minutes with media: the same span
    assert late[9] == datetime(2025, 2, 10, 8, 20)  # local wall clock, a real date cell
    assert occurrence.day == date(2025, 2, 10)


def test_year_attendance_files_name_leave_reasons_in_vietnamese(
    year: Year, year_client: TestClient, tmp_path: Path
) -> None:
    occurrence = year.briefings[11]  # commune 5 hung up early ("deleted")
    content = get(
        year_client,
        f"/api/v1/occurrences/{occurrence.id}/attendance",
        year.viewer,
        format="xlsx",
    ).content
    (tmp_path / "occ.xlsx").write_bytes(content)
    sheet = load_workbook(tmp_path / "occ.xlsx")["Điểm danh"]
    assert sheet.cell(1, 12).value == "Lý do rời"
    rows = {row[0]: row for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows[year.communes[5].name][11] == "Điểm cầu rời cuộc họp"
    reasons = {row[11] for row in rows.values()} - {None}
    assert reasons and not reasons & {"deleted", "meeting_ended", "connection closed"}
    text = get(
        year_client,
        f"/api/v1/occurrences/{occurrence.id}/attendance",
        year.viewer,
        format="csv",
    ).content.decode("utf-8-sig")
    assert "Điểm cầu rời cuộc họp" in text and "deleted" not in text


def _file_text(content: bytes, fmt: str, tmp_path: Path) -> str:
    """Every cell of a downloaded file, as text."""
    if fmt == "csv":
        return content.decode("utf-8-sig")
    path = tmp_path / "file.xlsx"
    path.write_bytes(content)
    workbook = load_workbook(path)
    return " ".join(
        f"{sheet.title} "
        + " ".join(str(v) for row in sheet.iter_rows(values_only=True) for v in row)
        for sheet in workbook.worksheets
    )


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_year_files_carry_no_english_and_no_raw_code(
    year: Year, year_client: TestClient, tmp_path: Path, fmt: str
) -> None:
    """The year's reports and an occurrence with leaves of every kind, as files: Vietnamese
    words only (kinds by name, reasons in words, 'Chưa đạt' as on the page)."""
    period = {"from": "2025-01-01", "to": "2025-12-31", "unit_id": year.province_id}
    files = {
        "online ratio": get(
            year_client, "/api/v1/reports/online-ratio", year.viewer, format=fmt, **period
        ),
        "attendance": get(
            year_client, "/api/v1/reports/attendance", year.viewer, format=fmt, **period
        ),
        "occurrence": get(
            year_client,
            f"/api/v1/occurrences/{year.briefings[11].id}/attendance",
            year.viewer,
            format=fmt,
        ),
    }
    for name, response in files.items():
        text = _file_text(response.content, fmt, tmp_path)
        assert len(text) > 200, name
        assert untranslated(text) == [], name
