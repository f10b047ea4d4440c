"""E-mail notices through a real SMTP server (aiosmtpd on loopback): content and calendar
attachment, no duplicates, retries when the server is away or refuses for now."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from confbridge.db import Database
from confbridge.meetings.models import Booking, Occurrence
from confbridge.records.delivery import NoticeDelivery
from confbridge.records.models import Notice
from confbridge.settings import MailSettings
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from tests.support.mail import Inbox
from tests.support.records import Meeting
from tests.support.servers import free_port

Headers = dict[str, str]
pytestmark = pytest.mark.integration


def _delivery(database: Database, port: int) -> NoticeDelivery:
    settings = MailSettings(smtp_host="127.0.0.1", smtp_port=port, from_address="vp@tinh.gov.vn")
    return NoticeDelivery(database, settings)


def _contacts(client: TestClient, secretariat: Headers, sites: dict[str, Site]) -> None:
    for key, addresses in (
        ("p1", ["p1@phuong.gov.vn", "ct.p1@phuong.gov.vn"]),
        ("hq", ["hq@tinh.gov.vn"]),
    ):
        response = client.put(
            f"/api/v1/sites/{sites[key].id}/contacts",
            json=[{"email": a, "name": "Văn phòng"} for a in addresses],
            headers=secretariat,
        )
        assert response.status_code == 200, response.text


def _attachments(message: EmailMessage) -> dict[str, Any]:
    return {part.get_content_type(): part for part in message.iter_attachments()}


def test_notices_contacts_are_validated(
    client: TestClient, secretariat: Headers, sites: dict[str, Site]
) -> None:
    url = f"/api/v1/sites/{sites['p1'].id}/contacts"
    for bad in ("khong-co-a-cong", "a b@x.vn", "a@localhost", "<a@x.vn>"):
        assert client.put(url, json=[{"email": bad}], headers=secretariat).status_code == 422, bad
    assert client.put(url, json=[{"email": "a@x.vn"}], headers=secretariat).status_code == 200
    assert [c["email"] for c in client.get(url, headers=secretariat).json()] == ["a@x.vn"]
    assert client.put(url, json=[], headers=secretariat).json() == []


def test_notices_invitation_mailed_once_with_calendar_and_pdf(
    client: TestClient,
    secretariat: Headers,
    meeting: Meeting,
    sites: dict[str, Site],
    database: Database,
    smtp: tuple[Inbox, Controller],
) -> None:
    inbox, controller = smtp
    _contacts(client, secretariat, sites)
    client.patch(
        f"/api/v1/series/{meeting.series_id}/invitation",
        json={"document_number": "125/GM-UBND", "agenda": [{"title": "Báo cáo thu ngân sách"}]},
        headers=secretariat,
    )
    url = f"/api/v1/occurrences/{meeting.occurrence_id}/notices"
    queued = client.post(url, json={"kind": "invitation"}, headers=secretariat)
    assert queued.status_code == 202, queued.text
    assert queued.json()["queued"] == 3
    delivery = _delivery(database, controller.port)
    assert delivery.run_once() == 3
    assert sorted(m["To"] for m in inbox.messages) == [
        "ct.p1@phuong.gov.vn",
        "hq@tinh.gov.vn",
        "p1@phuong.gov.vn",
    ]
    message = inbox.messages[0]
    assert message["Subject"].startswith("Giấy mời họp: Giao ban trực tuyến")
    assert "Giấy mời số: 125/GM-UBND" in message.get_body(("plain",)).get_content()
    parts = _attachments(message)
    ics = parts["text/calendar"]
    assert ics.get_param("method") == "REQUEST"
    assert "METHOD:REQUEST" in ics.get_content()
    assert f"UID:occ-{meeting.series_id}-" in ics.get_content()
    assert parts["application/pdf"].get_content().startswith(b"%PDF-")
    # asked again: nothing new is queued or sent
    assert client.post(url, json={}, headers=secretariat).json()["queued"] == 0
    assert delivery.run_once() == 0
    assert len(inbox.messages) == 3
    listed = client.get(url, headers=secretariat).json()
    assert {n["status"] for n in listed} == {"sent"}


def test_notices_retried_while_the_server_is_away_or_refuses(
    client: TestClient,
    secretariat: Headers,
    meeting: Meeting,
    sites: dict[str, Site],
    database: Database,
) -> None:
    client.put(
        f"/api/v1/sites/{sites['p1'].id}/contacts",
        json=[{"email": "p1@phuong.gov.vn"}],
        headers=secretariat,
    )
    client.post(
        f"/api/v1/occurrences/{meeting.occurrence_id}/notices", json={}, headers=secretariat
    )
    port = free_port()
    delivery = _delivery(database, port)
    now = utcnow()
    assert delivery.run_once(now) == 0  # nothing listens on the port
    with database.session() as session:
        notice = session.scalars(select(Notice)).one()
        assert (notice.status, notice.attempts) == ("pending", 1)
        assert notice.next_attempt_at > now
        assert notice.last_error
    inbox = Inbox()
    inbox.refuse = 1
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert delivery.run_once(now) == 0  # not due yet: no attempt
        assert delivery.run_once(now + timedelta(minutes=2)) == 0  # 451: later
        with database.session() as session:
            notice = session.scalars(select(Notice)).one()
            assert (notice.status, notice.attempts) == ("pending", 2)
            assert "451" in (notice.last_error or "")
        assert delivery.run_once(now + timedelta(minutes=10)) == 1
        assert len(inbox.messages) == 1
    finally:
        controller.stop()


def test_notices_reminder_and_cancellation_are_planned_by_themselves(
    client: TestClient,
    secretariat: Headers,
    meeting: Meeting,
    sites: dict[str, Site],
    database: Database,
    smtp: tuple[Inbox, Controller],
) -> None:
    inbox, controller = smtp
    _contacts(client, secretariat, sites)
    start = utcnow() + timedelta(minutes=20)
    with database.session() as session:
        session.execute(
            update(Occurrence)
            .where(Occurrence.id == meeting.occurrence_id)
            .values(start_at=start, end_at=start + timedelta(hours=1))
        )
        session.execute(
            update(Booking)
            .where(Booking.occurrence_id == meeting.occurrence_id)
            .values(start_at=start, end_at=start + timedelta(hours=1))
        )
        session.commit()
    delivery = _delivery(database, controller.port)
    assert delivery.run_once() == 3
    assert {m["Subject"].split(":")[0] for m in inbox.messages} == {"Nhắc lịch họp (30 phút nữa)"}
    assert delivery.run_once() == 0  # planned again: already sent
    cancelled = client.patch(
        f"/api/v1/occurrences/{meeting.occurrence_id}",
        json={"status": "cancelled"},
        headers=secretariat,
    )
    assert cancelled.status_code == 200, cancelled.text
    assert delivery.run_once() == 3
    cancellation = inbox.messages[-1]
    assert cancellation["Subject"].startswith("Hủy cuộc họp")
    refused = client.post(
        f"/api/v1/occurrences/{meeting.occurrence_id}/notices", json={}, headers=secretariat
    )
    assert refused.status_code == 409
    assert "cancelled" in refused.json()["detail"]
    assert "METHOD:CANCEL" in _attachments(cancellation)["text/calendar"].get_content()
