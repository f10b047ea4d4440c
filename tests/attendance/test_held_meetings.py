"""A meeting that sites joined is protected: moving or cancelling it needs a confirmation and
a reason, and its attendance is kept (and shown) and the change audited."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from confbridge.auth.models import AuditEntry
from confbridge.db import Database
from confbridge.sites.models import Site
from confbridge_kernel.contracts import EventType
from tests.support.events import event, local, media

Headers = dict[str, str]
J, L = EventType.joined, EventType.left


def _joined_meeting(
    meeting: Callable[..., int], post_events: Callable[..., None], sites: dict[str, Site]
) -> int:
    occ = meeting("2025-03-03T08:00:00", 60)
    p1 = sites["p1"].id
    post_events(
        event(occ, p1, J, local("2025-03-03 08:00")),
        *media(occ, p1, local("2025-03-03 08:00"), local("2025-03-03 09:00")),
        event(occ, p1, L, local("2025-03-03 09:00")),
    )
    return occ


def test_held_meeting_cancel_needs_confirmation_and_reason_and_keeps_attendance(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    database: Database,
    meeting: Callable[..., int],
    post_events: Callable[..., None],
) -> None:
    occ = _joined_meeting(meeting, post_events, sites)
    url = f"/api/v1/occurrences/{occ}"

    unconfirmed = client.patch(url, json={"status": "cancelled"}, headers=secretariat)
    assert unconfirmed.status_code == 409, unconfirmed.text
    body = unconfirmed.json()
    assert body["code"] == "confirm_needed" and body["attended_sites"] == 1
    assert "xác nhận" in body["detail"] and "confirm: true" in body["detail"]

    no_reason = client.patch(
        url, json={"status": "cancelled", "confirm": True, "reason": "  "}, headers=secretariat
    )
    assert no_reason.status_code == 422 and no_reason.json()["code"] == "reason_needed"
    assert client.get(url, headers=secretariat).json()["status"] == "scheduled"

    reason = "Họp trùng lịch, đã gộp vào phiên chiều"
    done = client.patch(
        url, json={"status": "cancelled", "confirm": True, "reason": reason}, headers=secretariat
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "cancelled"
    # its attendance is kept: p1 was there for the whole hour
    records = client.get(f"{url}/attendance", headers=secretariat).json()["records"]
    (p1,) = [r for r in records if r["site_id"] == sites["p1"].id]
    assert p1["connected_min"] == 60
    with database.session() as session:
        entry = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.entity == "occurrence", AuditEntry.entity_id == occ)
            .order_by(AuditEntry.id.desc())
        ).first()
    assert entry is not None and entry.action == "occurrence_updated"
    assert entry.detail["reason"] == reason
    assert entry.detail["attendance_kept"] == [sites["p1"].id]
    assert entry.detail["before"]["status"] == "scheduled"


def test_held_meeting_move_needs_confirmation(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    meeting: Callable[..., int],
    post_events: Callable[..., None],
) -> None:
    occ = _joined_meeting(meeting, post_events, sites)
    url = f"/api/v1/occurrences/{occ}"
    moved = {"start_at": "2025-03-03T09:00:00+07:00", "record_past": True}
    refused = client.patch(url, json=moved, headers=secretariat)
    assert refused.status_code == 409 and refused.json()["code"] == "confirm_needed"
    done = client.patch(
        url, json={**moved, "confirm": True, "reason": "giờ thực tế"}, headers=secretariat
    )
    assert done.status_code == 200, done.text
    assert done.json()["start_at"].startswith("2025-03-03T02:00:00")


def test_meeting_without_attendance_is_cancelled_without_confirmation(
    client: TestClient, secretariat: Headers, meeting: Callable[..., int]
) -> None:
    occ = meeting("2025-03-03T08:00:00", 60)
    done = client.patch(
        f"/api/v1/occurrences/{occ}", json={"status": "cancelled"}, headers=secretariat
    )
    assert done.status_code == 200 and done.json()["status"] == "cancelled"
