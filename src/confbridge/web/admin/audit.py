"""The audit log: who did what, when, from where, before → after; as a page and as CSV.
An administrator reads what concerns its units (`audit.service`)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import Response

from confbridge.audit import export as audit_export
from confbridge.audit import service as audit_service
from confbridge.errors import DomainError
from confbridge.exports import file_response, render
from confbridge.timeutil import parse_instant, utcnow
from confbridge.web.admin.common import AdminPage, scope
from confbridge.web.context import Page

router = APIRouter(include_in_schema=False)
AUDIT_PAGE_ROWS = 200
AUDIT_DAYS = 30


def _audit_filter(page: Page) -> audit_service.AuditFilter:
    """The page's filters from its query (dates are local days, both included)."""
    params = page.request.query_params
    tz = page.settings.meetings.default_tz
    now = utcnow()
    from_text, to_text = params.get("from", "")[:40], params.get("to", "")[:40]
    to_at = parse_instant(to_text, tz=tz, name="to", end_of_day=True) if to_text else now
    from_at = (
        parse_instant(from_text, tz=tz, name="from")
        if from_text
        else to_at - timedelta(days=AUDIT_DAYS)
    )
    return audit_service.AuditFilter(
        from_at=from_at,
        to_at=to_at + timedelta(seconds=1),
        actor=params.get("actor", "").strip()[:120] or None,
        entity=params.get("entity", "").strip()[:40] or None,
        action=params.get("action", "").strip()[:60] or None,
    )


@router.get("/admin/audit")
def audit_page(page: AdminPage) -> Response:
    try:
        where = _audit_filter(page)
    except DomainError as exc:
        return page.render("admin_audit.html", 422, items=[], total=0, error=exc.message)
    rows, total = audit_service.list_(
        session=page.session,
        where=where,
        scope=scope(page, "admin_scope"),
        limit=AUDIT_PAGE_ROWS,
    )
    query = page.request.url.query
    return page.render(
        "admin_audit.html",
        items=[audit_service.read(r) for r in rows],
        total=total,
        shown=AUDIT_PAGE_ROWS,
        params=page.request.query_params,
        csv_link="/admin/audit.csv" + (f"?{query}" if query else ""),
    )


@router.get("/admin/audit.csv")
def audit_csv(page: AdminPage) -> Response:
    try:
        where = _audit_filter(page)
    except DomainError as exc:
        return page.render("error.html", 422, message=exc.message)
    rows, _total = audit_service.list_(
        session=page.session,
        where=where,
        scope=scope(page, "admin_scope"),
        limit=audit_service.MAX_EXPORT_ROWS,
    )
    document = audit_export.audit_document(
        [audit_service.read(r) for r in rows], where=where, tz=page.settings.meetings.default_tz
    )
    return file_response(*render(document, "csv"))
