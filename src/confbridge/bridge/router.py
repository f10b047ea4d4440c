"""Joining a meeting, the floor, and the SFU workers' own endpoints over HTTP."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from confbridge import signing
from confbridge.auth import service as auth_service
from confbridge.auth.dependencies import NodeDep, PrincipalDep, ReadScope, SecretariatScope
from confbridge.auth.scope import scope_of
from confbridge.bridge import events as event_service
from confbridge.bridge import flows as bridge_flows
from confbridge.bridge import service as bridge_service
from confbridge.bridge import timing
from confbridge.bridge.models import SfuEventRecord
from confbridge.bridge.schemas import FloorRequest, JoinRequest, SfuEventRead
from confbridge.deps import SessionDep, SettingsDep
from confbridge.errors import Forbidden, Unauthorized
from confbridge.live import LiveBusDep, publish_events, publish_floor
from confbridge.meetings import access as meeting_access
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.occurrences import OccurrenceChange
from confbridge.meetings.router import occurrence_read
from confbridge.meetings.schemas import OccurrenceRead, OccurrenceUpdate
from confbridge.pagination import IdPath, Limit, Offset, Page
from confbridge.recordings import flows as recordings_flows
from confbridge.recordings import service as recordings_service
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import (
    EVENTS_PATH,
    GRANT_KEY_PATH,
    NODE_HEARTBEAT_PATH,
    EventAck,
    EventBatch,
    EventType,
    FloorState,
    GrantPurpose,
    JoinInfo,
    NodeHeartbeat,
    NodeHeartbeatAck,
)

router = APIRouter(tags=["bridge"])
# Moving, extending and ending a meeting tells the media servers of its room; the route keeps
# its place among the meetings' in the API documentation.
occurrence_router = APIRouter(tags=["meetings"])
# A node's heartbeat settles its restarts' sessions (events, this floor); the route keeps its
# place among the nodes' in the API documentation.
heartbeat_router = APIRouter(tags=["nodes"])
scrape_bearer = HTTPBearer(
    auto_error=False, description="the metrics scraping secret (sfu.node_secret)"
)
PEM_MEDIA_TYPE = "application/x-pem-file"
API_PREFIX = "/api/v1"


def require_scraper(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scrape_bearer)],
) -> None:
    """Let through Prometheus, which presents `sfu.node_secret` (read-only: metrics)."""
    if credentials is None:
        raise Unauthorized("send 'Authorization: Bearer <sfu.node_secret>'")
    # Constant time, so the secret cannot be guessed byte by byte from response times.
    if not hmac.compare_digest(credentials.credentials.encode(), settings.sfu.node_secret.encode()):
        raise Unauthorized("wrong metrics secret")


ScraperDep = Annotated[None, Depends(require_scraper)]


@router.post("/occurrences/{occurrence_id}/join", response_model=JoinInfo)
def join(
    occurrence_id: IdPath,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    body: JoinRequest | None = None,
) -> JoinInfo:
    """A join grant; `failed_node_id` names the media server the terminal could not reach
    with its previous grant, so that a dead node's rooms move without waiting for its
    heartbeats to stop. With `{"purpose": "gallery"}`, a grant to watch every hall's
    thumbnail: for the chair site's terminal, or a secretariat, IT or admin user (the only
    grant a user gets)."""
    purpose = body.purpose if body else GrantPurpose.media
    if purpose is GrantPurpose.gallery:
        if principal.user is not None:
            auth_service.check_password_fresh(principal.user)
            # a meeting outside the user's units does not exist for it (404)
            meeting_access.visible_occurrence(
                session=session,
                occurrence_id=occurrence_id,
                scope=scope_of(session=session, user=principal.user),
            )
        info = bridge_service.gallery(
            session=session,
            occurrence_id=occurrence_id,
            principal=principal,
            settings=settings.sfu,
            signer=signing.signer_for(settings.grant_key_path),
            now=utcnow(),
            tz=settings.meetings.default_tz,
            viewer_name=f"gallery of {principal.actor}",
            overrun_grace_min=settings.meetings.overrun_grace_min,
        )
        session.commit()
        return info
    terminal = principal.terminal
    if terminal is None:
        raise Forbidden('a user joins only to watch the gallery ({"purpose": "gallery"})')
    info = bridge_service.join(
        session=session,
        occurrence_id=occurrence_id,
        site=terminal.site,
        settings=settings.sfu,
        signer=signing.signer_for(settings.grant_key_path),
        now=utcnow(),
        tz=settings.meetings.default_tz,
        failed_node_id=body.failed_node_id if body else None,
        terminal_id=terminal.id,
        credential_id=auth_service.credential_id(terminal),
        purpose=purpose,
        overrun_grace_min=settings.meetings.overrun_grace_min,
    )
    session.commit()  # the room's placement, made at its first join
    return info


@router.post("/occurrences/{occurrence_id}/floor", response_model=FloorState)
def floor(
    occurrence_id: IdPath,
    body: FloorRequest,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    live: LiveBusDep,
) -> FloorState:
    """Give or take the floor: the chair site's terminal, or the secretariat of its unit."""
    meeting_access.check_secretariat_edit(
        session=session, user=principal.user, occurrence_id=occurrence_id
    )
    state = bridge_service.floor(
        session=session,
        occurrence_id=occurrence_id,
        principal=principal,
        action=body.action,
        site_id=body.site_id,
        signer=signing.signer_for(settings.grant_key_path),
    )
    session.commit()
    publish_floor(live, occurrence_id, state)
    return state


@router.get("/occurrences/{occurrence_id}/events", response_model=Page[SfuEventRead])
def list_events(
    occurrence_id: IdPath,
    reader: ReadScope,
    session: SessionDep,
    type_: Annotated[EventType | None, Query(alias="type")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[SfuEventRead]:
    """The SFU's events of an occurrence (of your units' sites)."""
    if not reader.scope.whole:
        meeting_access.visible_occurrence(
            session=session, occurrence_id=occurrence_id, scope=reader.scope
        )
    rows, total = event_service.list_events(
        session=session,
        occurrence_id=occurrence_id,
        type_=type_,
        limit=limit,
        offset=offset,
        scope=reader.scope,
    )
    return Page(items=[event_read(r) for r in rows], total=total, limit=limit, offset=offset)


def event_read(record: SfuEventRecord) -> SfuEventRead:
    return SfuEventRead(
        id=record.id,
        type=EventType(record.type),
        at=record.at,
        node_id=record.node_id,
        room=record.room,
        occurrence_id=record.occurrence_id,
        site_id=record.site_id,
        peer_id=record.peer_id,
        direction=record.direction,
        stats=record.payload.get("stats"),
        floor=record.payload.get("floor"),
        detail=record.payload.get("detail") or {},
        received_at=record.received_at,
    )


@router.post(EVENTS_PATH.removeprefix(API_PREFIX), response_model=EventAck)
def receive_events(
    batch: EventBatch, node: NodeDep, session: SessionDep, live: LiveBusDep, settings: SettingsDep
) -> EventAck:
    """A node's events, each stored once; only its own, for rooms it holds or held (else
    403 for the batch: the node sets the bad ones apart and drops them). A hall joining a
    meeting of a series set to `record: always` starts its recording."""
    event_service.check_events_from(session=session, node_id=node.node_id, events=batch.events)
    ack = event_service.store_events(session=session, events=batch.events)
    session.commit()
    if ack.stored:
        publish_events(live, batch.events)
    if any(e.type is EventType.recording_ended for e in batch.events):
        # recordings that stopped by themselves or were recovered after their worker died
        recordings_flows.settle_ended(
            session=session,
            events=batch.events,
            now=utcnow(),
            deliver=bool(settings.alerts.webhook_url),
        )
        session.commit()
    joined = [e.occurrence_id for e in batch.events if e.type is EventType.joined]
    if joined:
        recordings_service.start_where_always(
            session=session,
            occurrence_ids=joined,
            signer=signing.signer_for(settings.grant_key_path),
        )
        session.commit()
    return ack


@router.get(GRANT_KEY_PATH.removeprefix(API_PREFIX), response_class=Response)
def grant_public_key(_node: NodeDep, settings: SettingsDep) -> Response:
    """The public key that checks join grants (PEM); workers fetch it at start."""
    pem = signing.signer_for(settings.grant_key_path).public_pem
    return Response(pem, media_type=PEM_MEDIA_TYPE)


@heartbeat_router.post(
    NODE_HEARTBEAT_PATH.removeprefix(API_PREFIX), response_model=NodeHeartbeatAck
)
def heartbeat(
    beat: NodeHeartbeat, enrolment: NodeDep, session: SessionDep, settings: SettingsDep
) -> NodeHeartbeatAck:
    """A node registers and reports its load, with its own key and for its own id only."""
    now = utcnow()
    node = bridge_flows.receive_heartbeat(session=session, beat=beat, enrolment=enrolment, now=now)
    # the revocation list rides on every answer: a worker that missed one learns it next time
    revocations = auth_service.grant_revocations(
        session=session, now=now, grant_ttl_s=settings.sfu.grant_ttl_s
    )
    session.commit()
    return NodeHeartbeatAck(node_id=node.id, draining=node.draining, revocations=revocations)


@occurrence_router.patch("/occurrences/{occurrence_id}", response_model=OccurrenceRead)
def update_occurrence(
    occurrence_id: IdPath,
    body: OccurrenceUpdate,
    editor: SecretariatScope,
    reader: ReadScope,
    session: SessionDep,
    settings: SettingsDep,
    live: LiveBusDep,
) -> OccurrenceRead:
    """Move, cancel or restore one occurrence, or change its end (`end_at` or `duration_min`):
    a later end extends a running meeting, an end not after now ends it now. Clashes are
    refused (409) as for a booking. A meeting that would end before now needs
    `record_past: true` (else 422); moving or cancelling a meeting that has attendance needs
    `confirm: true` (else 409) and a `reason` (else 422), and its attendance is kept.
    Only a meeting the editor's units chair (404 outside what the editor sees)."""
    user = editor.user
    occurrence = meeting_access.editable_occurrence(
        session=session, occurrence_id=occurrence_id, read=reader.scope, write=editor.scope
    )
    now = utcnow()
    fields = body.model_fields_set
    changed: list[timing.RoomChange] = []
    if fields != {"upstream_sip_uri"}:
        end_at = body.end_at
        if body.duration_min is not None:
            start_at = body.start_at or occurrence.start_at
            end_at = start_at + timedelta(minutes=body.duration_min)
        change = OccurrenceChange(
            start_at=body.start_at,
            end_at=end_at,
            status=body.status,
            record_past=body.record_past,
            confirm=body.confirm,
            reason=body.reason,
        )
        changed.append(
            timing.change_occurrence(
                session=session,
                occurrence=occurrence,
                change=change,
                settings=settings.meetings,
                now=now,
                actor=f"user:{user.username}",
                detail={"request": body.model_dump(mode="json", exclude_unset=True)},
            )
        )
    if "upstream_sip_uri" in fields:
        # not a move or a cancellation: no conflict check, no new calendar SEQUENCE
        occurrence_service.set_occurrence_upstream(
            session=session, occurrence=occurrence, upstream_sip_uri=body.upstream_sip_uri
        )
        auth_service.record(
            session=session,
            actor=f"user:{user.username}",
            action="occurrence_updated",
            entity="occurrence",
            entity_id=occurrence.id,
            detail={"upstream_sip_uri": body.upstream_sip_uri},
        )
    session.commit()
    timing.tell_rooms(
        session=session, changes=changed, signer=signing.signer_for(settings.grant_key_path)
    )
    timing.publish_schedule(live, occurrence, settings.meetings)
    site_count = len(
        occurrence_service.occurrence_site_ids(session=session, occurrence_id=occurrence.id)
    )
    return occurrence_read(occurrence, site_count)
