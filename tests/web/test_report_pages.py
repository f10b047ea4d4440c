"""Report pages: the online ratio against targets, attendance, and their downloads."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.auth.models import Role
from confbridge.bridge import events as event_service
from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Series
from confbridge.settings import Settings
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import PeerStats, SfuEvent

# The last 30 days, whatever today is (the default period starts on 1 January).
PERIOD = f"from_date={date.today() - timedelta(days=30)}&to_date={date.today()}"


@pytest.fixture
def held(session: Session, settings: Settings, communes: dict[str, int]) -> Series:
    """A briefing held online three days ago: one commune stayed, one came late, one absent."""
    start = (utcnow() - timedelta(days=3)).replace(hour=1, minute=0, second=0, microsecond=0)
    series = meeting_service.create(
        session=session,
        series_in={
            "title": "Giao ban tuần", "kind": "giao_ban", "mode": "online",
            "rrule": "FREQ=DAILY;COUNT=1", "dtstart": start.isoformat(),
            "duration_min": 60, "chair_site_id": communes["hq"],
            "site_ids": [communes["c0"], communes["c1"], communes["c2"]], "skip_holidays": False,
        },
        settings=settings.meetings, now=start - timedelta(days=1),
    )  # fmt: skip
    occurrence = series.occurrences[0]

    def event(type_: str, site: str, minutes: int, peer: str) -> SfuEvent:
        return SfuEvent(
            id=uuid.uuid4().hex, type=type_, at=occurrence.start_at + timedelta(minutes=minutes),
            node_id="n", room=f"occ-{occurrence.id}", occurrence_id=occurrence.id,
            site_id=communes[site], peer_id=peer, direction="ingest",
            detail={"reason": "deleted"} if type_ == "left" else {},
        )  # fmt: skip

    def media(site: str, start: int, peer: str) -> list[SfuEvent]:
        """Rising packets every ten minutes from `start` to the end: media flowing."""
        reports = []
        for number, minutes in enumerate(range(start + 10, 70, 10), start=1):
            report = event("stats", site, min(minutes, 59), peer)
            report.stats = PeerStats(packets=number * 500, interval_s=600)
            reports.append(report)
        return reports

    event_service.store_events(
        session=session,
        events=[
            event("joined", "hq", 0, "a"), *media("hq", 0, "a"), event("left", "hq", 60, "a"),
            event("joined", "c0", 0, "b"), *media("c0", 0, "b"), event("left", "c0", 60, "b"),
            event("joined", "c1", 30, "c"), *media("c1", 30, "c"), event("left", "c1", 60, "c"),
        ],
    )  # fmt: skip
    session.commit()
    return series


def test_report_online_ratio_page_shows_targets_chart_and_table(
    web: Callable[..., TestClient], held: Series
) -> None:
    client = web(Role.viewer)
    page = client.get(f"/reports?{PERIOD}")
    assert page.status_code == 200
    assert "Tỷ lệ cuộc họp giao ban trực tuyến" in page.text  # a target's Vietnamese label
    assert page.text.count('<svg class="chart"') == 3
    assert 'role="img"' in page.text
    assert "100%" in page.text
    assert "Đã xác minh trên hệ thống" in page.text  # verified beside booked
    by_kind = client.get(f"/reports?group_by=kind&{PERIOD}")
    assert '<th scope="row">Giao ban</th>' in by_kind.text
    client.get("/language/en")
    english = client.get(f"/reports?group_by=quarter&{PERIOD}")
    assert "Briefings held online" in english.text
    assert "Online-meeting ratio" in english.text


@pytest.mark.parametrize(
    "query",
    ["from_date=2026-13-01", "from_date=2027-01-01&to_date=2026-01-01", "group_by=year",
     "unit_id=abc", "unit_id=424242", "from_date=2000-01-01&to_date=2010-01-01"],
)  # fmt: skip
def test_report_bad_filters_show_a_message(web: Callable[..., TestClient], query: str) -> None:
    client = web(Role.viewer)
    response = client.get(f"/reports?{query}")
    assert response.status_code == 422
    assert "Không lập được báo cáo" in response.text
    assert client.get(f"/reports/attendance?{query}").status_code in (200, 422)


def test_report_downloads_csv_and_xlsx(web: Callable[..., TestClient], held: Series) -> None:
    client = web(Role.viewer)
    csv = client.get(f"/reports/online-ratio.csv?group_by=kind&{PERIOD}")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    # made for Excel in a Vietnamese locale: ';' between cells, a decimal comma
    header = csv.content.decode("utf-8-sig").splitlines()[0]
    assert header.startswith("Loại cuộc họp;Số cuộc họp đã tổ chức;")
    xlsx = client.get(f"/reports/attendance.xlsx?{PERIOD}")
    assert xlsx.status_code == 200
    assert xlsx.content[:2] == b"PK"  # a zip container
    assert client.get("/reports/attendance.pdf").status_code == 404


def test_report_attendance_per_site_and_per_meeting(
    web: Callable[..., TestClient], held: Series, communes: dict[str, int]
) -> None:
    client = web(Role.viewer)
    report = client.get(f"/reports/attendance?{PERIOD}")
    assert report.status_code == 200
    assert "Hội trường UBND Xã Tân Hòa" in report.text
    assert "<meter" in report.text
    occurrence_id = held.occurrences[0].id
    page = client.get(f"/occurrences/{occurrence_id}")
    assert "Điểm danh" in page.text
    assert "Có mặt: <strong>2</strong>" in page.text  # the chair and one commune
    assert "Tham dự một phần: <strong>1</strong>" in page.text
    assert "Vắng mặt: <strong>1</strong>" in page.text
    sheet = client.get(f"/occurrences/{occurrence_id}/attendance.csv")
    assert sheet.status_code == 200
    assert "Hội trường UBND Xã An Bình" in sheet.content.decode("utf-8-sig")
    assert sheet.content.decode("utf-8-sig").splitlines()[0].count(";") >= 3
    assert client.get("/occurrences/424242/attendance.csv").status_code == 404


def test_report_pages_need_a_signed_in_user(client: TestClient) -> None:
    for path in ("/reports", "/reports/attendance", "/reports/online-ratio.csv"):
        assert client.get(path, follow_redirects=False).status_code == 303
