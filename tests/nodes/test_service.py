"""The node registry: heartbeats, states, and where rooms are placed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from confbridge.meetings.models import Occurrence
from confbridge.nodes import placement
from confbridge.nodes import service as node_service
from confbridge.nodes.models import NodeState, RoomEdge, RoomPlacement, SfuNode
from confbridge.nodes.placement import NoMediaServer
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import NodeHeartbeat, NodeLoad
from tests.support.factories import make_occurrences


def beat(
    node_id: str,
    *,
    peers: int = 0,
    capacity: int = 100,
    cpu: float = 0.1,
    region: str = "",
    machine_id: str = "",
) -> NodeHeartbeat:
    return NodeHeartbeat(
        node_id=node_id,
        public_url=f"http://{node_id}.example.vn:8001/",
        internal_url=f"http://{node_id}.internal:8001",
        version="1.0",
        capacity_peers=capacity,
        load=NodeLoad(rooms=1, peers=peers, packets_per_s=100, cpu_ratio=cpu, spool_events=0),
        region=region,
        machine_id=machine_id or f"machine-{node_id}",
    )


def test_service_heartbeat_registers_then_refreshes(session: Session) -> None:
    now = utcnow()
    node = node_service.heartbeat(session=session, beat=beat("a", peers=3), now=now)
    assert (node.public_url, node.peers, node.registered_at) == ("http://a.example.vn:8001", 3, now)
    later = now + timedelta(seconds=5)
    node.down_since = now
    again = node_service.heartbeat(session=session, beat=beat("a", peers=7), now=later)
    assert again is node and again.peers == 7 and again.registered_at == now
    assert again.last_seen_at == later and again.down_since is None


def test_service_state_follows_silence_and_draining(session: Session) -> None:
    now = utcnow()
    node = node_service.heartbeat(session=session, beat=beat("a"), now=now)
    assert node_service.state_of(node, now + timedelta(seconds=15)) is NodeState.up
    assert node_service.state_of(node, now + timedelta(seconds=15.1)) is NodeState.down
    node_service.set_draining(session=session, node_id="a", draining=True)
    assert node_service.state_of(node, now) is NodeState.draining
    marked = node_service.mark_down(session=session, now=now + timedelta(seconds=20))
    assert marked == [node] and node.down_since == now + timedelta(seconds=20)
    # marked once: a later look does not report it again
    assert node_service.mark_down(session=session, now=now + timedelta(seconds=40)) == []


def test_service_no_node_registered_is_a_503_with_a_retry_after(
    session: Session, sites: dict
) -> None:
    """Right after start no worker has registered: the join waits, it is never sent to an
    address where nothing may listen yet."""
    (occurrence,) = make_occurrences(session, sites, count=1)
    with pytest.raises(NoMediaServer, match="no media server has registered yet") as refused:
        placement.place_room(session=session, occurrence_id=occurrence.id, now=utcnow())
    assert (refused.value.status_code, refused.value.retry_after_s) == (503, 2)
    assert session.get(RoomPlacement, occurrence.id) is None


def test_service_places_rooms_on_the_least_loaded_node_and_keeps_them_there(
    session: Session, sites: dict
) -> None:
    first, second, third = make_occurrences(session, sites, count=3)
    now = utcnow()
    node_service.heartbeat(session=session, beat=beat("busy", peers=80), now=now)
    node_service.heartbeat(session=session, beat=beat("idle", peers=10), now=now)
    node_service.heartbeat(session=session, beat=beat("full", peers=100), now=now)

    def place(occurrence: Occurrence, at=now) -> str | None:
        return placement.place_room(session=session, occurrence_id=occurrence.id, now=at).node_id

    assert place(first) == "idle"
    # the idle node fills up; the room stays where it is, a new room goes to the other
    node_service.heartbeat(session=session, beat=beat("idle", peers=95), now=now)
    assert place(first) == "idle"
    assert place(second) == "busy"
    # draining: rooms already there carry on, new rooms go elsewhere
    node_service.set_draining(session=session, node_id="busy", draining=True)
    assert place(second) == "busy"
    assert place(third) == "idle"
    # a node that goes silent loses its rooms to a node that is up
    later = now + timedelta(seconds=20)
    node_service.heartbeat(session=session, beat=beat("full", peers=10), now=later)
    assert place(second, later) == "full"
    assert session.get(RoomPlacement, second.id).node_id == "full"


def test_service_no_node_available_is_a_clear_503(session: Session, sites: dict) -> None:
    (occurrence,) = make_occurrences(session, sites, count=1)
    now = utcnow()
    node_service.heartbeat(session=session, beat=beat("a"), now=now - timedelta(minutes=1))
    with pytest.raises(NoMediaServer, match="no media server is available") as refused:
        placement.place_room(session=session, occurrence_id=occurrence.id, now=now)
    assert refused.value.status_code == 503


def test_service_viewers_fill_the_origin_then_extend_the_room(
    session: Session, sites: dict
) -> None:
    (occurrence,) = make_occurrences(session, sites, count=1)
    now = utcnow()
    for node_id in ("a", "b", "c"):
        node_service.heartbeat(session=session, beat=beat(node_id, capacity=2), now=now)
    asked: list[str] = []

    def extend(node, kind, upstream) -> bool:  # type: ignore[no-untyped-def]
        asked.append(node.id)
        return node.id != "b"  # b cannot open the pipe

    def join() -> tuple[str | None, str | None]:
        origin = placement.place_room(session=session, occurrence_id=occurrence.id, now=now)
        viewing = placement.place_viewer(
            session=session, occurrence_id=occurrence.id, origin=origin, now=now, extend=extend
        )
        return origin.node_id, viewing.node_id

    assert join() == ("a", "a")  # publish + view: the origin is full
    assert join() == ("a", "c")  # b refused; c relays the room now
    assert asked == ["b", "c"]
    assert join() == ("a", "c")  # the existing edge first
    assert asked == ["b", "c"]
    # everything full: the origin takes more rather than nobody
    node_service.heartbeat(session=session, beat=beat("c", peers=2, capacity=2), now=now)
    assert join()[1] == "a"


def test_service_reservations_last_until_their_sessions_connect(
    session: Session, sites: dict
) -> None:
    """A heartbeat counts connected sessions only: a chair that has published but not yet
    opened its view still holds two places; reservations nobody used expire."""
    (occurrence,) = make_occurrences(session, sites, count=1)
    now = utcnow()
    node_service.heartbeat(session=session, beat=beat("a", capacity=4), now=now)
    origin = placement.place_room(session=session, occurrence_id=occurrence.id, now=now)
    placement.place_viewer(
        session=session,
        occurrence_id=occurrence.id,
        origin=origin,
        now=now,
        extend=lambda node, kind, upstream: False,
    )
    node = session.get(SfuNode, "a")
    assert node.pending_sessions == 2
    node_service.heartbeat(session=session, beat=beat("a", peers=1, capacity=4), now=now)
    assert node.pending_sessions == 1  # the chair published; its view is still coming
    node_service.heartbeat(session=session, beat=beat("a", peers=1, capacity=4), now=now)
    assert node.pending_sessions == 1  # nothing new connected: the place is still held
    later = now + timedelta(seconds=node_service.RESERVATION_TTL_S + 1)
    node_service.heartbeat(session=session, beat=beat("a", peers=1, capacity=4), now=later)
    assert node.pending_sessions == 0  # never used: dropped


def test_service_an_origin_that_moves_drops_its_edges(session: Session, sites: dict) -> None:
    (occurrence,) = make_occurrences(session, sites, count=1)
    now = utcnow()
    for node_id in ("a", "b"):
        node_service.heartbeat(session=session, beat=beat(node_id, capacity=1), now=now)
    origin = placement.place_room(session=session, occurrence_id=occurrence.id, now=now)
    edge = placement.place_viewer(
        session=session,
        occurrence_id=occurrence.id,
        origin=origin,
        now=now,
        extend=lambda n, kind, upstream: True,
    )
    assert (origin.node_id, edge.node_id) == ("a", "b")
    later = now + timedelta(seconds=20)
    node_service.heartbeat(session=session, beat=beat("b"), now=later)
    told: list[str] = []
    moved = placement.place_room(
        session=session,
        occurrence_id=occurrence.id,
        now=later,
        hold=lambda node: told.append(node.id) is None,
    )
    assert moved.node_id == "b"
    assert told == ["b"]  # b relayed the room: it is told to hold it now
    assert session.query(RoomEdge).count() == 0


def test_service_the_tree_sends_each_province_to_its_own_node(
    session: Session, sites: dict
) -> None:
    """Hà Nội (01) holds the room; a site of Quảng Ninh (22) watches from the Quảng Ninh node,
    relayed over the cascade; a worker on the origin's own machine is extended by a pipe; a
    province with no node of its own watches from the origin."""
    (occurrence,) = make_occurrences(session, sites, count=1)
    now = utcnow()
    for node_id, region, machine, capacity in (
        ("hn-1", "01", "hn", 6),  # each join counts a publisher and a viewer here
        ("hn-2", "01", "hn", 3),
        ("qn-1", "22", "qn", 3),
        ("qn-2", "22", "qn-b", 3),
    ):
        node_service.heartbeat(
            session=session,
            beat=beat(node_id, capacity=capacity, region=region, machine_id=machine),
            now=now,
        )
    asked: list[tuple[str, str, str]] = []

    def extend(node: SfuNode, kind: placement.EdgeKind, upstream: SfuNode) -> bool:
        asked.append((node.id, kind.value, upstream.id))
        return True

    def join(region: str | None) -> tuple[str | None, str | None]:
        origin = placement.place_room(
            session=session,
            occurrence_id=occurrence.id,
            now=now,
            region="01",
        )
        viewing = placement.place_viewer(
            session=session,
            occurrence_id=occurrence.id,
            origin=origin,
            now=now,
            extend=extend,
            region=region,
        )
        return origin.node_id, viewing.node_id

    assert join("01") == ("hn-1", "hn-1")  # the chair's province holds the room
    assert join("22") == ("hn-1", "qn-1")  # Quảng Ninh's node relays it
    assert asked == [("qn-1", "cascade", "hn-1")]
    assert join("22") == ("hn-1", "qn-1")  # the existing edge, not another
    assert join("48") == ("hn-1", "hn-1")  # no node of Đà Nẵng: the origin serves
    # the origin is full now: its own machine's second worker takes the next by a pipe
    assert join("01") == ("hn-1", "hn-2")
    assert asked[-1] == ("hn-2", "pipe", "hn-1")
    # Quảng Ninh's node is full: its machine's second worker is piped from it, so the
    # programme crosses to the province once
    node_service.heartbeat(
        session=session,
        beat=beat("qn-1", peers=3, capacity=3, region="22", machine_id="qn"),
        now=now,
    )
    node_service.heartbeat(
        session=session, beat=beat("qn-3", capacity=3, region="22", machine_id="qn"), now=now
    )
    node_service.set_draining(session=session, node_id="qn-2", draining=True)
    assert join("22") == ("hn-1", "qn-3")
    assert asked[-1] == ("qn-3", "pipe", "qn-1")
    kinds = {edge.node_id: edge.kind for edge in session.query(RoomEdge)}
    assert kinds == {"qn-1": "cascade", "hn-2": "pipe", "qn-3": "pipe"}
