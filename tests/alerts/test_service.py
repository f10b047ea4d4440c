"""Alerts: one open alert per kind and subject, resolution, acknowledgement."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from confbridge.alerts import service as alert_service
from confbridge.alerts.service import AlertKind
from confbridge.errors import Conflict
from confbridge.timeutil import utcnow
from tests.support.factories import node_down


def test_service_an_open_alert_is_raised_once(session: Session) -> None:
    now = utcnow()
    first = alert_service.raise_(session=session, alert_in=node_down(), now=now, deliver=True)
    assert first is not None and first.delivery_state == "pending" and first.next_delivery_at == now
    assert (
        alert_service.raise_(session=session, alert_in=node_down(), now=now, deliver=True) is None
    )
    other = alert_service.raise_(session=session, alert_in=node_down("b"), now=now, deliver=False)
    assert other is not None and other.delivery_state == "none"
    assert alert_service.open_subjects(session=session, kind=AlertKind.node_down) == {
        "node:a",
        "node:b",
    }

    resolved = alert_service.resolve(
        session=session, kind=AlertKind.node_down, subject="node:a", now=now
    )
    assert resolved is first and first.resolved_at == now and first.open_key is None
    # the same trouble later is a new alert; the old one stays as history
    again = alert_service.raise_(
        session=session, alert_in=node_down(), now=now + timedelta(minutes=5), deliver=True
    )
    assert again is not None and again.id != first.id
    rows, total = alert_service.list_(
        session=session, open_only=False, kind=AlertKind.node_down, limit=10, offset=0
    )
    assert total == 3 and rows[0] is again
    rows, total = alert_service.list_(
        session=session, open_only=True, kind=None, limit=10, offset=0
    )
    assert total == 2 and {a.subject for a in rows} == {"node:a", "node:b"}


def test_service_acknowledge_once(session: Session) -> None:
    alert = alert_service.raise_(session=session, alert_in=node_down(), now=utcnow(), deliver=False)
    assert alert is not None
    acked = alert_service.acknowledge(
        session=session, alert_id=alert.id, by="user:it1", now=utcnow()
    )
    assert acked.acknowledged_by == "user:it1"
    with pytest.raises(Conflict, match="acknowledged by user:it1"):
        alert_service.acknowledge(session=session, alert_id=alert.id, by="user:it2", now=utcnow())


def test_service_delivery_backs_off_then_gives_up(session: Session) -> None:
    now = utcnow()
    alert = alert_service.raise_(session=session, alert_in=node_down(), now=now, deliver=True)
    assert alert is not None
    assert alert_service.due_for_delivery(session=session, now=now, limit=10) == [alert.id]
    assert alert_service.claim(session=session, alert_id=alert.id, now=now) is alert
    # claimed: nobody else takes it meanwhile
    assert alert_service.claim(session=session, alert_id=alert.id, now=now) is None
    assert alert_service.due_for_delivery(session=session, now=now, limit=10) == []
    alert_service.record_attempt(
        session=session, alert=alert, error="HTTP 500", now=now, max_attempts=3
    )
    assert alert.next_delivery_at == now + timedelta(seconds=1)
    alert_service.record_attempt(
        session=session, alert=alert, error="HTTP 500", now=now, max_attempts=3
    )
    assert alert.next_delivery_at == now + timedelta(seconds=2)
    alert_service.record_attempt(
        session=session, alert=alert, error="timeout", now=now, max_attempts=3
    )
    assert (alert.delivery_state, alert.delivery_attempts) == ("failed", 3)
    assert alert.last_delivery_error == "timeout" and alert.next_delivery_at is None
