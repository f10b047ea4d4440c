"""Series, occurrences, calendars and terminal agendas over HTTP."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.dependencies import (
    FeedPrincipalDep,
    ReadScope,
    SecretariatScope,
    SiteEditorScope,
    get_principal,
    oauth2_scheme,
    require_terminal,
)
from confbridge.auth.models import Role, User
from confbridge.auth.scope import Scope, scope_of
from confbridge.db import Database
from confbridge.deps import SessionDep, SettingsDep
from confbridge.errors import Forbidden, Invalid
from confbridge.meetings import access, calendars, dial_numbers, unplanned
from confbridge.meetings import flows as meeting_flows
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Occurrence, RecordPolicy, Series
from confbridge.meetings.schemas import (
    Agenda,
    AgendaItem,
    OccurrenceDetail,
    OccurrenceRead,
    SeriesCreate,
    SeriesRead,
    SeriesUpdate,
    UnplannedAction,
    UnplannedRead,
    UnplannedResolved,
)
from confbridge.pagination import MAX_ID, IdPath, Limit, Offset, Page
from confbridge.settings import Settings
from confbridge.sip_uri import sip_address
from confbridge.sites.access import visible_site
from confbridge.timeutil import parse_window, utcnow

router = APIRouter(tags=["meetings"])
# Archiving a site is refused while a meeting needs it, which only this floor can tell; the
# route keeps its place among the sites' in the API documentation.
site_router = APIRouter(tags=["sites"])
ICS_MEDIA_TYPE = "text/calendar; charset=utf-8"
TimeQuery = Annotated[str | None, Query(max_length=40)]
FromQuery = Annotated[str | None, Query(alias="from", max_length=40)]
PIN_ROLES = frozenset({Role.admin.value, Role.secretariat.value})


def may_see_pin(user: User) -> bool:
    """The PIN opens the meeting to any caller: shown to the secretariat and admins only."""
    return user.role in PIN_ROLES


def series_read(
    session: Session, series: Series, *, settings: Settings, show_pin: bool
) -> SeriesRead:
    return SeriesRead(
        **dataclasses.asdict(meeting_service.spec_of(series)),
        id=series.id,
        materialized_until_at=series.materialized_until_at,
        ended_at=series.ended_at,
        occurrence_count=meeting_service.occurrence_count(session=session, series_id=series.id),
        meeting_number=series.meeting_number,
        pin=series.pin if show_pin else None,
        sip_address=sip_address(series.meeting_number, settings.sip_domain),
        upstream_sip_uri=series.upstream_sip_uri,
        record=RecordPolicy(series.record),
        recording_retention_days=series.recording_retention_days,
        unplanned=[
            UnplannedRead(
                date=unplanned.local_date(item, series),
                start_at=item.recurrence_at,
                reason=item.reason,
                conflicts=item.conflicts or [],
                status=item.status,
                resolved_at=item.resolved_at,
                resolved_by=item.resolved_by,
            )
            for item in meeting_service.list_unplanned(session=session, series_id=series.id)
        ],
        created_at=series.created_at,
        updated_at=series.updated_at,
    )


def occurrence_read(occurrence: Occurrence, site_count: int) -> OccurrenceRead:
    series = occurrence.series
    return OccurrenceRead(
        id=occurrence.id,
        series_id=series.id,
        title=series.title,
        kind=series.kind,
        mode=series.mode,
        chair_site_id=series.chair_site_id,
        recurrence_at=occurrence.recurrence_at,
        start_at=occurrence.start_at,
        end_at=occurrence.end_at,
        status=occurrence.status,
        moved=occurrence.moved,
        ended_at=occurrence.ended_at,
        site_count=site_count,
        upstream_sip_uri=occurrence.upstream_sip_uri,
    )


def _actor(user: object) -> str:
    return f"user:{getattr(user, 'username', '?')}"


@router.post("/series", response_model=SeriesRead, status_code=status.HTTP_201_CREATED)
def create_series(
    body: SeriesCreate, editor: SecretariatScope, session: SessionDep, settings: SettingsDep
) -> SeriesRead:
    """Book a series chaired by one of your units' sites, inviting sites of your units only
    (403 otherwise: see `meetings.access` on invitations upward)."""
    user = editor.user
    access.check_invitations(
        session=session,
        scope=editor.scope,
        chair_site_id=body.chair_site_id,
        site_ids=body.site_ids,
        unit_ids=body.unit_ids,
    )
    series = meeting_service.create(
        session=session, series_in=body, settings=settings.meetings, now=utcnow()
    )
    auth_service.record(
        session=session,
        actor=_actor(user),
        action="series_created",
        entity="series",
        entity_id=series.id,
        detail={"title": series.title},
    )
    session.commit()
    return series_read(session, series, settings=settings, show_pin=True)


@router.get("/series", response_model=Page[SeriesRead])
def list_series(
    reader: ReadScope,
    session: SessionDep,
    settings: SettingsDep,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[SeriesRead]:
    """The series that invite a site of your units (or are chaired by one)."""
    user = reader.user
    items, total = meeting_service.list_(
        session=session, limit=limit, offset=offset, where=access.series_clause(reader.scope)
    )
    show_pin = may_see_pin(user)
    return Page(
        items=[series_read(session, s, settings=settings, show_pin=show_pin) for s in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/series/{series_id}", response_model=SeriesRead)
def get_series(
    series_id: IdPath, reader: ReadScope, session: SessionDep, settings: SettingsDep
) -> SeriesRead:
    series = access.visible_series(session=session, series_id=series_id, scope=reader.scope)
    return series_read(session, series, settings=settings, show_pin=may_see_pin(reader.user))


@router.patch("/series/{series_id}", response_model=SeriesRead)
def update_series(
    series_id: IdPath,
    body: SeriesUpdate,
    editor: SecretariatScope,
    reader: ReadScope,
    session: SessionDep,
    settings: SettingsDep,
) -> SeriesRead:
    user = editor.user
    series = access.editable_series(
        session=session, series_id=series_id, read=reader.scope, write=editor.scope
    )
    access.check_invitations(
        session=session,
        scope=editor.scope,
        chair_site_id=body.chair_site_id,
        site_ids=body.site_ids,
        unit_ids=body.unit_ids,
    )
    now = utcnow()
    meeting_service.update(
        session=session, series=series, series_in=body, settings=settings.meetings, now=now
    )
    # a re-plan drops unplanned meetings the new rule no longer gives: their alerts close
    meeting_flows.sync_unplanned_alerts(
        session=session, deliver=bool(settings.alerts.webhook_url), now=now
    )
    auth_service.record(
        session=session,
        actor=_actor(user),
        action="series_updated",
        entity="series",
        entity_id=series.id,
        detail=dial_numbers.without_secrets(body.model_dump(mode="json", exclude_unset=True)),
    )
    session.commit()
    return series_read(session, series, settings=settings, show_pin=True)


@router.delete("/series/{series_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_series(
    series_id: IdPath,
    editor: SecretariatScope,
    reader: ReadScope,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    user = editor.user
    series = access.editable_series(
        session=session, series_id=series_id, read=reader.scope, write=editor.scope
    )
    now = utcnow()
    removed = meeting_service.delete_series(session=session, series=series, now=now)
    meeting_flows.sync_unplanned_alerts(
        session=session, deliver=bool(settings.alerts.webhook_url), now=now
    )
    auth_service.record(
        session=session,
        actor=_actor(user),
        action="series_deleted" if removed else "series_ended",
        entity="series",
        entity_id=series_id,
    )
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/series/{series_id}/unplanned/{day}", response_model=UnplannedResolved)
def resolve_unplanned(
    series_id: IdPath,
    day: date,
    body: UnplannedAction,
    editor: SecretariatScope,
    reader: ReadScope,
    session: SessionDep,
    settings: SettingsDep,
) -> UnplannedResolved:
    """A meeting the planner could not book (listed in the series' `unplanned`): `move` books
    it at `start_at` (409 with the clashes if that is busy too), `skip` accepts that it does
    not take place (it stays listed, as skipped, and its alert closes)."""
    user = editor.user
    series = access.editable_series(
        session=session, series_id=series_id, read=reader.scope, write=editor.scope
    )
    item = unplanned.get_unplanned(session=session, series=series, day=day)
    now = utcnow()
    occurrence = None
    if body.action == "move":
        if body.start_at is None:
            raise Invalid("start_at: give the new start to move the meeting to")
        occurrence = unplanned.move_unplanned(
            session=session, series=series, item=item, start_at=body.start_at
        )
    else:
        unplanned.skip_unplanned(
            session=session, series=series, item=item, actor=_actor(user), now=now
        )
    meeting_flows.sync_unplanned_alerts(
        session=session, deliver=bool(settings.alerts.webhook_url), now=now
    )
    auth_service.record(
        session=session,
        actor=_actor(user),
        action=f"unplanned_{'moved' if occurrence else 'skipped'}",
        entity="series",
        entity_id=series.id,
        detail={"date": day.isoformat(), **body.model_dump(mode="json", exclude_none=True)},
    )
    session.commit()
    read = None
    if occurrence is not None:
        sites = occurrence_service.occurrence_site_ids(session=session, occurrence_id=occurrence.id)
        read = occurrence_read(occurrence, len(sites))
    return UnplannedResolved(
        series=series_read(session, series, settings=settings, show_pin=True), occurrence=read
    )


@router.get("/series/{series_id}/occurrences", response_model=Page[OccurrenceRead])
def list_series_occurrences(
    series_id: IdPath,
    reader: ReadScope,
    session: SessionDep,
    settings: SettingsDep,
    from_: FromQuery = None,
    to: TimeQuery = None,
    limit: Limit = 500,
    offset: Offset = 0,
) -> Page[OccurrenceRead]:
    access.visible_series(session=session, series_id=series_id, scope=reader.scope)
    return _occurrence_page(
        session,
        settings.meetings.default_tz,
        from_,
        to,
        limit,
        offset,
        series_id=series_id,
        scope=reader.scope,
    )


@router.get("/occurrences", response_model=Page[OccurrenceRead])
def list_occurrences(
    reader: ReadScope,
    session: SessionDep,
    settings: SettingsDep,
    from_: FromQuery = None,
    to: TimeQuery = None,
    site_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Limit = 500,
    offset: Offset = 0,
) -> Page[OccurrenceRead]:
    """Occurrences that book a site of your units, in a time window."""
    if site_id is not None:
        visible_site(session=session, site_id=site_id, scope=reader.scope)
    return _occurrence_page(
        session,
        settings.meetings.default_tz,
        from_,
        to,
        limit,
        offset,
        site_id=site_id,
        scope=reader.scope,
    )


def _occurrence_page(
    session: Session,
    tz: str,
    from_: str | None,
    to: str | None,
    limit: int,
    offset: int,
    *,
    series_id: int | None = None,
    site_id: int | None = None,
    scope: Scope,
) -> Page[OccurrenceRead]:
    from_at, to_at = parse_window(from_, to, tz=tz, now=utcnow())
    rows, total = occurrence_service.list_occurrences(
        session=session,
        from_at=from_at,
        to_at=to_at,
        series_id=series_id,
        site_id=site_id,
        limit=limit,
        offset=offset,
        where=access.occurrence_clause(scope),
    )
    return Page(
        items=[occurrence_read(o, n) for o, n in rows], total=total, limit=limit, offset=offset
    )


@router.get("/occurrences/{occurrence_id}", response_model=OccurrenceDetail)
def get_occurrence(
    occurrence_id: IdPath, reader: ReadScope, session: SessionDep
) -> OccurrenceDetail:
    """The occurrence, with the invited sites of your units (`site_count` counts them all)."""
    occurrence = access.visible_occurrence(
        session=session, occurrence_id=occurrence_id, scope=reader.scope
    )
    site_ids = occurrence_service.occurrence_site_ids(session=session, occurrence_id=occurrence.id)
    shown = access.visible_site_ids(session=session, site_ids=site_ids, scope=reader.scope)
    return OccurrenceDetail(
        **occurrence_read(occurrence, len(site_ids)).model_dump(), site_ids=shown
    )


@router.get("/series/{series_id}/calendar.ics", response_class=Response)
def series_calendar(
    series_id: IdPath, principal: FeedPrincipalDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """The series as iCalendar; calendar programs subscribe with `?feed=<feed token>`.

    Each event says how to dial in by SIP; the PIN only for the secretariat and admins."""
    if principal.user is None:
        raise Forbidden("terminals may not use this endpoint")
    scope = scope_of(session=session, user=principal.user)
    series = access.visible_series(session=session, series_id=series_id, scope=scope)
    body = calendars.series_calendar(
        session=session,
        series=series,
        now=utcnow(),
        sip_domain=settings.sip_domain,
        show_pin=may_see_pin(principal.user),
    )
    return Response(body, media_type=ICS_MEDIA_TYPE)


@router.get("/sites/{site_id}/calendar.ics", response_class=Response)
def site_calendar(
    site_id: IdPath, principal: FeedPrincipalDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """The site's meetings as iCalendar; calendar programs subscribe with `?feed=<token>`.

    Each event says how to dial in by SIP; the PIN for the site's own terminals (the site is
    invited: it dials in with it) and for the secretariat and admins."""
    if principal.terminal is not None and principal.terminal.site_id != site_id:
        raise Forbidden("a terminal may only read its own site's calendar")
    if principal.user is not None:
        scope = scope_of(session=session, user=principal.user)
        site = visible_site(session=session, site_id=site_id, scope=scope)
    else:
        site = principal.terminal.site if principal.terminal else None
        assert site is not None
    show_pin = principal.terminal is not None or (
        principal.user is not None and may_see_pin(principal.user)
    )
    body = calendars.site_calendar(
        session=session,
        site=site,
        tz=settings.meetings.default_tz,
        now=utcnow(),
        sip_domain=settings.sip_domain,
        show_pin=show_pin,
    )
    return Response(body, media_type=ICS_MEDIA_TYPE)


@router.get("/terminals/me/agenda", response_model=Agenda)
async def terminal_agenda(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Agenda:
    """The calling terminal's agenda.

    Every terminal polls this, so it makes one trip to the thread pool for the whole request:
    as sync dependencies, the session, settings, principal and terminal check would take one
    trip each, and those trips cost several times the queries.
    """
    return await run_in_threadpool(
        _terminal_agenda, request.app.state.db, request.app.state.settings, token
    )


def _terminal_agenda(database: Database, settings: Settings, token: str | None) -> Agenda:
    with database.session() as session:
        terminal = require_terminal(get_principal(session, settings, token))
        rows = occurrence_service.agenda(
            session=session,
            site_id=terminal.site_id,
            now=utcnow(),
            limit=settings.meetings.agenda_size,
            max_duration_min=settings.meetings.max_duration_min,
            overrun_grace_min=settings.meetings.overrun_grace_min,
        )
        grace = timedelta(minutes=settings.meetings.overrun_grace_min)
        return Agenda(
            site_id=terminal.site_id,
            site_name=terminal.site.name,
            items=[
                AgendaItem(
                    occurrence_id=r[0],
                    series_id=r[1],
                    title=r[2],
                    kind=r[3],
                    mode=r[4],
                    start_at=r[5],
                    end_at=r[6],
                    closes_at=r[6] + grace,
                    is_chair=r[7],
                )
                for r in rows
            ],
        )


@site_router.delete("/sites/{site_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_site(site_id: IdPath, editor: SiteEditorScope, session: SessionDep) -> Response:
    user = editor.user
    site = visible_site(session=session, site_id=site_id, scope=editor.scope)
    meeting_flows.archive_site(session=session, site=site)
    auth_service.record(
        session=session,
        actor=f"user:{user.username}",
        action="site_archived",
        entity="site",
        entity_id=site.id,
    )
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
