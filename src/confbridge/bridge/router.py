"""Joining a meeting, the floor, and the SFU workers' own endpoints over HTTP."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from confbridge import signing
from confbridge.auth import service as auth_service
from confbridge.auth.dependencies import CurrentUser, NodeDep, PrincipalDep, TerminalDep
from confbridge.bridge import flows as bridge_flows
from confbridge.bridge import service as bridge_service
from confbridge.bridge.models import SfuEventRecord
from confbridge.bridge.schemas import FloorRequest, JoinRequest, SfuEventRead
from confbridge.deps import SessionDep, SettingsDep
from confbridge.errors import Unauthorized
from confbridge.live import LiveBusDep, publish_events, publish_floor
from confbridge.pagination import IdPath, Limit, Offset, Page
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
    terminal: TerminalDep,
    session: SessionDep,
    settings: SettingsDep,
    body: JoinRequest | None = None,
) -> JoinInfo:
    """A join grant; `failed_node_id` names the media server the terminal could not reach
    with its previous grant, so that a dead node's rooms move without waiting for its
    heartbeats to stop."""
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
        purpose=body.purpose if body else GrantPurpose.media,
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
    _user: CurrentUser,
    session: SessionDep,
    type_: Annotated[EventType | None, Query(alias="type")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[SfuEventRead]:
    rows, total = bridge_service.list_events(
        session=session, occurrence_id=occurrence_id, type_=type_, limit=limit, offset=offset
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
    bridge_service.check_events_from(session=session, node_id=node.node_id, events=batch.events)
    ack = bridge_service.store_events(session=session, events=batch.events)
    session.commit()
    if ack.stored:
        publish_events(live, batch.events)
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
