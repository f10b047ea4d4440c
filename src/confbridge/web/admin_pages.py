"""Administration pages: users and their memberships, units and sites, terminals, the audit
log. Each shows and changes only what the signed-in user's scope holds (`auth.scope`), through
the same services and checks as the API."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlalchemy import select

from confbridge.audit import export as audit_export
from confbridge.audit import service as audit_service
from confbridge.auth import service as auth_service
from confbridge.auth.models import Role, User
from confbridge.auth.scope import Scope
from confbridge.errors import DomainError, Forbidden, NotFound
from confbridge.exports import file_response, render
from confbridge.meetings import flows as meeting_flows
from confbridge.sites import service as site_service
from confbridge.sites.access import visible_site, visible_unit
from confbridge.sites.models import Site, UnitKind
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import parse_instant, utcnow
from confbridge.web import labels, queries
from confbridge.web.context import CheckedForm, Page, signed_in
from confbridge.web.security import NotAllowed
from confbridge.web.shared import parse_id, redirect

router = APIRouter(include_in_schema=False)
ROLE_LABELS = {
    "admin": labels.N_("Administrator"),
    "secretariat": labels.N_("Secretariat"),
    "it": labels.N_("IT staff"),
    "viewer": labels.N_("Viewer"),
}
AUDIT_PAGE_ROWS = 200
AUDIT_DAYS = 30


def _needs(scope_of_user: str) -> Any:
    def dependency(page: Annotated[Page, Depends(signed_in)]) -> Page:
        assert page.user is not None
        if getattr(page.user, scope_of_user).empty:
            raise NotAllowed
        return page

    return dependency


AdminPage = Annotated[Page, Depends(_needs("admin_scope"))]
UnitsPage = Annotated[Page, Depends(_needs("edit_scope"))]
TerminalsPage = Annotated[Page, Depends(_needs("it_scope"))]


def _actor(page: Page) -> str:
    assert page.user is not None
    return f"user:{page.user.username}"


def _scope(page: Page, name: str) -> Scope:
    assert page.user is not None
    scope: Scope = getattr(page.user, name)
    return scope


# --- users ----------------------------------------------------------------------------------


def _users_page(page: Page, status_code: int = 200, **values: Any) -> Response:
    scope = _scope(page, "admin_scope")
    units = queries.flatten(queries.unit_tree(page.session, scope))
    names = {u.id: u.name for u in units}
    users = auth_service.list_(session=page.session, scope=scope)
    return page.render(
        "admin_users.html",
        status_code,
        users=users,
        units=units,
        unit_names=names,
        root=scope.whole,
        roles=labels.translated(ROLE_LABELS, page.translations.gettext),
        **values,
    )


@router.get("/admin/users")
def users_page(page: AdminPage) -> Response:
    return _users_page(page, saved=page.request.query_params.get("saved"))


@router.post("/admin/users")
def create_user(page: AdminPage, form: CheckedForm) -> Response:
    """A user with one membership; its one-time password is shown once, on the answer."""
    scope = _scope(page, "admin_scope")
    username = str(form.get("username") or "").strip()[:80]
    unit_text = str(form.get("unit_id") or "")
    try:
        role = Role(str(form.get("role") or ""))
        unit_id = None if unit_text == "root" else parse_id(unit_text)
        if unit_id is None and unit_text != "root":
            raise NotFound(page._("Choose a unit."))
        membership = auth_service.MembershipIn(unit_id=unit_id, role=role)
        auth_service.check_may_grant(admin_scope=scope, memberships=[membership])
        password = secrets.token_urlsafe(12)
        user = auth_service.create(
            session=page.session,
            username=username,
            password=password,
            memberships=[membership],
            full_name=str(form.get("full_name") or "").strip()[:200],
        )
        user.must_change_password = True
        auth_service.record(
            session=page.session,
            actor=_actor(page),
            action="user_created",
            entity="user",
            entity_id=user.id,
            detail={
                "username": user.username,
                "memberships": auth_service.describe([membership]),
                "via": "web",
            },
        )
        page.session.commit()
    except ValueError:
        return _users_page(page, 422, error=page._("Choose a role."))
    except DomainError as exc:
        page.session.rollback()
        message = page._("The change was refused: %(reason)s", reason=exc.message)
        return _users_page(page, exc.status_code, error=message)
    return _users_page(page, 201, created=user.username, password=password)


@router.post("/admin/users/{user_id}/active")
def set_user_active(page: AdminPage, user_id: str, form: CheckedForm) -> Response:
    """Disable or enable an account (users are never deleted: the audit keeps their names)."""
    assert page.user is not None
    scope = _scope(page, "admin_scope")
    parsed = parse_id(user_id)
    user = page.session.get(User, parsed) if parsed is not None else None
    if user is None or not (scope.whole or any(scope.covers(m.unit_id) for m in user.memberships)):
        return _users_page(page, 404, error=page._("This page does not exist."))
    actor = page.session.get(User, page.user.id)
    try:
        auth_service.check_may_manage(session=page.session, admin_scope=scope, user=user)
        auth_service.update(
            session=page.session,
            user=user,
            actor=actor or _actor(page),
            active=str(form.get("active") or "") == "1",
        )
        page.session.commit()
    except DomainError as exc:
        page.session.rollback()
        message = page._("The change was refused: %(reason)s", reason=exc.message)
        return _users_page(page, exc.status_code, error=message)
    return redirect("/admin/users?saved=1")


# --- units and sites ------------------------------------------------------------------------


def _units_page(page: Page, status_code: int = 200, **values: Any) -> Response:
    scope = _scope(page, "edit_scope")
    tree = queries.flatten(queries.unit_tree(page.session, scope))
    return page.render(
        "admin_units.html",
        status_code,
        units=tree,
        root=scope.whole,
        unit_kinds=labels.translated(labels.UNIT_KINDS, page.translations.gettext),
        **values,
    )


@router.get("/admin/units")
def units_page(page: UnitsPage) -> Response:
    return _units_page(page, saved=page.request.query_params.get("saved"))


def _refused(page: Page, exc: DomainError) -> Response:
    page.session.rollback()
    message = page._("The change was refused: %(reason)s", reason=exc.message)
    return _units_page(page, exc.status_code, error=message)


@router.post("/admin/units")
def create_unit(page: UnitsPage, form: CheckedForm) -> Response:
    """A unit under one of the user's units (a top unit: staff of the whole installation)."""
    scope = _scope(page, "edit_scope")
    parent_id = parse_id(str(form.get("parent_id") or ""))
    try:
        kind = UnitKind(str(form.get("kind") or ""))
        if parent_id is None and not scope.whole:
            raise Forbidden(page._("Choose the unit above it."))
        if parent_id is not None:
            visible_unit(session=page.session, unit_id=parent_id, scope=scope)
        unit = site_service.create_unit(
            session=page.session,
            name=str(form.get("name") or "").strip()[:200],
            kind=kind,
            parent_id=parent_id,
            code=str(form.get("code") or "").strip()[:40] or None,
        )
        auth_service.record(
            session=page.session,
            actor=_actor(page),
            action="unit_created",
            entity="unit",
            entity_id=unit.id,
            detail={"name": unit.name, "kind": unit.kind, "parent_id": parent_id, "via": "web"},
        )
        page.session.commit()
    except ValueError:
        return _units_page(page, 422, error=page._("Choose a kind of unit."))
    except DomainError as exc:
        return _refused(page, exc)
    return redirect("/admin/units?saved=1")


@router.post("/admin/sites")
def create_site(page: UnitsPage, form: CheckedForm) -> Response:
    scope = _scope(page, "edit_scope")
    try:
        unit_id = parse_id(str(form.get("unit_id") or "")) or 0
        visible_unit(session=page.session, unit_id=unit_id, scope=scope)
        site = site_service.create_site(
            session=page.session,
            name=str(form.get("name") or "").strip()[:200],
            unit_id=unit_id,
            scope=scope,
        )
        auth_service.record(
            session=page.session,
            actor=_actor(page),
            action="site_created",
            entity="site",
            entity_id=site.id,
            detail={"name": site.name, "unit_id": unit_id, "via": "web"},
        )
        page.session.commit()
    except DomainError as exc:
        return _refused(page, exc)
    return redirect("/admin/units?saved=1")


@router.post("/admin/sites/{site_id}/move")
def move_site(page: UnitsPage, site_id: str, form: CheckedForm) -> Response:
    """Move a site to another of the user's units (its meetings keep it)."""
    scope = _scope(page, "edit_scope")
    try:
        site = visible_site(session=page.session, site_id=parse_id(site_id) or 0, scope=scope)
        unit_id = parse_id(str(form.get("unit_id") or "")) or 0
        visible_unit(session=page.session, unit_id=unit_id, scope=scope)
        before = site.unit_id
        site_service.update_site(session=page.session, site=site, unit_id=unit_id, scope=scope)
        auth_service.record(
            session=page.session,
            actor=_actor(page),
            action="site_updated",
            entity="site",
            entity_id=site.id,
            detail={"changes": {"unit_id": [before, unit_id]}, "via": "web"},
        )
        page.session.commit()
    except DomainError as exc:
        return _refused(page, exc)
    return redirect("/admin/units?saved=1")


@router.post("/admin/sites/{site_id}/archive")
def archive_site(page: UnitsPage, site_id: str, _form: CheckedForm) -> Response:
    """Disable a site: refused while a meeting needs it; its terminals are revoked."""
    scope = _scope(page, "edit_scope")
    try:
        site = visible_site(session=page.session, site_id=parse_id(site_id) or 0, scope=scope)
        meeting_flows.archive_site(session=page.session, site=site)
        auth_service.record(
            session=page.session,
            actor=_actor(page),
            action="site_archived",
            entity="site",
            entity_id=site.id,
            detail={"via": "web"},
        )
        page.session.commit()
    except DomainError as exc:
        return _refused(page, exc)
    return redirect("/admin/units?saved=1")


# --- terminals ------------------------------------------------------------------------------


def _terminals_page(page: Page, status_code: int = 200, **values: Any) -> Response:
    scope = _scope(page, "it_scope")
    views, _total = terminal_service.list_(
        session=page.session,
        now=utcnow(),
        offline_after_s=page.settings.terminals.offline_after_s,
        limit=500,
        scope=scope,
    )
    sites = page.session.scalars(
        select(Site)
        .where(Site.archived_at.is_(None), Site.guest_uri.is_(None), scope.clause(Site.unit_id))
        .order_by(Site.name)
    )
    return page.render(
        "admin_terminals.html", status_code, views=views, sites=list(sites), **values
    )


@router.get("/admin/terminals")
def terminals_page(page: TerminalsPage) -> Response:
    return _terminals_page(page)


@router.post("/admin/terminals")
def create_terminal(page: TerminalsPage, form: CheckedForm) -> Response:
    """A terminal for a site, with a one-time pairing code shown once."""
    scope = _scope(page, "it_scope")
    try:
        site_id = parse_id(str(form.get("site_id") or "")) or 0
        visible_site(session=page.session, site_id=site_id, scope=scope)
        terminal, _pairing, code = terminal_service.create(
            session=page.session,
            site_id=site_id,
            name=str(form.get("name") or "").strip()[:200],
            secret_key=page.settings.secret_key,
            ttl_min=page.settings.terminals.pairing_code_ttl_min,
            now=utcnow(),
            created_by=_actor(page),
        )
        auth_service.record(
            session=page.session,
            actor=_actor(page),
            action="terminal_created",
            entity="terminal",
            entity_id=terminal.id,
            detail={"site_id": site_id, "name": terminal.name, "via": "web"},
        )
        page.session.commit()
    except DomainError as exc:
        page.session.rollback()
        message = page._("The change was refused: %(reason)s", reason=exc.message)
        return _terminals_page(page, exc.status_code, error=message)
    return _terminals_page(
        page,
        201,
        pairing_code=terminal_service.format_code(code),
        ttl_min=page.settings.terminals.pairing_code_ttl_min,
    )


@router.post("/admin/terminals/{terminal_id}/revoke")
def revoke_terminal(page: TerminalsPage, terminal_id: str, _form: CheckedForm) -> Response:
    scope = _scope(page, "it_scope")
    try:
        terminal = terminal_service.get(
            session=page.session, terminal_id=parse_id(terminal_id) or 0
        )
        if not scope.covers(terminal.site.unit_id):
            raise NotFound(f"terminal {terminal_id} does not exist")
        terminal_service.revoke(session=page.session, terminal=terminal, now=utcnow())
        auth_service.record(
            session=page.session,
            actor=_actor(page),
            action="terminal_revoked",
            entity="terminal",
            entity_id=terminal.id,
            detail={"via": "web"},
        )
        page.session.commit()
    except DomainError as exc:
        page.session.rollback()
        message = page._("The change was refused: %(reason)s", reason=exc.message)
        return _terminals_page(page, exc.status_code, error=message)
    return redirect("/admin/terminals")


# --- the audit log --------------------------------------------------------------------------


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
        scope=_scope(page, "admin_scope"),
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
        scope=_scope(page, "admin_scope"),
        limit=audit_service.MAX_EXPORT_ROWS,
    )
    document = audit_export.audit_document(
        [audit_service.read(r) for r in rows], where=where, tz=page.settings.meetings.default_tz
    )
    return file_response(*render(document, "csv"))
