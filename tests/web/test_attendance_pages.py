"""Correcting a site's attendance from the meeting's page over plain HTTP: the secretariat of
the site's unit, with a reason; refusals with a message; the audit log keeps it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.attendance.models import AttendanceCorrection
from confbridge.auth.models import AuditEntry, Role
from confbridge.db import Database
from confbridge.settings import Settings
from confbridge.timeutil import utcnow
from tests.support.factories import book_occurrence, province_sites
from tests.support.scopes import TwoProvinces
from tests.support.web import post_form


def _error(html: str) -> str:
    found = re.search(r'id="correction-error">([^<]*)<', html)
    assert found is not None, "the page shows no correction error"
    return found.group(1)


def test_attendance_correction_from_the_meeting_page_needs_a_reason_and_the_scope(
    browser_as: Callable[..., TestClient],
    world: TwoProvinces,
    session: Session,
    database: Database,
    settings: Settings,
) -> None:
    sites = province_sites(session)
    ended = book_occurrence(
        database,
        settings,
        sites,
        utcnow() - timedelta(hours=3),
        invited=("p1", "p2"),
        record_past=True,
    )
    ward_sec = browser_as("ward_sec", world.units["p1"], Role.secretariat)
    page = f"/occurrences/{ended}"
    shown = ward_sec.get(page)
    assert shown.status_code == 200 and 'id="correct-attendance"' in shown.text
    # the ward's secretariat is offered its own hall only
    offered = re.findall(
        r'<select id="correct-site" name="site_id">(.*?)</select>', shown.text, re.S
    )
    assert offered and "Phường Một" in offered[0] and "Phường Hai" not in offered[0]
    action = f"{page}/attendance/corrections"
    p1, p2 = str(world.sites["p1"]), str(world.sites["p2"])
    no_reason = post_form(
        ward_sec, page, action, {"site_id": p1, "status": "present", "reason": " "}
    )
    assert no_reason.status_code == 422 and _error(no_reason.text) == "Hãy nêu lý do điều chỉnh."
    no_status = post_form(ward_sec, page, action, {"site_id": p1, "status": "vang", "reason": "x"})
    assert no_status.status_code == 422
    other_ward = post_form(
        ward_sec, page, action, {"site_id": p2, "status": "present", "reason": "x"}
    )
    assert other_ward.status_code == 404
    not_invited = post_form(
        ward_sec,
        page,
        action,
        {"site_id": str(world.sites["hq_b"]), "status": "present", "reason": "x"},
    )
    assert not_invited.status_code == 404
    done = post_form(
        ward_sec,
        page,
        action,
        {"site_id": p1, "status": "present", "reason": "Họp qua điện thoại do mất mạng"},
    )
    assert done.status_code == 303
    session.expire_all()
    [correction] = session.scalars(select(AttendanceCorrection)).all()
    assert (correction.site_id, correction.status, correction.created_by) == (
        world.sites["p1"],
        "present",
        "user:ward_sec",
    )
    [entry] = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "attendance_corrected")
    ).all()
    assert entry.detail["changes"] == {"status": ["absent", "present"]}
    assert entry.detail["reason"] == "Họp qua điện thoại do mất mạng"
    assert "Họp qua điện thoại do mất mạng" in ward_sec.get(page).text
    viewer = browser_as("xem", world.units["p1"], Role.viewer)
    assert 'id="correct-attendance"' not in viewer.get(page).text
    refused = post_form(viewer, page, action, {"site_id": p1, "status": "absent", "reason": "x"})
    assert refused.status_code == 403


def test_attendance_correction_waits_for_the_meeting_to_end(
    browser_as: Callable[..., TestClient],
    world: TwoProvinces,
    session: Session,
    database: Database,
    settings: Settings,
) -> None:
    sites = province_sites(session)
    running = book_occurrence(database, settings, sites, utcnow() - timedelta(minutes=10))
    sec_a = browser_as("sec_a", world.units["a"], Role.secretariat)
    page = f"/occurrences/{running}"
    assert 'id="correct-attendance"' not in sec_a.get(page).text
    early = post_form(
        sec_a,
        page,
        f"{page}/attendance/corrections",
        {"site_id": str(world.sites["p1"]), "status": "present", "reason": "x"},
    )
    assert early.status_code == 409 and "chưa kết thúc" in _error(early.text)
