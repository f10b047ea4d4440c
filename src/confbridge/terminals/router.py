"""Terminals over HTTP: IT staff create, list and revoke them; devices pair and report."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from sqlalchemy.orm import Session

from confbridge import signing
from confbridge.auth import service as auth_service
from confbridge.auth.dependencies import ITScope, TerminalDep
from confbridge.auth.models import Terminal, User
from confbridge.auth.scope import Scope
from confbridge.bridge import service as bridge_service
from confbridge.client_address import client_address
from confbridge.deps import SessionDep, SettingsDep
from confbridge.errors import DomainError, Forbidden, Invalid, NotFound
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.models import OccurrenceStatus
from confbridge.pagination import MAX_ID, IdPath, Limit, Offset, Page
from confbridge.recordings.state import recording_now
from confbridge.settings import Settings
from confbridge.sites.access import visible_site, visible_unit
from confbridge.sites.models import Site
from confbridge.sites.schemas import TerminalCreate as SiteTerminalCreate
from confbridge.sites.schemas import TerminalCreated
from confbridge.terminals import service as terminal_service
from confbridge.terminals.limiter import PairingLimiter
from confbridge.terminals.models import PairingCode
from confbridge.terminals.pages import kiosk_url
from confbridge.terminals.schemas import (
    HeartbeatAck,
    HeartbeatIn,
    Paired,
    PairingCodeRead,
    PairRequest,
    SpeakerRead,
    TerminalCreate,
    TerminalCreatedWithCode,
    TerminalMe,
    TerminalRead,
    TerminalStatus,
)
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import room_name

router = APIRouter(tags=["terminals"])
# `POST /sites/{id}/terminals`: a terminal with its token at once (no pairing), documented
# among the sites' routes.
site_router = APIRouter(tags=["sites"])
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
_limiter_lock = threading.Lock()


class TooManyAttempts(DomainError):
    status_code = 429


def _limiter(request: Request, settings: Settings) -> PairingLimiter:
    """One limiter per app (per process), made at first use from the app's settings."""
    with _limiter_lock:  # requests run in a thread pool: the first ones must share one
        limiter = getattr(request.app.state, "pairing_limiter", None)
        if limiter is None:
            limiter = PairingLimiter(
                settings.terminals.pairing_max_failures,
                settings.terminals.pairing_failure_window_s,
            )
            request.app.state.pairing_limiter = limiter
    return limiter


def _visible_terminal(session: Session, terminal_id: int, scope: Scope) -> Terminal:
    """The terminal if its site is in `scope`; else 404, as for one that does not exist."""
    terminal = terminal_service.get(session=session, terminal_id=terminal_id)
    if not scope.covers(terminal.site.unit_id):
        raise NotFound(f"terminal {terminal_id} does not exist")
    return terminal


def terminal_read(view: terminal_service.TerminalView) -> TerminalRead:
    terminal, state = view.terminal, view.state
    return TerminalRead(
        id=terminal.id,
        site_id=terminal.site_id,
        site_name=terminal.site.name,
        name=terminal.name,
        status=view.status,
        created_at=terminal.created_at,
        paired_at=terminal.paired_at,
        revoked_at=terminal.revoked_at,
        last_seen_at=terminal.last_seen_at,
        kind=state.kind if state else None,
        version=state.version if state else None,
        ip=state.ip if state else None,
        camera=state.camera if state else None,
        microphone=state.microphone if state else None,
        occurrence_id=state.occurrence_id if state else None,
        last_error=state.last_error if state else None,
    )


def _pairing_read(request: Request, pairing: PairingCode, code: str) -> PairingCodeRead:
    shown = terminal_service.format_code(code)
    return PairingCodeRead(
        terminal_id=pairing.terminal_id,
        code=shown,
        pairing_url=kiosk_url(request, shown),
        expires_at=pairing.expires_at,
    )


# --- IT staff ------------------------------------------------------------------------------------


def _record_created(session: Session, user: User, terminal: Terminal) -> None:
    """The audit entry of a new terminal, whichever route created it."""
    auth_service.record(
        session=session,
        actor=f"user:{user.username}",
        action="terminal_created",
        entity="terminal",
        entity_id=terminal.id,
        detail={"site_id": terminal.site_id},
    )


@router.post("/terminals", response_model=TerminalCreatedWithCode, status_code=201)
def create_terminal(
    body: TerminalCreate, it: ITScope, session: SessionDep, settings: SettingsDep, request: Request
) -> TerminalCreatedWithCode:
    """A terminal for a site of your units, with a one-time pairing code (shown once)."""
    user = it.user
    visible_site(session=session, site_id=body.site_id, scope=it.scope)
    now = utcnow()
    terminal, pairing, code = terminal_service.create(
        session=session,
        site_id=body.site_id,
        name=body.name,
        secret_key=settings.secret_key,
        ttl_min=settings.terminals.pairing_code_ttl_min,
        now=now,
        created_by=f"user:{user.username}",
    )
    _record_created(session, user, terminal)
    session.commit()
    view = terminal_service.view(
        session=session,
        terminal=terminal,
        now=now,
        offline_after_s=settings.terminals.offline_after_s,
    )
    return TerminalCreatedWithCode(
        terminal=terminal_read(view), pairing=_pairing_read(request, pairing, code)
    )


@router.get("/terminals", response_model=Page[TerminalRead])
def list_terminals(
    it: ITScope,
    session: SessionDep,
    settings: SettingsDep,
    site_id: OptionalId = None,
    unit_id: OptionalId = None,
    status: TerminalStatus | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[TerminalRead]:
    """Terminals with their status: online (a heartbeat within `terminals.offline_after_s`),
    offline or revoked, and what each last reported; those of your units' sites."""
    if unit_id is not None:
        visible_unit(session=session, unit_id=unit_id, scope=it.scope)
    views, total = terminal_service.list_(
        session=session,
        now=utcnow(),
        offline_after_s=settings.terminals.offline_after_s,
        site_id=site_id,
        unit_id=unit_id,
        status=status,
        limit=limit,
        offset=offset,
        scope=it.scope,
    )
    return Page(items=[terminal_read(v) for v in views], total=total, limit=limit, offset=offset)


# --- the terminal itself (before the `{terminal_id}` routes, so that "me" is not an id) ---------


@router.post("/terminals/pair", response_model=Paired)
def pair(body: PairRequest, request: Request, session: SessionDep, settings: SettingsDep) -> Paired:
    """Exchange a one-time pairing code for the terminal's token (no other credential needed).

    Wrong codes are limited per client address, and more tightly during a guessing campaign
    from many addresses (`terminals.limiter`); 429 with `retry_after_s` when an address must wait.
    """
    limiter = _limiter(request, settings)
    address = client_address(request)
    attempt = limiter.begin(address)
    if attempt.retry_after_s:
        raise TooManyAttempts(
            f"too many wrong pairing codes; try again in {attempt.retry_after_s} s",
            retry_after_s=attempt.retry_after_s,
        )
    try:
        terminal, token = terminal_service.pair(
            session=session,
            code=body.code,
            secret_key=settings.secret_key,
            now=utcnow(),
            grant_ttl_s=settings.sfu.grant_ttl_s,
        )
    except Invalid:
        limiter.give_back(attempt)  # not a code at all: it guessed nothing
        raise
    limiter.give_back(attempt)  # the right code: not a failure
    auth_service.record(
        session=session,
        actor=f"terminal:{terminal.id}",
        action="terminal_paired",
        entity="terminal",
        entity_id=terminal.id,
        detail={"address": address},
    )
    session.commit()
    return Paired(
        terminal_id=terminal.id,
        site_id=terminal.site_id,
        site_name=terminal.site.name,
        token=token,
        heartbeat_interval_s=settings.terminals.heartbeat_interval_s,
    )


@router.get("/terminals/me", response_model=TerminalMe)
def me(terminal: TerminalDep, settings: SettingsDep) -> TerminalMe:
    return TerminalMe(
        terminal_id=terminal.id,
        name=terminal.name,
        site_id=terminal.site_id,
        site_name=terminal.site.name,
        heartbeat_interval_s=settings.terminals.heartbeat_interval_s,
    )


@router.post("/terminals/me/heartbeat", response_model=HeartbeatAck)
def heartbeat(
    body: HeartbeatIn,
    terminal: TerminalDep,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> HeartbeatAck:
    """The terminal is alive: version, address, camera and microphone, meeting, last error."""
    terminal_service.heartbeat(
        session=session,
        terminal=terminal,
        beat=body,
        seen_ip=client_address(request),
        now=utcnow(),
    )
    session.commit()
    return HeartbeatAck(
        status=TerminalStatus.online, next_in_s=settings.terminals.heartbeat_interval_s
    )


@router.get("/terminals/me/floor", response_model=SpeakerRead)
def my_floor(
    terminal: TerminalDep,
    session: SessionDep,
    settings: SettingsDep,
    occurrence_id: Annotated[int, Query(ge=1, le=MAX_ID)],
) -> SpeakerRead:
    """Who holds the floor of a meeting the terminal's site is invited to (for its screen)."""
    occurrence = occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
    booking = bridge_service.get_booking(
        session=session, occurrence_id=occurrence.id, site_id=terminal.site_id
    )
    if booking is None:
        raise Forbidden(f"site {terminal.site_id} is not invited to occurrence {occurrence.id}")
    speaker: int | None = None
    hands: list[int] = []
    muted: list[int] = []
    try:
        client = bridge_service.room_client(
            session=session,
            occurrence_id=occurrence.id,
            signer=signing.signer_for(settings.grant_key_path),
        )
        floor = client.get_floor(room=room_name(occurrence.id))
        speaker, hands, muted = floor.speaker_site_id, floor.hands, floor.muted_site_ids
    except DomainError:
        pass  # the room is not open or its worker is away: nobody speaks
    speaker_site = session.get(Site, speaker) if speaker is not None else None
    grace = settings.meetings.overrun_grace_min
    closes_at = occurrence_service.closes_at(occurrence, overrun_grace_min=grace)
    return SpeakerRead(
        occurrence_id=occurrence.id,
        speaker_site_id=speaker,
        speaker_site_name=speaker_site.name if speaker_site else None,
        hand_raised=terminal.site_id in hands,
        muted=terminal.site_id in muted,
        # polled every few seconds by the kiosk: an extension or an end reaches the hall here
        end_at=occurrence.end_at,
        closes_at=closes_at,
        ended=occurrence.status == OccurrenceStatus.cancelled.value
        or not booking.active
        or utcnow() >= closes_at,
        recording=recording_now(session=session, occurrence_id=occurrence.id) is not None,
    )


# --- one terminal ---------------------------------------------------------------------------


@router.get("/terminals/{terminal_id}", response_model=TerminalRead)
def get_terminal(
    terminal_id: IdPath, it: ITScope, session: SessionDep, settings: SettingsDep
) -> TerminalRead:
    terminal = _visible_terminal(session, terminal_id, it.scope)
    return terminal_read(
        terminal_service.view(
            session=session,
            terminal=terminal,
            now=utcnow(),
            offline_after_s=settings.terminals.offline_after_s,
        )
    )


@router.post(
    "/terminals/{terminal_id}/pairing-code", response_model=PairingCodeRead, status_code=201
)
def new_pairing_code(
    terminal_id: IdPath, it: ITScope, session: SessionDep, settings: SettingsDep, request: Request
) -> PairingCodeRead:
    """A new one-time code, e.g. for a replacement device; pairing it replaces the token."""
    terminal = _visible_terminal(session, terminal_id, it.scope)
    user = it.user
    pairing, code = terminal_service.issue_pairing_code(
        session=session,
        terminal=terminal,
        secret_key=settings.secret_key,
        ttl_min=settings.terminals.pairing_code_ttl_min,
        now=utcnow(),
        created_by=f"user:{user.username}",
    )
    auth_service.record(
        session=session,
        actor=f"user:{user.username}",
        action="terminal_pairing_code",
        entity="terminal",
        entity_id=terminal.id,
    )
    session.commit()
    return _pairing_read(request, pairing, code)


@router.post("/terminals/{terminal_id}/revoke", response_model=TerminalRead)
def revoke_terminal(
    terminal_id: IdPath, it: ITScope, session: SessionDep, settings: SettingsDep
) -> TerminalRead:
    """Revoke: the terminal's token stops working with its next request."""
    terminal = _visible_terminal(session, terminal_id, it.scope)
    user = it.user
    now = utcnow()
    terminal_service.revoke(session=session, terminal=terminal, now=now)
    auth_service.record(
        session=session,
        actor=f"user:{user.username}",
        action="terminal_revoked",
        entity="terminal",
        entity_id=terminal.id,
    )
    session.commit()
    return terminal_read(
        terminal_service.view(
            session=session,
            terminal=terminal,
            now=now,
            offline_after_s=settings.terminals.offline_after_s,
        )
    )


@site_router.post(
    "/sites/{site_id}/terminals",
    response_model=TerminalCreated,
    status_code=status.HTTP_201_CREATED,
    name="create_terminal",  # its operationId, as before it moved here
)
def create_terminal_with_token(
    site_id: IdPath, it: ITScope, session: SessionDep, body: SiteTerminalCreate | None = None
) -> TerminalCreated:
    site = visible_site(session=session, site_id=site_id, scope=it.scope)
    user = it.user
    terminal, token = terminal_service.create_with_token(
        session=session, site=site, name=body.name if body else ""
    )
    _record_created(session, user, terminal)
    session.commit()
    return TerminalCreated(id=terminal.id, site_id=site.id, name=terminal.name, token=token)
