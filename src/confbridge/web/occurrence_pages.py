"""An occurrence: its page with live site status (server-sent events) and its edit form."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from confbridge import signing
from confbridge.bridge import timing as bridge_timing
from confbridge.db import Database
from confbridge.errors import Conflict, DomainError
from confbridge.link_quality import LinkLimits
from confbridge.live import LiveBus, LiveBusDep, occurrence_topic
from confbridge.meetings import access as meeting_access
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.models import Occurrence, OccurrenceStatus
from confbridge.meetings.occurrences import OccurrenceChange
from confbridge.settings import Settings
from confbridge.timeutil import utcnow
from confbridge.web import i18n, labels, live_status, queries, record_pages, recording_views
from confbridge.web.context import CheckedForm, EditorPage, Page, UserPage, language_of
from confbridge.web.forms import OccurrenceForm
from confbridge.web.report_pages import ATTENDANCE_STATUSES, occurrence_attendance_or_none
from confbridge.web.security import session_user
from confbridge.web.shared import (
    not_found,
    parse_id,
    redirect,
    script_json,
    series_clashes,
    timing_refusal,
)

router = APIRouter(include_in_schema=False)
# A comment line every so often keeps proxies from closing a quiet event stream.
SSE_HEARTBEAT_S = 15.0
# Changes arriving together are sent as one update.
SSE_COALESCE_S = 0.2
# A stream ends after this long and the browser reconnects (with a fresh snapshot): an open
# stream would otherwise hold up a server shutdown, which waits for responses to finish.
SSE_STREAM_MAX_S = 30.0
SSE_RETRY_MS = 1000
# What `bridge.timing.publish_schedule` sends: the meeting was extended or ended.
SCHEDULE_MESSAGE = "schedule"


def occurrence_or_none(page: Page, occurrence_id: str, *, edit: bool = False) -> Occurrence | None:
    """The occurrence if the user's scope sees it (with `edit`: if the user may change it, its
    chair being in the user's booking scope); else None, for a "not found" page."""
    assert page.user is not None
    parsed = parse_id(occurrence_id)
    if parsed is None:
        return None
    try:
        if edit:
            return meeting_access.editable_occurrence(
                session=page.session,
                occurrence_id=parsed,
                read=page.user.scope,
                write=page.user.edit_scope,
            )
        return meeting_access.visible_occurrence(
            session=page.session, occurrence_id=parsed, scope=page.user.scope
        )
    except DomainError:
        return None


def _live_labels(page: Page) -> dict[str, Any]:
    return {
        "states": labels.translated(labels.SITE_STATES, page.translations.gettext),
        "qualities": labels.translated(labels.QUALITIES, page.translations.gettext),
        "speaking": page._("Speaking"),
        "muted": page._("Muted"),
        "hand": page._("Hand raised (%(position)s)"),
        "none": page._("None"),
        "connection": page._("Live updates"),
        "connected": page._("connected"),
        "reconnecting": page._("reconnecting…"),
        "failed": page._("The action failed: %(reason)s"),
        "not_open": page._("The meeting room is not open yet: it opens when a site joins."),
        "unreachable": page._("The media server cannot be reached; try again."),
        "programme_failed": page._("The programme cannot be shown: %(reason)s"),
        "programme_on": page._("Receiving the programme's picture and sound."),
        "programme_wait": page._("Connecting to the programme…"),
        "programme_no_chair": page._(
            "Connected to the media server; the chair site has not joined yet."
        ),
        "programme_no_picture": page._("Connected; waiting for the speaker's picture…"),
        "sound_on": page._("Turn the sound on"),
        "sound_off": page._("Turn the sound off"),
        "sound_blocked": page._("The programme plays without sound: press “Turn the sound on”."),
        "not_joined_yet": page._("%(name)s (not joined yet)"),
        "rtt": page._("RTT %(rtt)s ms"),
        "loss": page._("loss"),
        "ends_at": page._("Ends at"),
        "meeting_ended": page._("The meeting has ended."),
        "overrun": page._(
            "The meeting has passed its end (%(end)s). It ends by itself at %(closes)s unless "
            "it is extended."
        ),
    }


def occurrence_context(page: Page, occurrence: Occurrence) -> dict[str, Any]:
    series = occurrence.series
    assert page.user is not None
    sites = queries.invited_sites(
        session=page.session, occurrence_id=occurrence.id, scope=page.user.scope
    )
    chair = next((s.site_id for s in sites if s.is_chair), series.chair_site_id)
    status = live_status.load(
        session=page.session,
        occurrence_id=occurrence.id,
        site_ids=[s.site_id for s in sites],
        chair_site_id=chair,
        now=utcnow(),
        limits=LinkLimits.from_settings(page.settings.alerts),
    )
    meetings = page.settings.meetings
    now = utcnow()
    attended = bridge_timing.attended_site_ids(session=page.session, occurrence_id=occurrence.id)
    return {
        "occurrence": occurrence,
        "series": series,
        # running over, extending, ending (`bridge.timing`)
        "is_live": occurrence_service.is_live(
            occurrence, now=now, overrun_grace_min=meetings.overrun_grace_min
        ),
        "closes_at": occurrence_service.closes_at(
            occurrence, overrun_grace_min=meetings.overrun_grace_min
        ),
        "extensions": bridge_timing.EXTENSIONS_MIN,
        "schedule_json": script_json(bridge_timing.schedule_view(occurrence, meetings)),
        "attended_count": len(attended),
        "sites": sites,
        "site_names": {s.site_id: s.name for s in sites},
        "chair_site_id": chair,
        "live": status,
        "views": {s.site_id: status.site_view(s.site_id) for s in sites},
        "counts": status.counts(),
        "kinds": labels.KINDS,
        "modes": labels.MODES,
        "states": labels.SITE_STATES,
        "qualities": labels.QUALITIES,
        "statuses": labels.OCCURRENCE_STATUSES,
        "live_labels": script_json(_live_labels(page)),
        "live_initial": script_json(status.view()),
        "site_names_json": script_json({str(s.site_id): s.name for s in sites}),
        "attendance": _attendance(page, occurrence, attended=bool(attended)),
        "attendance_statuses": ATTENDANCE_STATUSES,
        "record": record_pages.record_view(page, occurrence),
        **recording_views.recording_context(page, occurrence),
        "notice_kinds": record_pages.NOTICE_KINDS,
        "notice_states": record_pages.NOTICE_STATES,
    }


def after_timing_change(
    page: Page, live: LiveBus, occurrence: Occurrence, changes: list[bridge_timing.RoomChange]
) -> None:
    """Once a change of when the meeting runs is committed: its room's media servers and the
    pages following it are told."""
    bridge_timing.tell_rooms(
        session=page.session,
        changes=changes,
        signer=signing.signer_for(page.settings.grant_key_path),
    )
    bridge_timing.publish_schedule(live, occurrence, page.settings.meetings)


@router.get("/occurrences/{occurrence_id}")
def occurrence_page(page: UserPage, occurrence_id: str) -> Response:
    occurrence = occurrence_or_none(page, occurrence_id)
    if occurrence is None:
        return not_found(page)
    form = OccurrenceForm.from_occurrence(occurrence, page.settings.meetings.default_tz)
    context = occurrence_context(page, occurrence)
    recordings = recording_views.recordings_view(page, occurrence)
    return page.render(
        "occurrence.html",
        form=form,
        message=None,
        conflicts=[],
        recordings=recordings,
        **context,
    )


def _attendance(page: Page, occurrence: Occurrence, *, attended: bool) -> Any:
    """Attendance once the meeting has started (figures so far while it runs); a cancelled
    meeting that sites joined keeps it."""
    if occurrence.start_at > utcnow():
        return None
    if occurrence.status != OccurrenceStatus.scheduled.value and not attended:
        return None
    return occurrence_attendance_or_none(page, occurrence.id)


@router.post("/occurrences/{occurrence_id}/edit")
def edit_occurrence(
    page: EditorPage, occurrence_id: str, form_data: CheckedForm, live: LiveBusDep
) -> Response:
    occurrence = occurrence_or_none(page, occurrence_id, edit=True)
    if occurrence is None:
        return not_found(page)
    form = OccurrenceForm.from_form(form_data)
    tz = page.settings.meetings.default_tz
    checked = form.validate(page.translations.gettext, tz)
    message: str | None = None
    conflicts: list[dict[str, Any]] = []
    status_code = 422
    if checked is None:
        message = page._("Please correct the fields marked below.")
    else:
        start_at, status = checked
        assert page.user is not None
        try:
            changed = bridge_timing.change_occurrence(
                session=page.session,
                occurrence=occurrence,
                change=OccurrenceChange(
                    start_at=start_at if start_at != occurrence.start_at else None,
                    status=OccurrenceStatus(status),
                    record_past=form.record_past,
                    confirm=form.confirm,
                    reason=form.reason,
                ),
                settings=page.settings.meetings,
                now=utcnow(),
                actor=f"user:{page.user.username}",
                detail={"via": "web"},
            )
            page.session.commit()
            after_timing_change(page, live, occurrence, [changed])
            return redirect(f"/occurrences/{occurrence.id}?saved=1")
        except Conflict as exc:
            page.session.rollback()
            conflicts, _count = series_clashes(page, exc)
            message = None if conflicts else timing_refusal(page, exc)
            status_code = 409
        except DomainError as exc:
            page.session.rollback()
            message = timing_refusal(page, exc)
            status_code = exc.status_code
        occurrence = page.session.get(Occurrence, occurrence.id) or occurrence
    context = occurrence_context(page, occurrence)
    return page.render(
        "occurrence.html", status_code, form=form, message=message, conflicts=conflicts, **context
    )


def _stream_setup(
    database: Database, settings: Settings, request: Request, occurrence_id: int
) -> tuple[bool, list[int], int] | None:
    """Who may watch, and the occurrence's sites; None when the occurrence does not exist."""
    with database.session() as session:
        user = session_user(request, session, settings.secret_key)
        if user is None:
            return False, [], 0
        try:
            occurrence = meeting_access.visible_occurrence(
                session=session, occurrence_id=occurrence_id, scope=user.scope
            )
        except DomainError:
            return None
        sites = queries.invited_sites(
            session=session, occurrence_id=occurrence_id, scope=user.scope
        )
        chair = next((s.site_id for s in sites if s.is_chair), occurrence.series.chair_site_id)
        return True, [s.site_id for s in sites], chair


def _load_status(
    database: Database, settings: Settings, occurrence_id: int, site_ids: list[int], chair: int
) -> live_status.LiveStatus:
    with database.session() as session:
        return live_status.load(
            session=session,
            occurrence_id=occurrence_id,
            site_ids=site_ids,
            chair_site_id=chair,
            now=utcnow(),
            limits=LinkLimits.from_settings(settings.alerts),
        )


def _translate(request: Request, message: str) -> str:
    return i18n.translations(language_of(request)).gettext(message)


def _load_schedule(
    database: Database, settings: Settings, occurrence_id: int
) -> dict[str, Any] | None:
    with database.session() as session:
        occurrence = session.get(Occurrence, occurrence_id)
        if occurrence is None:
            return None
        return bridge_timing.schedule_view(occurrence, settings.meetings)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/occurrences/{occurrence_id}/live")
async def occurrence_live(request: Request, occurrence_id: str, live: LiveBusDep) -> Response:
    """Server-sent events: a `snapshot` of every site, then `update`s of the sites that change."""
    parsed = parse_id(occurrence_id)
    database: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    setup = await run_in_threadpool(_stream_setup, database, settings, request, parsed or 0)
    if setup is None or parsed is None:
        return JSONResponse({"detail": _translate(request, "This page does not exist.")}, 404)
    allowed, site_ids, chair = setup
    if not allowed:
        message = _translate(request, "Your session has ended. Sign in again to continue.")
        return JSONResponse({"detail": message, "code": "session_expired"}, status_code=401)

    async def stream() -> AsyncIterator[str]:
        async with live.subscribe(occurrence_topic(parsed)) as subscription:
            # Subscribed first, then read: an event stored meanwhile comes twice, and the
            # status skips event ids it has seen.
            status = await run_in_threadpool(
                _load_status, database, settings, parsed, site_ids, chair
            )
            yield f"retry: {SSE_RETRY_MS}\n\n"
            yield _sse("snapshot", status.view())
            when = await run_in_threadpool(_load_schedule, database, settings, parsed)
            if when is not None:
                yield _sse("schedule", when)
            dropped = subscription.dropped
            loop = asyncio.get_running_loop()
            ends_at = loop.time() + SSE_STREAM_MAX_S
            while (left := ends_at - loop.time()) > 0:
                try:
                    message = await asyncio.wait_for(subscription.get(), min(SSE_HEARTBEAT_S, left))
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if message is None:
                    return
                if message.get("type") == SCHEDULE_MESSAGE:  # extended or ended
                    yield _sse("schedule", message)
                    continue
                changed, floor_changed = status.apply(message)
                await asyncio.sleep(SSE_COALESCE_S)
                while (more := subscription.get_nowait()) is not None:
                    if more.get("type") == SCHEDULE_MESSAGE:
                        yield _sse("schedule", more)
                        continue
                    more_changed, more_floor = status.apply(more)
                    changed |= more_changed
                    floor_changed = floor_changed or more_floor
                if subscription.dropped != dropped:
                    dropped = subscription.dropped
                    status = await run_in_threadpool(
                        _load_status, database, settings, parsed, site_ids, chair
                    )
                    yield _sse("snapshot", status.view())
                elif changed or floor_changed:
                    yield _sse("update", status.view(changed))

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
