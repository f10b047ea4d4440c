"""Notices to sites' webhooks through a real HTTP receiver on loopback: signed JSON, through
the same outbox as e-mail (retried, never sent twice), listed on the occurrence page."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.records.delivery import NoticeDelivery
from confbridge.records.models import Notice
from confbridge.settings import MailSettings
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from tests.support.factories import create_user
from tests.support.records import Meeting
from tests.support.servers import WebhookReceiver
from tests.support.web import sign_in

Headers = dict[str, str]
SECRET = "phuong-mot-webhook-secret"
pytestmark = pytest.mark.integration


def _set_webhook(
    client: TestClient, headers: Headers, site: Site, url: str, secret: str | None = SECRET
) -> Any:
    contact: dict[str, Any] = {"webhook_url": url, "name": "Cổng điều hành phường"}
    if secret is not None:
        contact["secret"] = secret
    return client.put(
        f"/api/v1/sites/{site.id}/contacts",
        json=[{"email": "p1@phuong.gov.vn"}, contact],
        headers=headers,
    )


def test_webhooks_contacts_are_checked_and_secrets_never_shown(
    client: TestClient, secretariat: Headers, sites: dict[str, Site]
) -> None:
    p1 = sites["p1"]
    for bad, why in (
        ("http://hooks.example.vn/in", "plain http"),
        ("ftp://10.0.0.5/in", "https://"),
        ("https://user:pw@hooks.example.vn/in", "no user or password"),
    ):
        response = _set_webhook(client, secretariat, p1, bad)
        assert response.status_code == 422, bad
        assert why in response.json()["detail"], response.text
    assert _set_webhook(client, secretariat, p1, "https://x.vn/in", secret=None).status_code == 422
    assert _set_webhook(client, secretariat, p1, "https://x.vn/in", "short").status_code == 422
    for good in ("https://hooks.example.vn/in", "http://10.0.0.5/in", "http://127.0.0.1:9/in"):
        response = _set_webhook(client, secretariat, p1, good)
        assert response.status_code == 200, response.text
        assert SECRET not in response.text
    # the same URL again keeps its secret without being given it
    kept = _set_webhook(client, secretariat, p1, "http://127.0.0.1:9/in", secret=None)
    assert kept.status_code == 200, kept.text
    listed = client.get(f"/api/v1/sites/{p1.id}/contacts", headers=secretariat).json()
    assert [(c["kind"], c["email"], c["webhook_url"]) for c in listed] == [
        ("email", "p1@phuong.gov.vn", None),
        ("webhook", None, "http://127.0.0.1:9/in"),
    ]
    both = [{"email": "a@x.vn", "webhook_url": "https://x.vn/in", "secret": SECRET}]
    put = client.put(f"/api/v1/sites/{p1.id}/contacts", json=both, headers=secretariat)
    assert put.status_code == 422


def test_webhooks_invitation_signed_retried_and_sent_once(
    app: Any,
    client: TestClient,
    secretariat: Headers,
    meeting: Meeting,
    sites: dict[str, Site],
    database: Database,
    webhook: WebhookReceiver,
) -> None:
    assert _set_webhook(client, secretariat, sites["p1"], webhook.url).status_code == 200
    url = f"/api/v1/occurrences/{meeting.occurrence_id}/notices"
    # two contacts of p1: its e-mail address and its webhook
    assert client.post(url, json={}, headers=secretariat).json()["queued"] == 2
    # no mail server configured: the webhook goes out, the e-mail waits
    delivery = NoticeDelivery(database, MailSettings())
    webhook.fail_next = 1
    now = utcnow()
    assert delivery.run_once(now) == 0
    with database.session() as session:
        hooked = session.scalars(select(Notice).where(Notice.channel == "webhook")).one()
        assert (hooked.status, hooked.attempts) == ("pending", 1)
        assert "HTTP 500" in (hooked.last_error or "")
        mailed = session.scalars(select(Notice).where(Notice.channel == "email")).one()
        assert (mailed.status, mailed.attempts) == ("pending", 0)
    assert delivery.run_once(now) == 0  # not due yet
    assert delivery.run_once(now + timedelta(minutes=2)) == 1
    assert delivery.run_once(now + timedelta(minutes=10)) == 0  # never twice
    assert webhook.attempts == 2
    ((headers, body),) = webhook.received
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-confbridge-signature"] == expected
    (sent,) = webhook.bodies()
    assert sent["kind"] == "invitation"
    assert sent["site_id"] == sites["p1"].id
    assert sent["occurrence"]["id"] == meeting.occurrence_id
    assert "emergency" not in sent
    assert client.post(url, json={}, headers=secretariat).json()["queued"] == 0
    listed = client.get(url, headers=secretariat).json()
    assert {(n["channel"], n["status"]) for n in listed} == {
        ("webhook", "sent"),
        ("email", "pending"),
    }
    create_user(database, "vp-hook", Role.secretariat)
    with TestClient(app) as web:
        assert sign_in(web, "vp-hook").status_code == 303
        html = web.get(f"/occurrences/{meeting.occurrence_id}").text
    assert "Thông báo (thư điện tử và webhook)" in html
    assert webhook.url in html
    assert SECRET not in html
