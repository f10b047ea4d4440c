"""Alerts reach a real webhook receiver, signed, retried while it fails."""

from __future__ import annotations

import hashlib
import hmac

import httpx

from confbridge.alerts import service as alert_service
from confbridge.alerts.delivery import SIGNATURE_HEADER, AlertDelivery
from confbridge.alerts.models import Alert
from confbridge.db import Database
from confbridge.settings import AlertSettings
from confbridge.timeutil import utcnow
from tests.support.factories import node_down
from tests.support.servers import WebhookReceiver


async def test_delivery_signs_and_retries_until_the_receiver_answers(
    database: Database, webhook: WebhookReceiver
) -> None:
    settings = AlertSettings(
        webhook_url=webhook.url, webhook_secret="s3cret", delivery_max_attempts=5
    )
    with database.session() as session:
        alert = alert_service.raise_(
            session=session, alert_in=node_down(), now=utcnow(), deliver=True
        )
        assert alert is not None
        alert_id = alert.id
        session.commit()
    delivery = AlertDelivery(database, settings)
    webhook.fail_next = 1
    async with httpx.AsyncClient() as http:
        assert await delivery.deliver_due(http) == 0  # the receiver answered 500
        assert webhook.attempts == 1 and webhook.received == []
        with database.session() as session:
            pending = session.get(Alert, alert_id)
            assert pending is not None and pending.delivery_state == "pending"
            assert pending.last_delivery_error is not None
            assert pending.last_delivery_error.startswith("HTTP 500")
            # not due again before its back-off has passed
            assert alert_service.due_for_delivery(session=session, now=utcnow(), limit=5) == []
            pending.next_delivery_at = utcnow()
            session.commit()
        assert await delivery.deliver_due(http) == 1
        assert await delivery.deliver_due(http) == 0  # delivered once, never twice
    (headers, body) = webhook.received[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER.lower()] == expected
    (sent,) = webhook.bodies()
    assert (sent["id"], sent["kind"], sent["subject"]) == (alert_id, "node_down", "node:a")
    assert sent["message"] == "Máy chủ a không còn hoạt động"
    with database.session() as session:
        delivered = session.get(Alert, alert_id)
        assert delivered is not None and delivered.delivery_state == "delivered"
        assert delivered.delivery_attempts == 2 and delivered.delivered_at is not None
