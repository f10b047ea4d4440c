"""Terminals of the user's sites (IT staff and administrators): status and last heartbeat,
a new terminal with its pairing code shown once, a new code for a replacement device,
revoking."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from confbridge.auth.models import Terminal
from confbridge.errors import NotFound
from confbridge.sites.access import visible_site
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.terminals.models import PairingCode
from confbridge.terminals.pages import kiosk_url
from confbridge.timeutil import utcnow
from confbridge.web.admin.common import (
    ShownAgain,
    TerminalsPage,
    actor,
    attempt,
    required_id,
    scope,
    text,
)
from confbridge.web.context import CheckedForm, Page
from confbridge.web.shared import parse_id, redirect

router = APIRouter(include_in_schema=False)
MAX_TERMINALS_SHOWN = 500


def _list_page(page: Page, status_code: int = 200, **values: Any) -> Response:
    it_scope = scope(page, "it_scope")
    views, total = terminal_service.list_(
        session=page.session,
        now=utcnow(),
        offline_after_s=page.settings.terminals.offline_after_s,
        limit=MAX_TERMINALS_SHOWN,
        scope=it_scope,
    )
    sites = page.session.scalars(
        select(Site)
        .where(Site.archived_at.is_(None), Site.guest_uri.is_(None), it_scope.clause(Site.unit_id))
        .order_by(Site.name)
    )
    return page.render(
        "admin_terminals.html",
        status_code,
        views=views,
        total=total,
        sites=list(sites),
        **values,
    )


def _shown_code(page: Page, pairing: PairingCode, code: str) -> Response:
    """The list with the new code, shown this once (only its hash is stored)."""
    shown = terminal_service.format_code(code)
    return _list_page(
        page,
        201,
        pairing_code=shown,
        pairing_url=kiosk_url(page.request, shown),
        pairing_expires_at=pairing.expires_at,
        pairing_terminal_id=pairing.terminal_id,
        ttl_min=page.settings.terminals.pairing_code_ttl_min,
    )


def _shown_again(page: Page) -> ShownAgain:
    return lambda status_code, error: _list_page(page, status_code, error=error)


@router.get("/admin/terminals")
def terminals_page(page: TerminalsPage) -> Response:
    return _list_page(page, saved=page.request.query_params.get("saved"))


@router.post("/admin/terminals")
def create_terminal(page: TerminalsPage, form: CheckedForm) -> Response:
    """A terminal for a site, with a one-time pairing code shown once."""

    def change() -> Response:
        site_id = required_id(form, "site_id", page._("Choose a site."))
        visible_site(session=page.session, site_id=site_id, scope=scope(page, "it_scope"))
        _terminal, pairing, code = terminal_service.create(
            session=page.session,
            site_id=site_id,
            name=text(form, "name"),
            secret_key=page.settings.secret_key,
            ttl_min=page.settings.terminals.pairing_code_ttl_min,
            now=utcnow(),
            created_by=actor(page),
        )
        return _shown_code(page, pairing, code)

    return attempt(page, change, _shown_again(page))


def _visible_terminal(page: Page, terminal_id: str) -> Terminal:
    """The terminal, if its site is in the user's IT scope; else "not found"."""
    found = terminal_service.get(session=page.session, terminal_id=parse_id(terminal_id) or 0)
    if not scope(page, "it_scope").covers(found.site.unit_id):
        raise NotFound(f"terminal {terminal_id} does not exist")
    return found


@router.post("/admin/terminals/{terminal_id}/pairing-code")
def new_pairing_code(page: TerminalsPage, terminal_id: str, _form: CheckedForm) -> Response:
    """Another one-time code (a replacement device); pairing with it replaces the token."""

    def change() -> Response:
        pairing, code = terminal_service.new_pairing_code(
            session=page.session,
            terminal=_visible_terminal(page, terminal_id),
            secret_key=page.settings.secret_key,
            ttl_min=page.settings.terminals.pairing_code_ttl_min,
            now=utcnow(),
            actor=actor(page),
        )
        return _shown_code(page, pairing, code)

    return attempt(page, change, _shown_again(page))


@router.post("/admin/terminals/{terminal_id}/revoke")
def revoke_terminal(page: TerminalsPage, terminal_id: str, _form: CheckedForm) -> Response:
    """Revoke: the terminal's token stops working with its next request."""

    def change() -> Response:
        terminal_service.revoke(
            session=page.session,
            terminal=_visible_terminal(page, terminal_id),
            now=utcnow(),
            actor=actor(page),
        )
        return redirect("/admin/terminals?saved=1")

    return attempt(page, change, _shown_again(page))
