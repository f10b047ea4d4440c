"""A site's page: its unit, its room system's SIP address (editable by the secretariat and IT)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from confbridge.errors import DomainError
from confbridge.sites import service as site_service
from confbridge.sites.models import Site
from confbridge.web.context import CheckedForm, Page, UserPage
from confbridge.web.domain_messages import explain
from confbridge.web.shared import not_found, parse_id, redirect

router = APIRouter(include_in_schema=False)


def _site_or_none(page: Page, site_id: str) -> Site | None:
    """The site, if the user's scope holds it (another unit's site is "not found")."""
    assert page.user is not None
    parsed = parse_id(site_id)
    site = page.session.get(Site, parsed) if parsed is not None else None
    if site is None or not page.user.scope.covers(site.unit_id):
        return None
    return site


def _may_edit(page: Page, site: Site) -> bool:
    """As the API's site editors: the secretariat or IT of the site's unit (or above)."""
    assert page.user is not None
    editable = site.archived_at is None and site.guest_uri is None
    editors = page.user.edit_scope.union(page.user.it_scope)
    return editable and editors.covers(site.unit_id)


def _render(page: Page, site: Site, status_code: int = 200, **values: object) -> Response:
    return page.render(
        "site.html", status_code, site=site, may_edit=_may_edit(page, site), **values
    )


@router.get("/sites/{site_id}")
def site_page(page: UserPage, site_id: str) -> Response:
    site = _site_or_none(page, site_id)
    if site is None:
        return not_found(page)
    saved = page.request.query_params.get("saved") == "1"
    return _render(page, site, saved=saved, sip_uri=site.sip_uri or "")


@router.post("/sites/{site_id}")
def update_site(page: UserPage, site_id: str, form: CheckedForm) -> Response:
    site = _site_or_none(page, site_id)
    if site is None:
        return not_found(page)
    if not _may_edit(page, site):
        return _render(page, site, 403, error=page._("You may not change this site."))
    assert page.user is not None
    typed = str(form.get("sip_uri") or "").strip()
    try:
        site_service.update_site(
            session=page.session,
            site=site,
            sip_uri=typed or None,
            clear_sip_uri=not typed,
            scope=page.user.scope,
            actor=f"user:{page.user.username}",
        )
        page.session.commit()
    except DomainError as exc:
        page.session.rollback()
        site = page.session.get(Site, site.id) or site
        message = page._("The change was refused: %(reason)s", reason=explain(page, exc))
        return _render(page, site, exc.status_code, error=message, sip_uri=typed)
    return redirect(f"/sites/{site.id}?saved=1")
