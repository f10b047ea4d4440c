"""An emergency meeting's notices, received by a real SMTP server (aiosmtpd) and a real
webhook receiver on loopback: the displaced meeting's sites and its secretariat (the chair
hall's contacts) are told why, and the emergency meeting's sites are invited."""

from __future__ import annotations

from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from confbridge.db import Database
from confbridge.records.delivery import NoticeDelivery
from confbridge.settings import MailSettings
from confbridge.sites.models import Site
from tests.support.mail import Inbox
from tests.support.servers import WebhookReceiver

Headers = dict[str, str]
SECRET = "phuong-mot-webhook-secret"
REASON = "Bão số 3 đổ bộ vào địa bàn"
pytestmark = pytest.mark.integration


def _meeting(title: str, chair: Site, sites: list[Site]) -> dict[str, Any]:
    return {
        "title": title,
        "kind": "chuyen_de",
        "mode": "online",
        "rrule": "FREQ=DAILY;COUNT=1",
        "dtstart": "2030-03-04T07:30:00",
        "duration_min": 60,
        "chair_site_id": chair.id,
        "site_ids": [s.id for s in sites],
        "skip_holidays": False,
    }


def test_emergency_notices_tell_the_displaced_sites_why(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    database: Database,
    smtp: tuple[Inbox, Controller],
    webhook: WebhookReceiver,
) -> None:
    inbox, controller = smtp
    contacts = {
        "hq": [{"email": "vanphong@tinh.gov.vn"}],
        "p1": [{"email": "p1@phuong.gov.vn"}, {"webhook_url": webhook.url, "secret": SECRET}],
        "dept": [{"email": "so@tinh.gov.vn"}],
    }
    for key, given in contacts.items():
        put = client.put(f"/api/v1/sites/{sites[key].id}/contacts", json=given, headers=secretariat)
        assert put.status_code == 200, put.text
    training = client.post(
        "/api/v1/series",
        json=_meeting("Tập huấn chuyển đổi số", sites["dept"], [sites["p1"]]),
        headers=secretariat,
    )
    assert training.status_code == 201, training.text
    occurrences = client.get(
        f"/api/v1/series/{training.json()['id']}/occurrences?from=2030-01-01&to=2031-01-01",
        headers=secretariat,
    ).json()["items"]
    displaced_id = occurrences[0]["id"]
    body = {
        **_meeting("Họp khẩn phòng chống bão", sites["hq"], [sites["p1"]]),
        "emergency": {
            "confirm": True,
            "reason": REASON,
            "displaced": [{"occurrence_id": displaced_id, "action": "cancel"}],
        },
    }
    booked = client.post("/api/v1/series", json=body, headers=secretariat)
    assert booked.status_code == 201, booked.text
    delivery = NoticeDelivery(
        database,
        MailSettings(smtp_host="127.0.0.1", smtp_port=controller.port, from_address="vp@tinh.vn"),
    )
    # the training's sites (dept chairs it, p1 invited: e-mail + webhook) are told of the
    # cancellation; the emergency meeting's (hq, p1: e-mail + webhook) are invited
    assert delivery.run_once() == 6
    assert delivery.run_once() == 0  # planned again: nothing twice
    by_subject: dict[str, set[str]] = {}
    for message in inbox.messages:
        by_subject.setdefault(message["Subject"].split(":")[0], set()).add(message["To"])
    assert by_subject == {
        "Hủy cuộc họp": {"so@tinh.gov.vn", "p1@phuong.gov.vn"},
        "Giấy mời họp": {"vanphong@tinh.gov.vn", "p1@phuong.gov.vn"},
    }
    cancellation = next(m for m in inbox.messages if m["Subject"].startswith("Hủy cuộc họp"))
    text = cancellation.get_body(("plain",)).get_content()
    assert "bị hủy để tổ chức họp khẩn: Họp khẩn phòng chống bão" in text
    assert f"Lý do: {REASON}" in text
    assert "Người quyết định: vanphong" in text
    hooks = {b["kind"]: b for b in webhook.bodies()}
    assert set(hooks) == {"cancellation", "invitation"}
    assert hooks["cancellation"]["occurrence"]["id"] == displaced_id
    assert hooks["cancellation"]["occurrence"]["status"] == "cancelled"
    assert hooks["cancellation"]["emergency"]["reason"] == REASON
    assert hooks["cancellation"]["emergency"]["by"] == "user:vanphong"
    assert hooks["cancellation"]["emergency"]["emergency_series_id"] == booked.json()["id"]
    assert hooks["invitation"]["occurrence"]["title"] == "Họp khẩn phòng chống bão"
