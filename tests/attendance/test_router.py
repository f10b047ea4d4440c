"""Attendance of one occurrence and its corrections over HTTP, from events a worker posts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from confbridge.attendance.models import Attendance, AttendancePending, AttendanceRun
from confbridge.auth.models import AuditEntry, Role
from confbridge.db import Database
from confbridge.sites.models import Site
from confbridge_kernel.contracts import EventType
from tests.support.events import TZ, event, local, media

Headers = dict[str, str]
J, L, S = EventType.joined, EventType.left, EventType.stats


def attendance(client: TestClient, occurrence_id: int, headers: Headers) -> dict:
    response = client.get(f"/api/v1/occurrences/{occurrence_id}/attendance", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def by_site(body: dict) -> dict[int, dict]:
    return {r["site_id"]: r for r in body["records"]}


def count(database: Database, model: type) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_attendance_of_an_ended_meeting(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    meeting: Callable[..., int],
    post_events: Callable[..., None],
    database: Database,
) -> None:
    occ = meeting("2025-03-03T08:00:00", 60)
    hq, p1 = sites["hq"].id, sites["p1"].id
    post_events(
        event(occ, hq, J, local("2025-03-03 07:50")),
        event(occ, hq, J, local("2025-03-03 07:50"), "e"),
        event(occ, hq, S, local("2025-03-03 08:10"), rtt_ms=35.0, loss_ratio=0.02),
        *media(occ, hq, local("2025-03-03 07:50"), local("2025-03-03 09:01")),
        event(occ, hq, L, local("2025-03-03 09:01"), reason="meeting_ended"),
        event(occ, hq, L, local("2025-03-03 09:01"), "e", reason="meeting_ended"),
        event(occ, p1, J, local("2025-03-03 08:30")),
        *media(occ, p1, local("2025-03-03 08:30"), local("2025-03-03 08:45")),
        event(occ, p1, L, local("2025-03-03 08:45"), reason="connection failed"),
    )
    body = attendance(client, occ, secretariat)
    assert body["ended"] is True and body["local_date"] == "2025-03-03"
    assert body["summary"] == {
        "invited": 3,
        "present": 1,
        "partial": 1,
        "absent": 1,
        "joined_late": 1,
        "left_early": 1,
        "corrected": 0,
        "guests": 0,
    }
    records = by_site(body)
    assert body["records"][0]["site_id"] == hq and records[hq]["is_chair"] is True
    assert records[hq]["status"] == "present" and records[hq]["rtt_median_ms"] == 35.0
    assert records[p1]["status"] == "partial" and records[p1]["connected_min"] == 15
    assert records[p1]["last_leave_reason"] == "connection failed"
    assert records[p1]["last_leave_at"] == "2025-03-03T01:45:00Z"
    assert records[sites["p2"].id]["status"] == "absent"
    # Computed once and kept.
    assert count(database, Attendance) == 3 and count(database, AttendanceRun) == 1


def test_attendance_late_events_are_folded_in(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    meeting: Callable[..., int],
    post_events: Callable[..., None],
    database: Database,
) -> None:
    """A worker's spool delivering after the figures were computed still counts."""
    occ = meeting("2025-03-03T08:00:00", 60)
    p2 = sites["p2"].id
    assert by_site(attendance(client, occ, secretariat))[p2]["status"] == "absent"
    assert count(database, AttendancePending) == 0
    post_events(
        event(occ, p2, J, local("2025-03-03 07:59")),
        *media(occ, p2, local("2025-03-03 07:59"), local("2025-03-03 09:00")),
        event(occ, p2, L, local("2025-03-03 09:00")),
    )
    assert count(database, AttendancePending) == 1  # marked by the database on insert
    record = by_site(attendance(client, occ, secretariat))[p2]
    assert (record["status"], record["connected_min"]) == ("present", 60)
    assert count(database, AttendancePending) == 0


def test_attendance_moved_meeting_is_computed_again(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    meeting: Callable[..., int],
    post_events: Callable[..., None],
) -> None:
    occ = meeting("2025-03-03T08:00:00", 60)
    p1 = sites["p1"].id
    post_events(
        event(occ, p1, J, local("2025-03-03 08:30")),
        *media(occ, p1, local("2025-03-03 08:30"), local("2025-03-03 09:30")),
        event(occ, p1, L, local("2025-03-03 09:30")),
    )
    assert by_site(attendance(client, occ, secretariat))[p1]["status"] == "partial"
    moved = client.patch(
        f"/api/v1/occurrences/{occ}",
        json={
            "start_at": "2025-03-03T08:30:00+07:00",
            "record_past": True,
            "confirm": True,
            "reason": "giờ họp thực tế",
        },
        headers=secretariat,
    )
    assert moved.status_code == 200, moved.text
    record = by_site(attendance(client, occ, secretariat))[p1]
    assert (record["status"], record["joined_late"], record["connected_min"]) == (
        "present",
        False,
        60,
    )


def test_attendance_running_meeting_shows_figures_so_far(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    meeting: Callable[..., int],
    post_events: Callable[..., None],
    database: Database,
) -> None:
    started = (datetime.now(UTC) - timedelta(minutes=20)).astimezone(TZ).replace(second=0)
    occ = meeting(started.strftime("%Y-%m-%dT%H:%M:00"), 120)
    post_events(
        event(occ, sites["p1"].id, J, started),
        *media(occ, sites["p1"].id, started, datetime.now(UTC)),
    )
    body = attendance(client, occ, secretariat)
    assert body["ended"] is False
    record = by_site(body)[sites["p1"].id]
    assert record["status"] == "partial" and record["last_leave_at"] is None
    assert 19 <= record["connected_min"] <= 22
    assert count(database, Attendance) == 0  # nothing stored before the end
    correction = client.post(
        f"/api/v1/occurrences/{occ}/attendance/{sites['p2'].id}/corrections",
        json={"status": "present", "reason": "đã có mặt tại hội trường"},
        headers=secretariat,
    )
    assert correction.status_code == 409 and "not ended" in correction.json()["detail"]


def test_attendance_uninvited_site_events_are_ignored(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    meeting: Callable[..., int],
    post_events: Callable[..., None],
) -> None:
    occ = meeting("2025-03-03T08:00:00", 60)
    post_events(event(occ, sites["dept"].id, J, local("2025-03-03 08:00")))
    body = attendance(client, occ, secretariat)
    assert sites["dept"].id not in by_site(body) and body["summary"]["invited"] == 3


def test_attendance_correction_is_kept_beside_the_original(
    client: TestClient,
    secretariat: Headers,
    make_user: Callable[..., Headers],
    sites: dict[str, Site],
    meeting: Callable[..., int],
    session: Session,
) -> None:
    occ = meeting("2025-03-03T08:00:00", 60)
    p2 = sites["p2"].id
    url = f"/api/v1/occurrences/{occ}/attendance/{p2}/corrections"
    first = client.post(
        url,
        json={"status": "present", "reason": "Hội trường tham dự qua điện thoại"},
        headers=secretariat,
    )
    assert first.status_code == 201, first.text
    assert (first.json()["status"], first.json()["computed_status"]) == ("present", "absent")
    second = client.post(
        url, json={"status": "partial", "reason": "Chỉ nghe được nửa đầu"}, headers=secretariat
    )
    assert second.status_code == 201
    body = attendance(client, occ, make_user(Role.viewer))
    record = by_site(body)[p2]
    assert (record["status"], record["computed_status"]) == ("partial", "absent")
    assert record["correction"]["reason"] == "Chỉ nghe được nửa đầu"
    assert body["summary"]["corrected"] == 1 and body["summary"]["partial"] == 1
    history = client.get(url, headers=secretariat).json()
    assert [c["status"] for c in history] == ["present", "partial"]
    stored = session.get(Attendance, (occ, p2))
    assert stored is not None and (stored.status, stored.corrected_status) == ("absent", "partial")
    audited = select(func.count()).where(AuditEntry.action == "attendance_corrected")
    assert session.scalar(audited) == 2


def test_attendance_correction_bad_input(
    client: TestClient,
    secretariat: Headers,
    make_user: Callable[..., Headers],
    sites: dict[str, Site],
    meeting: Callable[..., int],
) -> None:
    occ = meeting("2025-03-03T08:00:00", 60)
    body = {"status": "present", "reason": "qua điện thoại"}
    dept = f"/api/v1/occurrences/{occ}/attendance/{sites['dept'].id}/corrections"
    not_invited = client.post(dept, json=body, headers=secretariat)
    assert not_invited.status_code == 422 and "not invited" in not_invited.json()["detail"]
    p1 = f"/api/v1/occurrences/{occ}/attendance/{sites['p1'].id}/corrections"
    assert (
        client.post(p1, json={"status": "here", "reason": "x" * 5}, headers=secretariat).status_code
        == 422
    )
    assert client.post(p1, json={"status": "present"}, headers=secretariat).status_code == 422
    blank = client.post(p1, json={"status": "present", "reason": "    "}, headers=secretariat)
    assert blank.status_code == 422 and "reason" in blank.json()["detail"]
    viewer = make_user(Role.viewer)
    assert client.post(p1, json=body, headers=viewer).status_code == 403
    unknown = "/api/v1/occurrences/999999/attendance/1/corrections"
    assert client.post(unknown, json=body, headers=secretariat).status_code == 404
    cancelled = client.patch(
        f"/api/v1/occurrences/{occ}", json={"status": "cancelled"}, headers=secretariat
    )
    assert cancelled.status_code == 200
    refused = client.post(p1, json=body, headers=secretariat)
    assert refused.status_code == 409 and "cancelled" in refused.json()["detail"]


def test_attendance_unknown_occurrence_and_bad_format(
    client: TestClient, secretariat: Headers, meeting: Callable[..., int]
) -> None:
    missing = client.get("/api/v1/occurrences/999999/attendance", headers=secretariat)
    assert missing.status_code == 404
    occ = meeting("2025-03-03T08:00:00", 60)
    bad = client.get(f"/api/v1/occurrences/{occ}/attendance?format=pdf", headers=secretariat)
    assert bad.status_code == 422
    assert bad.json()["detail"] == "format: unknown value 'pdf' (one of json, csv, xlsx)"
    assert client.get(f"/api/v1/occurrences/{occ}/attendance").status_code == 401


def test_attendance_csv_has_vietnamese_headers_and_local_times(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    meeting: Callable[..., int],
    post_events: Callable[..., None],
) -> None:
    occ = meeting("2025-03-03T08:00:00", 60)
    post_events(
        event(occ, sites["p1"].id, J, local("2025-03-03 08:20")),
        *media(occ, sites["p1"].id, local("2025-03-03 08:20"), local("2025-03-03 09:00")),
    )
    response = client.get(f"/api/v1/occurrences/{occ}/attendance?format=csv", headers=secretariat)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert f"diem-danh_{occ}_2025-03-03.csv" in response.headers["content-disposition"]
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("Điểm cầu,Đơn vị,Chủ trì,Trạng thái,")
    p1 = next(line for line in lines if line.startswith(sites["p1"].name))
    assert ",Tham dự một phần," in p1 and ",2025-03-03 08:20," in p1


def test_attendance_export_writes_a_formula_like_site_name_as_text(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    meeting: Callable[..., int],
) -> None:
    import csv
    import io

    from openpyxl import load_workbook

    name = '=HYPERLINK("http://evil.example","Xem")'
    renamed = client.patch(
        f"/api/v1/sites/{sites['p2'].id}", json={"name": name}, headers=secretariat
    )
    assert renamed.status_code == 200, renamed.text
    occ = meeting("2025-03-03T08:00:00", 60)
    xlsx = client.get(f"/api/v1/occurrences/{occ}/attendance?format=xlsx", headers=secretariat)
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(xlsx.content))["Điểm danh"]
    (cell,) = [c for c in sheet["A"] if c.value == name]
    assert cell.data_type == "s"  # text, not a formula
    text = client.get(f"/api/v1/occurrences/{occ}/attendance?format=csv", headers=secretariat)
    rows = list(csv.reader(io.StringIO(text.content.decode("utf-8-sig"))))
    assert ["'" + name] == [r[0] for r in rows if name in r[0]]
