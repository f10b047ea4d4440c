"""Units and sites: the tree of the user's units, a unit's page (rename, change its kind,
disable it with everything below it, add a site), a site's page (rename, room system address,
move, disable), and a province imported from the divisions data. The secretariat (and
administrators) of a unit act on its subtree; other units are "not found"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.datastructures import FormData

from confbridge.meetings import flows as meeting_flows
from confbridge.sites import divisions
from confbridge.sites import service as site_service
from confbridge.sites.access import visible_unit
from confbridge.sites.models import Site, Unit, UnitKind
from confbridge.timeutil import utcnow
from confbridge.web import labels, queries
from confbridge.web.admin.common import (
    Refused,
    ShownAgain,
    UnitsPage,
    actor,
    attempt,
    choice,
    form_id,
    required_id,
    scope,
    text,
)
from confbridge.web.context import CheckedForm, Page
from confbridge.web.shared import not_found, parse_id, redirect

router = APIRouter(include_in_schema=False)


def _edit_scope_values(page: Page) -> dict[str, Any]:
    """The units the forms offer (enabled ones) and the kinds of unit."""
    edit_scope = scope(page, "edit_scope")
    return {
        "targets": queries.flatten(queries.unit_tree(page.session, edit_scope)),
        "root": edit_scope.whole,
        "unit_kinds": labels.translated(labels.UNIT_KINDS, page.translations.gettext),
    }


def _tree_page(page: Page, status_code: int = 200, **values: Any) -> Response:
    tree = queries.unit_tree(page.session, scope(page, "edit_scope"), with_disabled=True)
    return page.render(
        "admin_units.html",
        status_code,
        units=queries.flatten(tree),
        **_edit_scope_values(page),
        **values,
    )


def _shown_tree(page: Page) -> ShownAgain:
    return lambda status_code, error: _tree_page(page, status_code, error=error)


def _unit_kind(page: Page, form: FormData) -> UnitKind:
    return choice(UnitKind, text(form, "kind", 20), page._("Choose a kind of unit."))


@router.get("/admin/units")
def units_page(page: UnitsPage) -> Response:
    return _tree_page(page, saved=page.request.query_params.get("saved"))


@router.post("/admin/units")
def create_unit(page: UnitsPage, form: CheckedForm) -> Response:
    """A unit under one of the user's units (a top unit: staff of the whole installation)."""

    def change() -> Response:
        edit_scope = scope(page, "edit_scope")
        parent_id = form_id(form, "parent_id")
        kind = _unit_kind(page, form)
        if parent_id is None and not edit_scope.whole:
            raise Refused(page._("Choose the unit above it."), 403)
        if parent_id is not None:
            visible_unit(session=page.session, unit_id=parent_id, scope=edit_scope)
        unit = site_service.create_unit(
            session=page.session,
            name=text(form, "name", 300),
            kind=kind,
            parent_id=parent_id,
            code=text(form, "code", 40) or None,
            actor=actor(page),
        )
        return redirect(f"/admin/units/{unit.id}?saved=1")

    return attempt(page, change, _shown_tree(page))


@router.post("/admin/units/import")
def import_province(page: UnitsPage, form: CheckedForm) -> Response:
    """A province with its communes and wards and one hall each, from the divisions data
    (`vietnam-provinces`); run again, it adds only what is missing. Top units are made by
    staff of the whole installation."""

    def change() -> Response:
        if not scope(page, "edit_scope").whole:
            raise Refused(
                page._("Only staff of the whole installation may import a province."), 403
            )
        query = text(form, "province", 100)
        if not query:
            raise Refused(page._("Give the province's name or code."))
        result = divisions.import_province(session=page.session, query=query, actor=actor(page))
        assert result.province is not None
        return _tree_page(
            page,
            201,
            imported=page._(
                "%(province)s: %(units)s units and %(sites)s sites created, %(unchanged)s "
                "already there.",
                province=result.province.name,
                units=result.units_created,
                sites=result.sites_created,
                unchanged=result.unchanged,
            ),
        )

    return attempt(page, change, _shown_tree(page))


# --- one unit -------------------------------------------------------------------------------


def _unit_or_none(page: Page, unit_id: str) -> Unit | None:
    parsed = parse_id(unit_id)
    unit = page.session.get(Unit, parsed) if parsed is not None else None
    if unit is None or unit.kind == UnitKind.guest:
        return None
    return unit if scope(page, "edit_scope").covers(unit.id) else None


def _unit_page(page: Page, unit: Unit, status_code: int = 200, **values: Any) -> Response:
    active_sites = [s for s in unit.sites if s.archived_at is None and s.guest_uri is None]
    return page.render(
        "admin_unit.html",
        status_code,
        unit=unit,
        sites=active_sites,
        children=[c for c in unit.children if scope(page, "edit_scope").covers(c.id)],
        **_edit_scope_values(page),
        **values,
    )


def _change_unit(page: Page, unit_id: str, change: Callable[[Unit], None]) -> Response:
    """Run `change(unit)` on a unit of the user's scope; back to its page."""
    unit = _unit_or_none(page, unit_id)
    if unit is None:
        return not_found(page)

    def run() -> Response:
        change(unit)
        return redirect(f"/admin/units/{unit.id}?saved=1")

    def shown_again(status_code: int, error: str) -> Response:
        fresh = page.session.get(Unit, unit.id) or unit
        return _unit_page(page, fresh, status_code, error=error)

    return attempt(page, run, shown_again)


@router.get("/admin/units/{unit_id}")
def unit_page(page: UnitsPage, unit_id: str) -> Response:
    unit = _unit_or_none(page, unit_id)
    if unit is None:
        return not_found(page)
    return _unit_page(page, unit, saved=page.request.query_params.get("saved"))


@router.post("/admin/units/{unit_id}")
def update_unit(page: UnitsPage, unit_id: str, form: CheckedForm) -> Response:
    """Rename the unit or change its kind (audited before → after)."""

    def change(unit: Unit) -> None:
        site_service.update_unit(
            session=page.session,
            unit=unit,
            actor=actor(page),
            name=text(form, "name", 300),
            kind=_unit_kind(page, form),
        )

    return _change_unit(page, unit_id, change)


@router.post("/admin/units/{unit_id}/disable")
def disable_unit(page: UnitsPage, unit_id: str, _form: CheckedForm) -> Response:
    """Disable the unit and every unit below it; their sites are archived (terminals
    revoked). Refused while a series still needs one of them. Done from the unit above: staff
    do not disable their own unit (a province: staff of the whole installation)."""

    def change(unit: Unit) -> None:
        if not scope(page, "edit_scope").covers(unit.parent_id):
            raise Refused(page._("Only staff of the unit above may disable this unit."), 403)
        meeting_flows.disable_unit(session=page.session, unit=unit, actor=actor(page), now=utcnow())

    return _change_unit(page, unit_id, change)


# --- sites ----------------------------------------------------------------------------------


@router.post("/admin/sites")
def create_site(page: UnitsPage, form: CheckedForm) -> Response:
    def change() -> Response:
        unit_id = required_id(form, "unit_id", page._("Choose a unit."))
        visible_unit(session=page.session, unit_id=unit_id, scope=scope(page, "edit_scope"))
        site_service.create_site(
            session=page.session,
            name=text(form, "name", 300),
            unit_id=unit_id,
            scope=scope(page, "edit_scope"),
            actor=actor(page),
        )
        return redirect(f"/admin/units/{unit_id}?saved=1")

    return attempt(page, change, _shown_tree(page))


def _site_or_none(page: Page, site_id: str) -> Site | None:
    parsed = parse_id(site_id)
    site = page.session.get(Site, parsed) if parsed is not None else None
    if site is None or site.guest_uri is not None:
        return None
    return site if scope(page, "edit_scope").covers(site.unit_id) else None


def _site_page(page: Page, site: Site, status_code: int = 200, **values: Any) -> Response:
    return page.render(
        "admin_site.html", status_code, site=site, **_edit_scope_values(page), **values
    )


def _change_site(
    page: Page, site_id: str, change: Callable[[Site], None], back: str = "site"
) -> Response:
    """Run `change(site)` on a site of the user's scope; back to its page (or to its unit's,
    when `back` is "unit"), or to the page it came from with the reason when refused."""
    site = _site_or_none(page, site_id)
    if site is None:
        return not_found(page)

    def run() -> Response:
        change(site)
        if back == "unit":
            return redirect(f"/admin/units/{site.unit_id}?saved=1")
        return redirect(f"/admin/sites/{site.id}?saved=1")

    def shown_again(status_code: int, error: str) -> Response:
        fresh = page.session.get(Site, site.id) or site
        return _site_page(page, fresh, status_code, error=error)

    return attempt(page, run, shown_again)


@router.get("/admin/sites/{site_id}")
def site_page(page: UnitsPage, site_id: str) -> Response:
    site = _site_or_none(page, site_id)
    if site is None:
        return not_found(page)
    return _site_page(page, site, saved=page.request.query_params.get("saved"))


@router.post("/admin/sites/{site_id}")
def update_site(page: UnitsPage, site_id: str, form: CheckedForm) -> Response:
    """Rename the site, set or clear its room system's SIP address, or move it to another of
    the user's units (its meetings keep it); audited before → after."""

    def change(site: Site) -> None:
        edit_scope = scope(page, "edit_scope")
        unit_id = required_id(form, "unit_id", page._("Choose a unit."))
        visible_unit(session=page.session, unit_id=unit_id, scope=edit_scope)
        sip_uri = text(form, "sip_uri", 300)
        site_service.update_site(
            session=page.session,
            site=site,
            name=text(form, "name", 300),
            unit_id=unit_id,
            sip_uri=sip_uri or None,
            clear_sip_uri=not sip_uri,
            scope=edit_scope,
            actor=actor(page),
        )

    return _change_site(page, site_id, change)


@router.post("/admin/sites/{site_id}/move")
def move_site(page: UnitsPage, site_id: str, form: CheckedForm) -> Response:
    """Move a site to another of the user's units, from the tree."""

    def change(site: Site) -> None:
        edit_scope = scope(page, "edit_scope")
        unit_id = required_id(form, "unit_id", page._("Choose a unit."))
        visible_unit(session=page.session, unit_id=unit_id, scope=edit_scope)
        site_service.update_site(
            session=page.session, site=site, unit_id=unit_id, scope=edit_scope, actor=actor(page)
        )

    return _change_site(page, site_id, change, back="unit")


@router.post("/admin/sites/{site_id}/archive")
def archive_site(page: UnitsPage, site_id: str, _form: CheckedForm) -> Response:
    """Disable a site: refused while a meeting needs it; its terminals are revoked."""

    def change(site: Site) -> None:
        if site.archived_at is not None:
            raise Refused(page._("This site is already disabled."), 409)
        meeting_flows.archive_site(session=page.session, site=site, actor=actor(page))

    return _change_site(page, site_id, change, back="unit")
