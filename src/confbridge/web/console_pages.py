"""The chair console: the floor actions, extending or ending the meeting, and the programme
viewer's join grant."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from confbridge import signing
from confbridge.auth.models import User
from confbridge.auth.service import Principal
from confbridge.bridge import service as bridge_service
from confbridge.bridge import timing as bridge_timing
from confbridge.errors import Conflict, DomainError, Unavailable
from confbridge.live import LiveBusDep, publish_floor
from confbridge.timeutil import utcnow
from confbridge.web import labels
from confbridge.web.context import CheckedForm, CheckedRequest, EditorPage, Page
from confbridge.web.domain_messages import explain
from confbridge.web.gallery_pages import gallery_context, programme_window
from confbridge.web.occurrence_pages import (
    after_timing_change,
    occurrence_context,
    occurrence_or_none,
)
from confbridge.web.shared import local_path, not_found, parse_id, redirect, timing_refusal
from confbridge_kernel.contracts import FloorAction, PeerRole, room_name

router = APIRouter(include_in_schema=False)
CONSOLE_SITE_ID = 0  # the console watches the programme; it is not a site of the meeting
CONSOLE_ACTIONS = frozenset(
    {
        FloorAction.give,
        FloorAction.take,
        FloorAction.mute,
        FloorAction.unmute,
        FloorAction.mute_all,
        FloorAction.stop_content,
    }
)


@router.get("/occurrences/{occurrence_id}/console")
def console(page: EditorPage, occurrence_id: str) -> Response:
    occurrence = occurrence_or_none(page, occurrence_id, edit=True)
    if occurrence is None:
        return not_found(page)
    context = occurrence_context(page, occurrence)
    return page.render(
        "console.html",
        message=None,
        actions=labels.FLOOR_ACTIONS,
        media_urls=page.media_urls(),
        **context,
        **gallery_context(page, occurrence, controls=True),
    )


def _floor_message(page: Page, exc: DomainError) -> str:
    if exc.status_code in (502, 503) and not isinstance(exc, Unavailable):
        return page._("The media server cannot be reached; try again.")
    return explain(page, exc)


@router.post("/occurrences/{occurrence_id}/floor")
def floor(page: EditorPage, occurrence_id: str, form: CheckedForm, live: LiveBusDep) -> Response:
    """A floor action from the console: JSON for its script, or the console page again."""
    wants_json = "application/json" in page.request.headers.get("accept", "")
    occurrence = occurrence_or_none(page, occurrence_id, edit=True)
    if occurrence is None:
        if wants_json:
            return JSONResponse({"detail": page._("This page does not exist.")}, 404)
        return not_found(page)
    action_text = str(form.get("action") or "")
    site_id = parse_id(str(form.get("site_id") or ""))
    try:
        action = FloorAction(action_text)
        if action not in CONSOLE_ACTIONS:
            raise ValueError(action_text)
    except ValueError:
        message = page._("Unknown action.")
        if wants_json:
            return JSONResponse({"detail": message}, 422)
        return page.render(
            "console.html", 422, message=message, actions=labels.FLOOR_ACTIONS,
            media_urls=page.media_urls(),
            **occurrence_context(page, occurrence),
            **gallery_context(page, occurrence, controls=True),
        )  # fmt: skip
    assert page.user is not None
    user = page.session.get(User, page.user.id)
    settings = page.settings
    try:
        state = bridge_service.floor(
            session=page.session,
            occurrence_id=occurrence.id,
            principal=Principal(user=user),
            action=action,
            site_id=site_id,
            signer=signing.signer_for(settings.grant_key_path),
        )
        page.session.commit()
    except DomainError as exc:
        page.session.rollback()
        message = _floor_message(page, exc)
        if wants_json:
            return JSONResponse({"detail": message}, exc.status_code)
        context = occurrence_context(page, occurrence)
        return page.render(
            "console.html", exc.status_code, message=message, actions=labels.FLOOR_ACTIONS,
            media_urls=page.media_urls(),
            **context,
            **gallery_context(page, occurrence, controls=True),
        )  # fmt: skip
    publish_floor(live, occurrence.id, state)
    if wants_json:
        return JSONResponse({"floor": state.model_dump(mode="json")})
    return redirect(f"/occurrences/{occurrence.id}/console")


@router.post("/occurrences/{occurrence_id}/schedule")
def schedule(page: EditorPage, occurrence_id: str, form: CheckedForm, live: LiveBusDep) -> Response:
    """Extend a running meeting (`action` extend, `minutes` 15, 30 or 60) or end it now
    (`action` end), from the console (JSON) or the occurrence page (back to `next`)."""
    wants_json = "application/json" in page.request.headers.get("accept", "")
    occurrence = occurrence_or_none(page, occurrence_id, edit=True)
    if occurrence is None:
        if wants_json:
            return JSONResponse({"detail": page._("This page does not exist.")}, 404)
        return not_found(page)
    back = local_path(str(form.get("next") or ""), f"/occurrences/{occurrence.id}")
    action = str(form.get("action") or "")
    minutes = str(form.get("minutes") or "")
    assert page.user is not None
    actor, settings, now = f"user:{page.user.username}", page.settings.meetings, utcnow()
    try:
        if action == "extend" and minutes in {str(m) for m in bridge_timing.EXTENSIONS_MIN}:
            changed = bridge_timing.extend(
                session=page.session,
                occurrence=occurrence,
                minutes=int(minutes),
                settings=settings,
                now=now,
                actor=actor,
            )
        elif action == "end":
            changed = bridge_timing.end_now(
                session=page.session, occurrence=occurrence, settings=settings, now=now, actor=actor
            )
        else:
            message = page._("Unknown action.")
            if wants_json:
                return JSONResponse({"detail": message}, 422)
            return page.render("error.html", 422, message=message)
        page.session.commit()
    except DomainError as exc:
        page.session.rollback()
        message = timing_refusal(page, exc)
        if isinstance(exc, Conflict) and exc.extra.get("conflicts"):
            first = exc.extra["conflicts"][0]
            message = page._(
                "The meeting cannot run longer: %(site)s is booked for “%(title)s” then.",
                site=first.get("site_name", ""),
                title=first.get("series_title", ""),
            )
        if wants_json:
            return JSONResponse({"detail": message}, exc.status_code)
        return page.render("error.html", exc.status_code, message=message)
    after_timing_change(page, live, occurrence, [changed])
    if wants_json:
        return JSONResponse(
            {"schedule": bridge_timing.schedule_view(occurrence, page.settings.meetings)}
        )
    return redirect(back)


@router.post("/occurrences/{occurrence_id}/console/grant")
def console_grant(page: EditorPage, occurrence_id: str, _checked: CheckedRequest) -> Response:
    """A viewer's join grant for the console's programme video (WHEP)."""
    occurrence = occurrence_or_none(page, occurrence_id, edit=True)
    if occurrence is None:
        return JSONResponse({"detail": page._("This page does not exist.")}, 404)
    settings = page.settings
    now = utcnow()
    closes_at, refusal = programme_window(page, occurrence, now)
    if refusal is not None:
        return refusal
    expires_at = bridge_service.grant_expiry(
        end_at=closes_at, now=now, grant_ttl_s=settings.sfu.grant_ttl_s
    ).replace(microsecond=0)
    room = room_name(occurrence.id)
    chair_site = bridge_service.chair_site_id(session=page.session, occurrence=occurrence)
    try:
        signer = signing.signer_for(settings.grant_key_path)
        grant = bridge_service.issue_grant(
            signer=signer,
            occurrence=occurrence,
            site_id=CONSOLE_SITE_ID,
            site_name=page._("Chair console"),
            role=PeerRole.viewer,
            chair_site=chair_site,
            now=now,
            expires_at=expires_at,
            overrun_grace_min=settings.meetings.overrun_grace_min,
        )
        # Placed like a terminal's viewer: on the room's node, or a node relaying it.
        _origin, viewing = bridge_service.place_sessions(
            session=page.session,
            occurrence=occurrence,
            chair_site=chair_site,
            signer=signer,
            now=now,
            overrun_grace_min=settings.meetings.overrun_grace_min,
        )
        page.session.commit()
    except DomainError as exc:
        page.session.rollback()
        return JSONResponse({"detail": explain(page, exc)}, exc.status_code)
    return JSONResponse(
        {
            "whep_url": f"{viewing.public_url}/whep/{room}",
            "token": grant.token,
            # The same STUN/TURN servers a terminal gets (TURN credentials for "site" 0).
            "ice_servers": bridge_service.ice_servers(
                settings.sfu, site_id=CONSOLE_SITE_ID, now=now, expires_at=expires_at
            ),
        }
    )
