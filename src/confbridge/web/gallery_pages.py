"""The chair's gallery (điểm danh): every connected hall's thumbnail, paged, with a roll call.

The chair console shows it with the floor at hand; secretariat and IT staff open the same
gallery read-only at `/occurrences/{id}/gallery`. Both watch it with a gallery grant from
`bridge_service.gallery` (the one place grants are built is `bridge_service.issue_grant`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from confbridge import signing
from confbridge.auth.models import User
from confbridge.auth.service import Principal
from confbridge.bridge import service as bridge_service
from confbridge.errors import DomainError
from confbridge.meetings.models import Occurrence, OccurrenceStatus
from confbridge.timeutil import utcnow
from confbridge.web import labels, queries
from confbridge.web.context import CheckedRequest, Page, UserPage
from confbridge.web.occurrence_pages import occurrence_context, occurrence_or_none
from confbridge.web.security import NotAllowed
from confbridge.web.shared import not_found, script_json
from confbridge_kernel.contracts import GALLERY_PAGE_TILES

router = APIRouter(include_in_schema=False)


def gallery_context(page: Page, occurrence: Occurrence, *, controls: bool) -> dict[str, Any]:
    """What `_gallery.html` needs: the halls in the order of the site list, the words of its
    script, and whether the floor is at hand (the chair console) or not (read-only)."""
    sites = queries.invited_sites(session=page.session, occurrence_id=occurrence.id)
    halls = [{"id": s.site_id, "name": s.name, "chair": s.is_chair} for s in sites]
    words = {
        "page": page._("Page %(page)s of %(pages)s"),
        "halls": page._("%(connected)s of %(invited)s sites connected"),
        "rollcall": page._("Roll call: site %(position)s of %(total)s"),
        "not_joined": page._("Not connected"),
        "connecting": page._("Connecting to the sites' pictures…"),
        "connected": page._("Sites' pictures connected."),
        "failed": page._("The sites' pictures cannot be shown: %(reason)s"),
    }
    return {
        "gallery_controls": controls,
        "gallery_page_size": GALLERY_PAGE_TILES,
        "gallery_halls": script_json(halls),
        "gallery_labels": script_json(words),
    }


def _may_watch(page: Page) -> bool:
    return page.user is not None and page.user.role in bridge_service.GALLERY_ROLES


@router.get("/occurrences/{occurrence_id}/gallery")
def gallery_page(page: UserPage, occurrence_id: str) -> Response:
    """The gallery read-only, for secretariat and IT staff (no floor controls)."""
    if not _may_watch(page):
        raise NotAllowed
    occurrence = occurrence_or_none(page, occurrence_id)
    if occurrence is None:
        return not_found(page)
    context = occurrence_context(page, occurrence)
    return page.render(
        "gallery.html",
        media_urls=page.media_urls(),
        actions=labels.FLOOR_ACTIONS,
        **context,
        **gallery_context(page, occurrence, controls=False),
    )


def programme_window(
    page: Page, occurrence: Occurrence, now: datetime
) -> tuple[datetime, JSONResponse | None]:
    """When the meeting's programme closes, and the 409 to answer if it cannot be watched now
    (cancelled, or outside its join window)."""
    settings = page.settings
    opens_at, closes_at = bridge_service.join_window(
        occurrence=occurrence,
        join_early_min=settings.sfu.join_early_min,
        overrun_grace_min=settings.meetings.overrun_grace_min,
    )
    if occurrence.status == OccurrenceStatus.cancelled.value:
        return closes_at, JSONResponse({"detail": page._("This meeting has been cancelled.")}, 409)
    if not opens_at <= now < closes_at:
        detail = page._(
            "The programme can be watched from %(opens)s until %(closes)s.",
            opens=page.fmt.datetime(opens_at),
            closes=page.fmt.datetime(closes_at),
        )
        return closes_at, JSONResponse({"detail": detail}, 409)
    return closes_at, None


@router.post("/occurrences/{occurrence_id}/gallery/grant")
def gallery_grant(page: UserPage, occurrence_id: str, _checked: CheckedRequest) -> Response:
    """A gallery grant for the page's script (WHEP to the room's node)."""
    if not _may_watch(page):
        return JSONResponse({"detail": page._("Your role may not use this page.")}, 403)
    occurrence = occurrence_or_none(page, occurrence_id)
    if occurrence is None:
        return JSONResponse({"detail": page._("This page does not exist.")}, 404)
    settings = page.settings
    now = utcnow()
    _closes_at, refusal = programme_window(page, occurrence, now)
    if refusal is not None:
        return refusal
    assert page.user is not None
    user = page.session.get(User, page.user.id)
    try:
        info = bridge_service.gallery(
            session=page.session,
            occurrence_id=occurrence.id,
            principal=Principal(user=user),
            settings=settings.sfu,
            signer=signing.signer_for(settings.grant_key_path),
            now=now,
            tz=settings.meetings.default_tz,
            viewer_name=page._("Gallery of %(name)s", name=page.user.display_name),
            overrun_grace_min=settings.meetings.overrun_grace_min,
        )
        page.session.commit()
    except DomainError as exc:
        page.session.rollback()
        return JSONResponse({"detail": exc.message}, exc.status_code)
    return JSONResponse(
        {"whep_url": info.whep_url, "token": info.token, "ice_servers": info.ice_servers}
    )
