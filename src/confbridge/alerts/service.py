"""Raising, resolving, acknowledging and delivering alerts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from confbridge.alerts.models import Alert
from confbridge.auth.scope import Scope
from confbridge.errors import Conflict, NotFound
from confbridge.sites.models import Site

log = logging.getLogger(__name__)

DELIVERY_CLAIM_S = 30.0
"""A process delivering an alert holds it this long; another may retry after."""
DELIVERY_BACKOFF_MAX_S = 300.0
MAX_ERROR_CHARS = 300


class AlertKind(StrEnum):
    node_down = "node_down"
    terminal_offline = "terminal_offline"
    link_quality = "link_quality"
    spool_growing = "spool_growing"
    occurrence_unplanned = "occurrence_unplanned"  # the planner could not book a meeting
    room_system_unreachable = "room_system_unreachable"  # a SIP room system ignores OPTIONS
    recording_failed = "recording_failed"  # a recording stopped by itself (e.g. a full disk)


class Severity(StrEnum):
    critical = "critical"
    warning = "warning"


class DeliveryState(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"
    none = "none"  # no webhook configured when it was raised


@dataclass(frozen=True)
class AlertIn:
    """An alert to raise: `subject` identifies what it is about, e.g. `node:local-0`."""

    kind: AlertKind
    severity: Severity
    subject: str
    message: str
    message_en: str
    node_id: str | None = None
    occurrence_id: int | None = None
    site_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def open_key(kind: AlertKind, subject: str) -> str:
    return f"{kind.value}:{subject}"


def raise_(*, session: Session, alert_in: AlertIn, now: datetime, deliver: bool) -> Alert | None:
    """Store the alert unless the same one is open already; returns it if new."""
    key = open_key(alert_in.kind, alert_in.subject)
    if session.scalar(select(Alert.id).where(Alert.open_key == key)) is not None:
        return None
    alert = Alert(
        kind=alert_in.kind.value,
        severity=alert_in.severity.value,
        subject=alert_in.subject,
        node_id=alert_in.node_id,
        occurrence_id=alert_in.occurrence_id,
        site_id=alert_in.site_id,
        message=alert_in.message,
        message_en=alert_in.message_en,
        details=alert_in.details,
        raised_at=now,
        open_key=key,
        delivery_state=(DeliveryState.pending if deliver else DeliveryState.none).value,
        next_delivery_at=now if deliver else None,
    )
    try:
        with session.begin_nested():
            session.add(alert)
    except IntegrityError:  # raised by another process at the same moment
        return None
    log.warning("alert %s: %s", key, alert_in.message_en)
    return alert


def resolve(*, session: Session, kind: AlertKind, subject: str, now: datetime) -> Alert | None:
    """Close the open alert of this kind and subject, if any."""
    alert = session.scalar(select(Alert).where(Alert.open_key == open_key(kind, subject)))
    if alert is None:
        return None
    alert.resolved_at = now
    alert.open_key = None
    session.flush()
    log.info("alert %s:%s resolved", kind.value, subject)
    return alert


def open_subjects(*, session: Session, kind: AlertKind) -> set[str]:
    query = select(Alert.subject).where(Alert.kind == kind, Alert.open_key.is_not(None))
    return set(session.scalars(query))


def scope_clause(scope: Scope) -> ColumnElement[bool]:
    """WHERE condition on `Alert`: about a site of `scope`. Alerts about no site (SFU nodes,
    their spools) concern the whole installation: only a whole scope holds them."""
    if scope.whole:
        return true()
    in_scope = select(Site.id).where(scope.clause(Site.unit_id))
    return Alert.site_id.in_(in_scope)


def get(*, session: Session, alert_id: int, scope: Scope | None = None) -> Alert:
    """The alert (404 if none, or if `scope` does not hold it)."""
    alert = session.get(Alert, alert_id)
    if alert is not None and scope is not None and not scope.whole:
        held = select(Alert.id).where(Alert.id == alert_id, scope_clause(scope))
        if session.scalar(held) is None:
            alert = None
    if alert is None:
        raise NotFound(f"no alert {alert_id}", alert_id=alert_id)
    return alert


def list_(
    *,
    session: Session,
    open_only: bool,
    kind: AlertKind | None,
    limit: int,
    offset: int,
    scope: Scope | None = None,
) -> tuple[list[Alert], int]:
    """Newest first; with `scope`, only the alerts it holds (`scope_clause`)."""
    query = select(Alert)
    if scope is not None:
        query = query.where(scope_clause(scope))
    if open_only:
        query = query.where(Alert.open_key.is_not(None))
    if kind is not None:
        query = query.where(Alert.kind == kind.value)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


def acknowledge(
    *, session: Session, alert_id: int, by: str, now: datetime, scope: Scope | None = None
) -> Alert:
    alert = get(session=session, alert_id=alert_id, scope=scope)
    if alert.acknowledged_at is not None:
        raise Conflict(
            f"alert {alert_id} was acknowledged by {alert.acknowledged_by}",
            acknowledged_at=alert.acknowledged_at.isoformat(),
        )
    alert.acknowledged_at = now
    alert.acknowledged_by = by
    session.flush()
    return alert


# --- webhook delivery ----------------------------------------------------------------------------


def due_for_delivery(*, session: Session, now: datetime, limit: int) -> list[int]:
    """Ids of pending alerts whose next attempt is due and that nobody is delivering."""
    return list(
        session.scalars(
            select(Alert.id)
            .where(
                Alert.delivery_state == DeliveryState.pending.value,
                Alert.next_delivery_at <= now,
                or_(Alert.delivery_claimed_until.is_(None), Alert.delivery_claimed_until < now),
            )
            .order_by(Alert.id)
            .limit(limit)
        )
    )


def claim(*, session: Session, alert_id: int, now: datetime) -> Alert | None:
    """Take the alert for one delivery attempt; None if another process has it."""
    result = session.execute(
        update(Alert)
        .where(
            Alert.id == alert_id,
            Alert.delivery_state == DeliveryState.pending.value,
            or_(Alert.delivery_claimed_until.is_(None), Alert.delivery_claimed_until < now),
        )
        .values(delivery_claimed_until=now + timedelta(seconds=DELIVERY_CLAIM_S))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    alert = session.get(Alert, alert_id)
    if alert is not None:
        session.refresh(alert)
    return alert


def record_attempt(
    *, session: Session, alert: Alert, error: str | None, now: datetime, max_attempts: int
) -> None:
    """Note one delivery attempt: delivered, retried later with back-off, or given up."""
    alert.delivery_attempts += 1
    alert.delivery_claimed_until = None
    if error is None:
        alert.delivery_state = DeliveryState.delivered.value
        alert.delivered_at = now
        alert.next_delivery_at = None
        alert.last_delivery_error = None
    else:
        alert.last_delivery_error = error[:MAX_ERROR_CHARS]
        if alert.delivery_attempts >= max_attempts:
            alert.delivery_state = DeliveryState.failed.value
            alert.next_delivery_at = None
            log.error("alert %s not delivered after %d attempts: %s", alert.id, max_attempts, error)
        else:
            delay = min(2.0 ** (alert.delivery_attempts - 1), DELIVERY_BACKOFF_MAX_S)
            alert.next_delivery_at = now + timedelta(seconds=delay)
    session.flush()


def payload(alert: Alert) -> dict[str, Any]:
    """The webhook body for an alert."""
    return {
        "id": alert.id,
        "kind": alert.kind,
        "severity": alert.severity,
        "subject": alert.subject,
        "message": alert.message,
        "message_en": alert.message_en,
        "node_id": alert.node_id,
        "occurrence_id": alert.occurrence_id,
        "site_id": alert.site_id,
        "details": alert.details,
        "raised_at": alert.raised_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }
