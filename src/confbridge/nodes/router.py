"""The node registry over HTTP: workers heartbeat, IT staff look and drain."""

from __future__ import annotations

from fastapi import APIRouter

from confbridge.auth import service as auth_service
from confbridge.auth.dependencies import ITUser
from confbridge.bridge.router import NodeDep
from confbridge.contracts import NODE_HEARTBEAT_PATH, NodeHeartbeat, NodeHeartbeatAck
from confbridge.db import utcnow
from confbridge.deps import SessionDep, SettingsDep
from confbridge.nodes import service as node_service
from confbridge.nodes.models import SfuNode
from confbridge.nodes.schemas import NodeRead
from confbridge.terminals import service as terminal_service

router = APIRouter(tags=["nodes"])
API_PREFIX = "/api/v1"


def node_read(node: SfuNode) -> NodeRead:
    return NodeRead(
        id=node.id,
        state=node_service.state_of(node, utcnow()),
        public_url=node.public_url,
        internal_url=node.internal_url,
        version=node.version,
        capacity_peers=node.capacity_peers,
        machine_id=node.machine_id,
        region=node.region,
        draining=node.draining,
        rooms=node.rooms,
        peers=node.peers,
        packets_per_s=node.packets_per_s,
        cpu_ratio=node.cpu_ratio,
        spool_events=node.spool_events,
        registered_at=node.registered_at,
        last_seen_at=node.last_seen_at,
        down_since=node.down_since,
    )


@router.post(NODE_HEARTBEAT_PATH.removeprefix(API_PREFIX), response_model=NodeHeartbeatAck)
def heartbeat(
    beat: NodeHeartbeat, _node: NodeDep, session: SessionDep, settings: SettingsDep
) -> NodeHeartbeatAck:
    now = utcnow()
    node = node_service.heartbeat(session=session, beat=beat, now=now)
    # the revocation list rides on every answer: a worker that missed one learns it next time
    revocations = terminal_service.grant_revocations(
        session=session, now=now, grant_ttl_s=settings.sfu.grant_ttl_s
    )
    session.commit()
    return NodeHeartbeatAck(node_id=node.id, draining=node.draining, revocations=revocations)


@router.get("/sfu/nodes", response_model=list[NodeRead])
def list_nodes(_user: ITUser, session: SessionDep) -> list[NodeRead]:
    return [node_read(node) for node in node_service.list_(session=session)]


def _set_draining(node_id: str, draining: bool, user: ITUser, session: SessionDep) -> NodeRead:
    node = node_service.set_draining(session=session, node_id=node_id, draining=draining)
    auth_service.record(
        session=session,
        actor=f"user:{user.username}",
        action="node_drain" if draining else "node_resume",
        entity="sfu_node",
        detail={"node_id": node_id},
    )
    session.commit()
    return node_read(node)


@router.post("/sfu/nodes/{node_id}/drain", response_model=NodeRead)
def drain(node_id: str, user: ITUser, session: SessionDep) -> NodeRead:
    """No new rooms on this node; its rooms carry on until they end."""
    return _set_draining(node_id, True, user, session)


@router.post("/sfu/nodes/{node_id}/resume", response_model=NodeRead)
def resume(node_id: str, user: ITUser, session: SessionDep) -> NodeRead:
    """Place new rooms on this node again."""
    return _set_draining(node_id, False, user, session)
