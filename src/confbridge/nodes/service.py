"""Node enrolment, heartbeats and states (placing rooms on them: `nodes.placement`)."""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.models import SfuNodeEnrolment
from confbridge.errors import Conflict, Forbidden, Invalid, NotFound
from confbridge.media_settings import SfuSettings
from confbridge.nodes.models import NodeState, RoomEdge, RoomPlacement, SfuNode
from confbridge.nodes.urls import check_node_url
from confbridge_kernel.contracts import (
    NODE_KEY_PREFIX,
    NodeHeartbeat,
)

log = logging.getLogger(__name__)

NODE_DOWN_AFTER_S = 15.0
"""A node that has not sent a heartbeat for this long is `down`."""
RESERVATION_TTL_S = 15.0
"""How long a session a join sent to a node counts before it connects (a terminal connects
within seconds of its grant; one that never does must not hold the place)."""

NODE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NODE_KEY_BYTES = 32
LOCAL_NODE_PREFIX = "local-"
"""`serve` names its own workers `local-<i>` and enrols them itself."""


# --- enrolment: each node's own key ---------------------------------------------------------------


def check_node_id(node_id: str) -> str:
    if not NODE_ID_PATTERN.fullmatch(node_id):
        raise Invalid(
            f"node id {node_id!r}: use 1-100 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)"
        )
    return node_id


def get_enrolment(*, session: Session, node_id: str) -> SfuNodeEnrolment:
    enrolment = session.get(SfuNodeEnrolment, node_id)
    if enrolment is None:
        raise NotFound(f"SFU node {node_id!r} is not enrolled", node_id=node_id)
    return enrolment


def list_enrolments(*, session: Session) -> list[SfuNodeEnrolment]:
    return list(session.scalars(select(SfuNodeEnrolment).order_by(SfuNodeEnrolment.node_id)))


def enrol(
    *,
    session: Session,
    node_id: str,
    by: str,
    now: datetime,
    allow_loopback: bool = False,
    local: bool = False,
    rotate: bool = False,
) -> tuple[SfuNodeEnrolment, str]:
    """Issue `node_id` its own key; returns the enrolment and the key (shown once, stored as
    a hash). An enrolled node gets 409 unless `rotate`: then its old key stops working."""
    check_node_id(node_id)
    if node_id.startswith(LOCAL_NODE_PREFIX) and not local:
        raise Invalid(f"node ids starting with {LOCAL_NODE_PREFIX!r} belong to `serve`'s workers")
    key = NODE_KEY_PREFIX + secrets.token_urlsafe(NODE_KEY_BYTES)
    enrolment = session.get(SfuNodeEnrolment, node_id)
    action = "node_key_rotated" if enrolment is not None else "node_enrolled"
    if enrolment is not None and not rotate:
        raise Conflict(
            f"SFU node {node_id!r} is already enrolled; revoke it first or rotate its key",
            node_id=node_id,
        )
    if enrolment is None:
        enrolment = SfuNodeEnrolment(node_id=node_id)
        session.add(enrolment)
    enrolment.key_hash = auth_service.hash_node_key(key)
    enrolment.local = local
    enrolment.allow_loopback = allow_loopback
    enrolment.enrolled_at = now
    enrolment.enrolled_by = by
    enrolment.restarts = 0
    auth_service.record(
        session=session,
        actor=by,
        action=action,
        entity="sfu_node",
        detail={"node_id": node_id, "allow_loopback": allow_loopback, "local": local},
    )
    session.flush()
    return enrolment, key


def revoke(*, session: Session, node_id: str, by: str, now: datetime) -> None:
    """The node's key stops working now; its rooms move at their next join."""
    enrolment = get_enrolment(session=session, node_id=node_id)
    session.delete(enrolment)
    node = session.get(SfuNode, node_id)
    if node is not None and node.down_since is None:
        node.down_since = now
    auth_service.record(
        session=session,
        actor=by,
        action="node_revoked",
        entity="sfu_node",
        detail={"node_id": node_id},
    )
    session.flush()


def state_of(node: SfuNode, now: datetime) -> NodeState:
    # down_since: found silent by the monitor, or found dead when a terminal reported it;
    # the node's next heartbeat clears it
    if node.down_since is not None or now - node.last_seen_at > timedelta(
        seconds=NODE_DOWN_AFTER_S
    ):
        return NodeState.down
    return NodeState.draining if node.draining else NodeState.up


def get(*, session: Session, node_id: str) -> SfuNode:
    node = session.get(SfuNode, node_id)
    if node is None:
        raise NotFound(f"no SFU node {node_id!r}", node_id=node_id)
    return node


def list_(*, session: Session) -> list[SfuNode]:
    return list(session.scalars(select(SfuNode).order_by(SfuNode.id)))


def heartbeat(
    *,
    session: Session,
    beat: NodeHeartbeat,
    now: datetime,
    enrolment: SfuNodeEnrolment | None = None,
) -> SfuNode:
    """Register the node or refresh it; a node that was down is up again.

    `enrolment` is the credential the heartbeat came with: it may speak for its own node
    only, and its URLs are checked when they are new, change (both audited) or a new worker
    process reports them. A new
    incarnation (the worker process restarted) drops the rooms the node relayed or fed: the
    pipes and relay sessions died with the old process.
    """
    public_url, internal_url = beat.public_url.rstrip("/"), beat.internal_url.rstrip("/")
    node = session.get(SfuNode, beat.node_id)
    if enrolment is not None:
        _check_registration(session, beat, enrolment, node, public_url, internal_url)
    if node is None:
        node = SfuNode(id=beat.node_id, registered_at=now, draining=False)
        session.add(node)
        log.info("SFU node %s registered at %s", beat.node_id, public_url)
    elif node.down_since is not None:
        log.info("SFU node %s is back after %s", node.id, now - node.down_since)
    if beat.incarnation and beat.incarnation != node.incarnation:
        if node.incarnation:
            log.warning("SFU node %s restarted (a new worker process)", node.id)
            _drop_edges_of(session, node.id)
        node.previous_seen_at = node.last_seen_at if node.incarnation else None
        node.incarnation = beat.incarnation
        node.started_at = beat.started_at or now
        node.restart_pending = True
    node.public_url = public_url
    node.internal_url = internal_url
    node.version = beat.version
    node.capacity_peers = beat.capacity_peers
    node.machine_id = beat.machine_id
    node.region = beat.region
    node.rooms = beat.load.rooms
    _settle_reservations(node, reported_peers=beat.load.peers, now=now)
    node.peers = beat.load.peers
    node.packets_per_s = beat.load.packets_per_s
    node.cpu_ratio = beat.load.cpu_ratio
    node.spool_events = beat.load.spool_events
    node.last_seen_at = now
    node.down_since = None
    session.flush()
    return node


def _settle_reservations(node: SfuNode, *, reported_peers: int, now: datetime) -> None:
    """Sessions that connected since the last heartbeat use up as many reservations; those
    not used within RESERVATION_TTL_S are dropped (the hall never connected)."""
    reserved_at = node.pending_at
    if reserved_at is None or now - reserved_at > timedelta(seconds=RESERVATION_TTL_S):
        node.pending_sessions = 0
        return
    connected = max(0, reported_peers - (node.peers or 0))
    node.pending_sessions = max(0, (node.pending_sessions or 0) - connected)


def _check_registration(
    session: Session,
    beat: NodeHeartbeat,
    enrolment: SfuNodeEnrolment,
    node: SfuNode | None,
    public_url: str,
    internal_url: str,
) -> None:
    if beat.node_id != enrolment.node_id:
        log.warning(
            "refused a heartbeat for node %r made with the key of node %r",
            beat.node_id,
            enrolment.node_id,
        )
        raise Forbidden(
            f"this key belongs to node {enrolment.node_id!r}, not {beat.node_id!r}",
            node_id=enrolment.node_id,
        )
    moved = node is None or (node.public_url, node.internal_url) != (public_url, internal_url)
    if not moved and node is not None and node.incarnation == beat.incarnation:
        return  # checked when this process registered them
    allow = enrolment.allow_loopback
    check_node_url(public_url, field="public_url", allow_loopback=allow)
    check_node_url(internal_url, field="internal_url", allow_loopback=allow)
    if not moved:
        return
    auth_service.record(
        session=session,
        actor=f"node:{enrolment.node_id}",
        action="node_registered" if node is None else "node_address_changed",
        entity="sfu_node",
        detail={"node_id": beat.node_id, "public_url": public_url, "internal_url": internal_url},
    )


def _drop_edges_of(session: Session, node_id: str) -> None:
    """Forget every edge the node was, and every edge fed by a room it held."""
    held = select(RoomPlacement.occurrence_id).where(RoomPlacement.node_id == node_id)
    session.execute(
        delete(RoomEdge).where(or_(RoomEdge.node_id == node_id, RoomEdge.occurrence_id.in_(held)))
    )


def mark_node_down(*, session: Session, node_id: str, now: datetime) -> SfuNode | None:
    """Its process is known to have died (a supervised local worker): no join goes there
    until it heartbeats again."""
    node = session.get(SfuNode, node_id)
    if node is not None and node.down_since is None:
        node.down_since = now
        session.flush()
    return node


def set_draining(*, session: Session, node_id: str, draining: bool) -> SfuNode:
    node = get(session=session, node_id=node_id)
    node.draining = draining
    session.flush()
    return node


def mark_down(*, session: Session, now: datetime) -> list[SfuNode]:
    """Nodes that fell silent since the last look: their `down_since` is set and returned."""
    newly_down = []
    for node in list_(session=session):
        silent = now - node.last_seen_at > timedelta(seconds=NODE_DOWN_AFTER_S)
        if node.down_since is None and silent:
            node.down_since = now
            newly_down.append(node)
    session.flush()
    return newly_down


def public_urls(*, session: Session, settings: SfuSettings) -> list[str]:
    """Every address terminals may be sent to for media: the configured one and each node's."""
    registered = session.scalars(select(SfuNode.public_url).distinct())
    return sorted({settings.public_url, *registered})
