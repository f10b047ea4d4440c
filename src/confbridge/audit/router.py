"""The audit log over HTTP: JSON pages, or a CSV or XLSX download."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response

from confbridge.audit import export
from confbridge.audit import service as audit_service
from confbridge.audit.schemas import AuditRead
from confbridge.auth.dependencies import AdminScope
from confbridge.deps import SessionDep, SettingsDep
from confbridge.exports import (
    FILE_RESPONSES,
    ExportFormat,
    FormatQuery,
    file_response,
    parse_format,
    render,
)
from confbridge.pagination import MAX_ID, Limit, Offset, Page
from confbridge.timeutil import parse_instant, parse_window, utcnow

router = APIRouter(tags=["audit"])
TimeQuery = Annotated[
    str | None, Query(max_length=40, description="a local date or date-time (included)")
]
Name = Annotated[str | None, Query(max_length=120)]
# By default, the last 30 days.
DEFAULT_DAYS = 30


def _window(
    from_: str | None, to: str | None, *, tz: str, now: datetime
) -> tuple[datetime, datetime]:
    """[from, to): as given; a bound left out is DEFAULT_DAYS from the other, or from now."""
    if from_ is None:
        to_at = parse_instant(to, tz=tz, name="to", end_of_day=True) if to else now
        from_at = to_at - timedelta(days=DEFAULT_DAYS)
        # an entry written this very second is in the window
        return from_at, to_at + timedelta(seconds=1) if to is None else to_at
    return parse_window(from_, to, tz=tz, now=now, default_days=DEFAULT_DAYS)


@router.get("/audit", response_model=Page[AuditRead], responses=FILE_RESPONSES)
def list_audit(
    admin: AdminScope,
    session: SessionDep,
    settings: SettingsDep,
    from_: Annotated[TimeQuery, Query(alias="from")] = None,
    to: TimeQuery = None,
    actor: Name = None,
    entity: Name = None,
    action: Name = None,
    entity_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
    format_: FormatQuery = "json",
) -> Page[AuditRead] | Response:
    """Who did what, when, from where, before → after; newest first, by default over the
    last 30 days. `actor` is as written (`user:<name>`, `terminal:<id>`, `cli`...).

    Administrators of the whole installation read everything; an administrator of a unit
    reads what concerns its units and what their users did."""
    export_format = parse_format(format_)
    tz = settings.meetings.default_tz
    now = utcnow()
    from_at, to_at = _window(from_, to, tz=tz, now=now)
    where = audit_service.AuditFilter(
        from_at=from_at,
        to_at=to_at,
        actor=actor,
        entity=entity,
        action=action,
        entity_id=entity_id,
    )
    if export_format is not ExportFormat.json:
        rows, _total = audit_service.list_(
            session=session,
            where=where,
            scope=admin.scope,
            limit=audit_service.MAX_EXPORT_ROWS,
        )
        document = export.audit_document([audit_service.read(r) for r in rows], where=where, tz=tz)
        return file_response(*render(document, export_format.value))
    rows, total = audit_service.list_(
        session=session, where=where, scope=admin.scope, limit=limit, offset=offset
    )
    return Page(
        items=[audit_service.read(r) for r in rows], total=total, limit=limit, offset=offset
    )
