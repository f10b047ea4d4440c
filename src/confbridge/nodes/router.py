"""The node registry over HTTP: IT staff look, drain and enrol (heartbeats: `bridge.router`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from confbridge.auth import service as auth_service
from confbridge.auth.dependencies import RootAdminUser, RootITUser
from confbridge.auth.models import SfuNodeEnrolment
from confbridge.deps import SessionDep
from confbridge.nodes import service as node_service
from confbridge.nodes.models import SfuNode
from confbridge.nodes.schemas import NodeEnrol, NodeEnrolled, NodeEnrolmentRead, NodeRead
from confbridge.timeutil import utcnow

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


def enrolment_read(session: SessionDep, enrolment: SfuNodeEnrolment) -> NodeEnrolmentRead:
    node = session.get(SfuNode, enrolment.node_id)
    return NodeEnrolmentRead(
        node_id=enrolment.node_id,
        local=enrolment.local,
        allow_loopback=enrolment.allow_loopback,
        enrolled_at=enrolment.enrolled_at,
        enrolled_by=enrolment.enrolled_by,
        restarts=enrolment.restarts,
        state=node_service.state_of(node, utcnow()) if node is not None else None,
    )


@router.post("/sfu/nodes", response_model=NodeEnrolled, status_code=201)
def enrol(body: NodeEnrol, user: RootAdminUser, session: SessionDep) -> NodeEnrolled:
    """Enrol a node (or rotate its key): the key is in this answer only, give it to the node
    as CONFBRIDGE_SFU_NODE_KEY."""
    enrolment, key = node_service.enrol(
        session=session,
        node_id=body.node_id,
        by=f"user:{user.username}",
        now=utcnow(),
        allow_loopback=body.allow_loopback,
        rotate=body.rotate,
    )
    session.commit()
    return NodeEnrolled(**enrolment_read(session, enrolment).model_dump(), key=key)


@router.get("/sfu/enrolments", response_model=list[NodeEnrolmentRead])
def list_enrolments(_user: RootITUser, session: SessionDep) -> list[NodeEnrolmentRead]:
    """Enrolled nodes, registered or not (never their keys)."""
    return [enrolment_read(session, e) for e in node_service.list_enrolments(session=session)]


@router.delete("/sfu/nodes/{node_id}", status_code=204, response_class=Response)
def revoke(node_id: str, user: RootAdminUser, session: SessionDep) -> Response:
    """Revoke the node's key: its heartbeats and events are refused from now on, and its
    rooms move at their next join."""
    node_service.revoke(session=session, node_id=node_id, by=f"user:{user.username}", now=utcnow())
    session.commit()
    return Response(status_code=204)


@router.get("/sfu/nodes", response_model=list[NodeRead])
def list_nodes(_user: RootITUser, session: SessionDep) -> list[NodeRead]:
    return [node_read(node) for node in node_service.list_(session=session)]


def _set_draining(node_id: str, draining: bool, user: RootITUser, session: SessionDep) -> NodeRead:
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
def drain(node_id: str, user: RootITUser, session: SessionDep) -> NodeRead:
    """No new rooms on this node; its rooms carry on until they end."""
    return _set_draining(node_id, True, user, session)


@router.post("/sfu/nodes/{node_id}/resume", response_model=NodeRead)
def resume(node_id: str, user: RootITUser, session: SessionDep) -> NodeRead:
    """Place new rooms on this node again."""
    return _set_draining(node_id, False, user, session)
