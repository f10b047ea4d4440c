"""Placing rooms on nodes: the least-loaded node of the chair's province holds a room, viewers
far from it watch through a relay (pipe or cascade), and a node a terminal reports dead is
probed and taken as down at once. The one place that decides where a room and its viewers go.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import httpx
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from confbridge.errors import DomainError
from confbridge.nodes.models import NodeState, RoomEdge, RoomHost, RoomPlacement, SfuNode
from confbridge.nodes.service import list_, state_of
from confbridge.nodes.worker_client import WorkerClient
from confbridge.signing import GrantSigner
from confbridge_kernel.contracts import (
    CascadeRequest,
    RoomSchedule,
    cascade_path,
    hold_path,
    schedule_path,
)

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 1.0
"""How long a node reported dead by a terminal has to answer its health check."""
EXTEND_TIMEOUT_S = 10.0
"""How long a node may take to open a pipe or a relay session from the room's origin."""
NO_MEDIA_SERVER_RETRY_AFTER_S = 2
"""What a join without a live node is told to wait: a supervised worker is back in seconds."""


class NoMediaServer(DomainError):
    """Every registered node is down, draining or full, or none has registered yet."""

    status_code = 503
    retry_after_s = NO_MEDIA_SERVER_RETRY_AFTER_S


@dataclass(frozen=True)
class MediaServer:
    """Where a room's terminals and the control plane reach its worker."""

    node_id: str
    public_url: str
    internal_url: str


def record_host(*, session: Session, occurrence_id: int, node_id: str, now: datetime) -> None:
    """Remember that `node_id` holds or relays the occurrence's room (once)."""
    if session.get(RoomHost, (occurrence_id, node_id)) is not None:
        return
    try:
        with session.begin_nested():
            session.add(RoomHost(occurrence_id=occurrence_id, node_id=node_id, first_at=now))
    except IntegrityError:
        pass  # recorded by a concurrent join


def rooms_held(*, session: Session, node_id: str, occurrence_ids: Iterable[int]) -> set[int]:
    """Of `occurrence_ids`, those whose room the node holds or ever held or relayed."""
    wanted = set(occurrence_ids)
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(RoomHost.occurrence_id).where(
                RoomHost.node_id == node_id, RoomHost.occurrence_id.in_(wanted)
            )
        )
    )


def reserve(node: SfuNode, now: datetime) -> None:
    """Count a session a join sends to the node until the node reports it connected."""
    node.pending_sessions = (node.pending_sessions or 0) + 1
    node.pending_at = now


def _sessions(node: SfuNode) -> int:
    return node.peers + node.pending_sessions


def _load(node: SfuNode) -> float:
    return _sessions(node) / node.capacity_peers


def _has_room(node: SfuNode) -> bool:
    return _sessions(node) < node.capacity_peers


def _placeable(session: Session, now: datetime, region: str | None = None) -> list[SfuNode]:
    nodes = [
        node
        for node in list_(session=session)
        if state_of(node, now) is NodeState.up and _has_room(node)
    ]
    # the region's own nodes first, then least loaded; CPU breaks ties between equally filled
    return sorted(
        nodes,
        key=lambda node: (
            not (region and node.region == region),
            _load(node),
            node.cpu_ratio,
            node.id,
        ),
    )


def _server(node: SfuNode) -> MediaServer:
    return MediaServer(node.id, node.public_url, node.internal_url)


def place_room(
    *,
    session: Session,
    occurrence_id: int,
    now: datetime,
    region: str | None = None,
    hold: Callable[[SfuNode], bool] | None = None,
) -> MediaServer:
    """The node that serves the occurrence's room, placing the room on first use (on a node
    of `region`, the chair's province, if one can take it).

    A room stays on its node while the node is up (draining included); a room whose node is
    down is placed again, and `hold` tells the new node (see `hold_room`). With no node up
    (none registered yet, or all down, draining or full) the join waits: NoMediaServer, with
    a time to retry after, rather than a worker that may not listen.
    """
    placement = session.get(RoomPlacement, occurrence_id)
    if placement is not None:
        node = session.get(SfuNode, placement.node_id)
        if node is not None and state_of(node, now) is not NodeState.down:
            reserve(node, now)
            return _server(node)
        # the origin is gone: its edges relayed a pipe that no longer exists
        session.execute(delete(RoomEdge).where(RoomEdge.occurrence_id == occurrence_id))
    candidates = _placeable(session, now, region)
    if not candidates:
        if session.scalar(select(SfuNode.id).limit(1)) is None:
            raise NoMediaServer("no media server has registered yet; try again shortly")
        raise NoMediaServer("no media server is available now (all down, draining or full)")
    chosen = candidates[0]
    try:
        with session.begin_nested():
            if placement is None:
                session.add(RoomPlacement(occurrence_id=occurrence_id, node_id=chosen.id))
            else:
                log.warning(
                    "room of occurrence %s moves from node %s (down) to %s",
                    occurrence_id,
                    placement.node_id,
                    chosen.id,
                )
                placement.node_id = chosen.id
                placement.placed_at = now
                if hold is not None:
                    hold(chosen)  # it may have relayed the room from the dead node
    except IntegrityError:
        # another join placed the room at the same moment: use its choice
        session.expire_all()
        placement = session.get(RoomPlacement, occurrence_id)
        assert placement is not None
        node = session.get(SfuNode, placement.node_id)
        assert node is not None
        reserve(node, now)
        return _server(node)
    record_host(session=session, occurrence_id=occurrence_id, node_id=chosen.id, now=now)
    reserve(chosen, now)
    return _server(chosen)


def room_server(*, session: Session, occurrence_id: int) -> MediaServer | None:
    """The node a room was placed on (None: never placed, so not open anywhere)."""
    placement = session.get(RoomPlacement, occurrence_id)
    node = session.get(SfuNode, placement.node_id) if placement is not None else None
    return _server(node) if node is not None else None


def room_nodes(*, session: Session, occurrence_id: int) -> list[SfuNode]:
    """The nodes serving the room now: its origin, then the edges relaying it."""
    placement = session.get(RoomPlacement, occurrence_id)
    wanted = [placement.node_id] if placement is not None else []
    edges = select(RoomEdge.node_id).where(RoomEdge.occurrence_id == occurrence_id)
    wanted += [node_id for node_id in session.scalars(edges) if node_id not in wanted]
    nodes = [session.get(SfuNode, node_id) for node_id in wanted]
    return [node for node in nodes if node is not None]


def reschedule_room(
    node: SfuNode, *, room: str, schedule: RoomSchedule, signer: GrantSigner
) -> bool:
    """Tell `node` the room's meeting was extended or ended (False, logged, if it cannot be
    told: it closes the room at the end it knew, and grants issued since carry the new one)."""
    body = schedule.model_dump(mode="json")
    return _ask(
        node,
        schedule_path(room),
        body,
        signer,
        f"reschedule room {room}",
        timeout_s=PROBE_TIMEOUT_S * 3,
    )


def probe(node: SfuNode) -> bool:
    """True if the node's worker answers its health check now."""
    try:
        response = httpx.get(f"{node.internal_url}/healthz", timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def check_reported_failure(
    *, session: Session, occurrence_id: int, node_id: str, now: datetime
) -> bool:
    """A terminal lost the room's node (its origin, or an edge relaying it): if the node does
    not answer, take it as down now (rooms move, viewers go elsewhere, at their next join)
    rather than after its heartbeats have stopped for NODE_DOWN_AFTER_S. Returns True if a
    node was found dead.

    An edge that answers may have lost its own upstream (it closes the room then): the
    room's origin is checked too, and the edge is extended afresh at the next placement.
    """
    placement = session.get(RoomPlacement, occurrence_id)
    edge = session.get(RoomEdge, (occurrence_id, node_id))
    if placement is None or (placement.node_id != node_id and edge is None):
        return False  # the room has moved already, or the report is about another room
    if _found_dead(session, node_id, now):
        return True
    if edge is None:
        return False  # the origin is fine: the terminal's own network failed
    session.delete(edge)
    session.flush()
    return _found_dead(session, placement.node_id, now)


def _found_dead(session: Session, node_id: str, now: datetime) -> bool:
    """Probe the node; one that does not answer is marked down now."""
    node = session.get(SfuNode, node_id)
    if node is None or node.down_since is not None:
        return False
    if probe(node):
        return False
    log.warning("SFU node %s does not answer (reported by a terminal): taken as down", node_id)
    node.down_since = now
    session.flush()
    return True


class EdgeKind(StrEnum):
    pipe = "pipe"  # a worker on the origin's machine, fed over plain RTP
    cascade = "cascade"  # a node elsewhere, pulling the programme over WHEP


def _same_machine(a: SfuNode, b: SfuNode) -> bool:
    return bool(a.machine_id) and a.machine_id == b.machine_id


def upstream_for(
    node: SfuNode, origin: SfuNode, relaying: list[SfuNode]
) -> tuple[SfuNode, EdgeKind]:
    """Where `node` takes the room from: a worker of its own machine that holds the room or
    relays it from elsewhere, over a pipe (every source, no encryption, no other machine's
    bandwidth); else the origin, over the cascade."""
    for upstream in (origin, *relaying):
        if _same_machine(node, upstream):
            return upstream, EdgeKind.pipe
    return origin, EdgeKind.cascade


Extender = Callable[[SfuNode, EdgeKind, SfuNode], bool]
"""Asks a node to extend the room from an upstream node, over a pipe or the cascade; True if
done."""


def place_viewer(
    *,
    session: Session,
    occurrence_id: int,
    origin: MediaServer,
    now: datetime,
    extend: Extender,
    region: str | None = None,
) -> MediaServer:
    """Where a viewer of the room goes.

    A site of `region` (its province) whose room is held elsewhere goes to a node of its
    province, which relays the room (the tree: origin → a node per province → its sites).
    Otherwise: the origin while it has room, else an edge node that relays the origin (an
    existing one first, else the least-loaded other node, extended now). With nowhere
    better, the origin takes the viewer beyond its capacity.
    """
    origin_node = session.get(SfuNode, origin.node_id)
    assert origin_node is not None
    serves_region = not region or origin_node.region in ("", region)
    if serves_region and _has_room(origin_node):
        reserve(origin_node, now)
        return origin
    edges = list(session.scalars(select(RoomEdge).where(RoomEdge.occurrence_id == occurrence_id)))
    edge_ids = {edge.node_id for edge in edges}
    # a room relayed over the cascade can be piped on from there to its machine's workers
    relaying = [
        node
        for edge in edges
        if edge.kind == EdgeKind.cascade.value
        and (node := session.get(SfuNode, edge.node_id)) is not None
        and state_of(node, now) is not NodeState.down
    ]
    candidates = [n for n in _placeable(session, now, region) if n.id != origin_node.id]
    in_region = [n for n in candidates if region and n.region == region]
    if not serves_region and not in_region and _has_room(origin_node):
        reserve(origin_node, now)  # no node of its own province can take it
        return origin
    # the province's own nodes first (an edge already relaying, else one extended now)
    for group in (in_region, [n for n in candidates if n not in in_region]):
        for node in group:
            if node.id in edge_ids:
                reserve(node, now)
                return _server(node)
        for node in group:
            upstream, kind = upstream_for(node, origin_node, relaying)
            if extend(node, kind, upstream):
                session.add(
                    RoomEdge(
                        occurrence_id=occurrence_id,
                        node_id=node.id,
                        kind=kind.value,
                        created_at=now,
                    )
                )
                record_host(session=session, occurrence_id=occurrence_id, node_id=node.id, now=now)
                reserve(node, now)
                log.info(
                    "room of occurrence %s extended to node %s (%s from %s)",
                    occurrence_id,
                    node.id,
                    kind,
                    upstream.id,
                )
                return _server(node)
    log.warning(
        "room of occurrence %s: no node to extend to; %s takes more",
        occurrence_id,
        origin_node.id,
    )
    reserve(origin_node, now)
    return origin


def extend_room(
    node: SfuNode,
    *,
    room: str,
    upstream: SfuNode,
    occurrence_id: int,
    chair_site_id: int,
    ends_at: datetime,
    token: str,
    signer: GrantSigner,
) -> bool:
    """Ask `node` to relay the room from `upstream`, a worker of its machine that holds or
    relays the room (the edge opens the pipe itself, showing the origin `token`, a relay
    grant for the room)."""
    body = {
        "origin_url": upstream.internal_url,
        "occurrence_id": occurrence_id,
        "chair_site_id": chair_site_id,
        "ends_at": ends_at.isoformat(),
        "token": token,
    }
    return _ask(node, f"/rooms/{room}/pipe", body, signer, f"extend room {room}")


def cascade_room(node: SfuNode, *, room: str, request: CascadeRequest, signer: GrantSigner) -> bool:
    """Ask `node` to relay the room from the node above it (the edge opens the session)."""
    body = request.model_dump(mode="json")
    return _ask(node, cascade_path(room), body, signer, f"relay room {room}")


def relay_room(
    node: SfuNode,
    kind: EdgeKind,
    upstream: SfuNode,
    *,
    room: str,
    occurrence_id: int,
    chair_site_id: int,
    ends_at: datetime,
    token: str,
    signer: GrantSigner,
) -> bool:
    """Ask `node` to relay the room from `upstream` the way `upstream_for` chose: a pipe from
    a worker of its machine, or the cascade from a node elsewhere. `token` is the relay grant
    it shows upstream."""
    if kind is EdgeKind.pipe:
        return extend_room(
            node,
            room=room,
            upstream=upstream,
            occurrence_id=occurrence_id,
            chair_site_id=chair_site_id,
            ends_at=ends_at,
            token=token,
            signer=signer,
        )
    request = CascadeRequest(
        upstream_whep_url=f"{upstream.public_url}/whep/{room}",
        token=token,
        occurrence_id=occurrence_id,
        chair_site_id=chair_site_id,
        ends_at=ends_at,
    )
    return cascade_room(node, room=room, request=request, signer=signer)


def hold_room(node: SfuNode, *, room: str, signer: GrantSigner) -> bool:
    """Tell `node` the room is placed on it now; a copy it relayed stops relaying (if it
    cannot be told, it finds out when its upstream falls silent)."""
    return _ask(node, hold_path(room), None, signer, f"hold room {room}", timeout_s=PROBE_TIMEOUT_S)


def _ask(
    node: SfuNode,
    path: str,
    body: dict[str, Any] | None,
    signer: GrantSigner,
    what: str,
    *,
    timeout_s: float = EXTEND_TIMEOUT_S,
) -> bool:
    """POST to a node's admin API; False (logged) if it cannot be reached or refuses."""
    client = WorkerClient(node.internal_url, node_id=node.id, signer=signer)
    return client.tell(path, body, what=what, timeout_s=timeout_s)
