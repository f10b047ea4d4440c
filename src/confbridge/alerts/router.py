"""Alerts over HTTP, for IT staff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from confbridge.alerts import service as alert_service
from confbridge.alerts.models import Alert
from confbridge.alerts.schemas import AlertRead
from confbridge.alerts.service import AlertKind
from confbridge.auth.dependencies import ITScope, Scoped, require_scope
from confbridge.auth.models import Role
from confbridge.deps import SessionDep
from confbridge.pagination import IdPath, Limit, Offset, Page
from confbridge.timeutil import utcnow

router = APIRouter(tags=["alerts"])
# The secretariat reads alerts too: meetings the planner could not book are theirs to resolve.
AlertReader = Annotated[Scoped, Depends(require_scope(Role.it, Role.secretariat))]


def alert_read(alert: Alert) -> AlertRead:
    return AlertRead(
        id=alert.id,
        kind=alert.kind,
        severity=alert.severity,
        subject=alert.subject,
        open=alert.open_key is not None,
        node_id=alert.node_id,
        occurrence_id=alert.occurrence_id,
        site_id=alert.site_id,
        message=alert.message,
        message_en=alert.message_en,
        details=alert.details,
        raised_at=alert.raised_at,
        resolved_at=alert.resolved_at,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        delivery_state=alert.delivery_state,
        delivery_attempts=alert.delivery_attempts,
        last_delivery_error=alert.last_delivery_error,
    )


@router.get("/alerts", response_model=Page[AlertRead])
def list_alerts(
    reader: AlertReader,
    session: SessionDep,
    open_only: Annotated[bool, Query(alias="open")] = False,
    kind: AlertKind | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[AlertRead]:
    """Newest first; `open=true` lists only alerts not resolved yet. Alerts about your
    units' sites (those about SFU nodes: for the whole installation's staff only)."""
    rows, total = alert_service.list_(
        session=session,
        open_only=open_only,
        kind=kind,
        limit=limit,
        offset=offset,
        scope=reader.scope,
    )
    return Page(items=[alert_read(a) for a in rows], total=total, limit=limit, offset=offset)


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertRead)
def acknowledge(alert_id: IdPath, it: ITScope, session: SessionDep) -> AlertRead:
    alert = alert_service.acknowledge(
        session=session,
        alert_id=alert_id,
        by=f"user:{it.user.username}",
        now=utcnow(),
        scope=it.scope,
    )
    session.commit()
    return alert_read(alert)
