"""A node that restarted: the sessions of its previous process end, also those the control
plane learns of only from events that process spooled while the control plane was away."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from confbridge.attendance import service as attendance_service
from confbridge.attendance.service import OccurrenceWindow
from confbridge.bridge.models import SfuEventRecord
from confbridge.db import Database
from confbridge.meetings.models import Occurrence
from confbridge.nodes.models import RoomEdge, SfuNode
from confbridge.settings import AttendanceRule
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import EventType, SfuEvent, room_name
from tests.support.factories import enrol_node, let_node_hold, make_occurrences

HEARTBEAT = "/api/v1/sfu/nodes/heartbeat"
EVENTS = "/api/v1/sfu/events"


def beat(incarnation: str, started_at: datetime, spool_events: int) -> dict[str, Any]:
    return {
        "node_id": "hall-node",
        "public_url": "http://127.0.0.1:9001",
        "internal_url": "http://127.0.0.1:9001",
        "capacity_peers": 50,
        "incarnation": incarnation,
        "started_at": started_at.isoformat(),
        "load": {"spool_events": spool_events},
    }


def event(
    occurrence_id: int, site: Site, peer: str, kind: EventType, at: datetime
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "type": kind,
        "at": at,
        "node_id": "hall-node",
        "room": room_name(occurrence_id),
        "occurrence_id": occurrence_id,
        "site_id": site.id,
        "peer_id": peer,
        "direction": "ingest",
    }
    if kind is EventType.stats:
        values["stats"] = {"rtt_ms": 20, "packets": 100}
    return json.loads(SfuEvent.model_validate(values).model_dump_json())


def lefts(database: Database) -> dict[str, tuple[datetime, str]]:
    with database.session() as session:
        rows = session.scalars(
            select(SfuEventRecord).where(SfuEventRecord.type == EventType.left.value)
        )
        return {r.peer_id or "": (r.at, r.payload["detail"].get("reason", "")) for r in rows}


def test_flows_a_restart_ends_sessions_joined_while_the_control_plane_was_away(
    client: TestClient, database: Database, sites: dict[str, Site]
) -> None:
    with database.session() as session:
        (occurrence,) = make_occurrences(session, sites, count=1)
        occurrence_id = occurrence.id
    key = enrol_node(database, "hall-node")
    let_node_hold(database, "hall-node", occurrence_id)
    t0 = utcnow() - timedelta(seconds=50)
    assert client.post(HEARTBEAT, json=beat("first", t0, 0), headers=key).status_code == 200
    with database.session() as session:  # that was its last heartbeat the control plane saw
        node = session.get(SfuNode, "hall-node")
        assert node is not None
        node.last_seen_at = t0
        session.commit()

    # the control plane is away: p1 joins on the node's first process, which spools the
    # events and dies; the node's second process starts and delivers them late
    joined_at, last_stats_at, restart_at = (t0 + timedelta(seconds=s) for s in (10, 20, 40))
    spooled = [
        event(occurrence_id, sites["p1"], "ghost", EventType.joined, joined_at),
        event(occurrence_id, sites["p1"], "ghost", EventType.stats, last_stats_at),
        # and presents its slides on that process too
        event(occurrence_id, sites["p1"], "slides", EventType.content_started, joined_at),
    ]
    # p2 joins the new process: its session is alive
    alive = [
        event(
            occurrence_id, sites["p2"], "alive", EventType.joined, restart_at + timedelta(seconds=3)
        )
    ]

    restarted = client.post(HEARTBEAT, json=beat("second", restart_at, 3), headers=key)
    assert restarted.status_code == 200
    assert lefts(database) == {}  # its spool is not delivered yet: nothing is known to end
    assert client.post(EVENTS, json={"events": spooled + alive}, headers=key).status_code == 200
    assert (
        client.post(HEARTBEAT, json=beat("second", restart_at, 0), headers=key).status_code == 200
    )

    assert lefts(database) == {"ghost": (last_stats_at, "node_restarted")}
    client.post(HEARTBEAT, json=beat("second", restart_at, 0), headers=key)
    assert len(lefts(database)) == 1  # once
    with database.session() as session:  # the presentation ended with its process too
        (shown,) = attendance_service.presentations(session=session, occurrence_id=occurrence_id)
    assert (shown.site_id, shown.started_at, shown.end_reason) == (
        sites["p1"].id,
        joined_at,
        "node_restarted",
    )
    assert shown.ended_at is not None and shown.ended_at >= joined_at
    with database.session() as session:
        row = session.get(Occurrence, occurrence_id)
        assert row is not None
        figures = {
            f.site_id: f
            for f in attendance_service.compute(
                session=session,
                occurrences=[OccurrenceWindow(row.id, row.start_at, row.end_at)],
                rule=AttendanceRule(),
                now=utcnow(),
            )[row.id]
        }
    ghost, live = figures[sites["p1"].id], figures[sites["p2"].id]
    # the hall is not "connected" until the meeting ends: it left when its worker died
    assert (ghost.last_leave_at, ghost.last_leave_reason) == (last_stats_at, "node_restarted")
    assert live.first_join_at is not None and live.last_leave_at is None


def test_flows_a_restart_drops_the_rooms_relayed_to_or_from_the_node(
    client: TestClient, database: Database, sites: dict[str, Site]
) -> None:
    with database.session() as session:
        (occurrence,) = make_occurrences(session, sites, count=1)
        occurrence_id = occurrence.id
    key = enrol_node(database, "hall-node")
    now = utcnow()
    assert client.post(HEARTBEAT, json=beat("first", now, 0), headers=key).status_code == 200
    with database.session() as session:
        session.add(RoomEdge(occurrence_id=occurrence_id, node_id="hall-node", kind="pipe"))
        session.commit()
    client.post(HEARTBEAT, json=beat("first", now, 0), headers=key)
    with database.session() as session:
        assert session.query(RoomEdge).count() == 1  # the same process: the pipe is alive
    client.post(HEARTBEAT, json=beat("second", now, 0), headers=key)
    with database.session() as session:
        assert session.query(RoomEdge).count() == 0  # the pipe died with the old process
        node = session.get(SfuNode, "hall-node")
        assert node is not None and node.incarnation == "second"
        assert node.restart_pending is False
