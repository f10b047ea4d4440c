"""The IT overview's own reading of the registry: the province each node serves, and where
each live meeting's room is held and relayed."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from confbridge.bridge.models import SfuEventRecord
from confbridge.dashboard import service as dashboard_service
from confbridge.nodes import service as node_service
from confbridge.nodes.models import RoomEdge, RoomPlacement
from confbridge.settings import Settings
from confbridge.sites import service as site_service
from confbridge.sites.models import UnitKind
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import NodeHeartbeat
from tests.support.factories import make_occurrences


def test_service_nodes_show_the_province_they_serve(session: Session, settings: Settings) -> None:
    site_service.create_unit(
        session=session, name="Tỉnh Quảng Ninh", kind=UnitKind.province, code="22"
    )
    now = utcnow()
    for node_id, region in (("qn", "22"), ("hn", "01"), ("any", "")):
        node_service.heartbeat(
            session=session,
            beat=NodeHeartbeat(
                node_id=node_id,
                public_url="http://127.0.0.1:9001",
                internal_url="http://127.0.0.1:9001",
                capacity_peers=100,
                region=region,
            ),
            now=now,
        )
    overview = dashboard_service.overview(session=session, settings=settings, now=now)
    # a code with no province unit in the database is shown as the code itself
    assert overview.regions == {"22": "Tỉnh Quảng Ninh"}
    assert {node.id: node.region for node, _state in overview.nodes} == {
        "qn": "22",
        "hn": "01",
        "any": "",
    }


def test_service_live_meetings_show_where_their_room_is_held_and_relayed(
    session: Session, settings: Settings, sites: dict
) -> None:
    (live, _tomorrow) = make_occurrences(session, sites, count=2)
    now = utcnow()
    for node_id in ("hn", "qn", "hn-2"):
        node_service.heartbeat(
            session=session,
            beat=NodeHeartbeat(
                node_id=node_id,
                public_url="http://127.0.0.1:9001",
                internal_url="http://127.0.0.1:9001",
                capacity_peers=100,
            ),
            now=now,
        )
    session.add(RoomPlacement(occurrence_id=live.id, node_id="hn"))
    session.add(RoomEdge(occurrence_id=live.id, node_id="qn", kind="cascade"))
    session.add(RoomEdge(occurrence_id=live.id, node_id="hn-2", kind="pipe"))
    session.flush()
    (meeting,) = dashboard_service.overview(session=session, settings=settings, now=now).meetings
    assert meeting.origin_node_id == "hn"
    assert [(e.node_id, e.kind) for e in meeting.edges] == [("hn-2", "pipe"), ("qn", "cascade")]


def _stats(
    session: Session, occurrence_id: int, site_id: int, peer: str, seconds_ago: float, **stats
) -> None:
    session.add(
        SfuEventRecord(
            id=uuid.uuid4().hex,
            type="stats",
            at=utcnow() - timedelta(seconds=seconds_ago),
            node_id="local-0",
            room=f"occurrence-{occurrence_id}",
            occurrence_id=occurrence_id,
            site_id=site_id,
            peer_id=peer,
            direction="egress",
            payload={"stats": stats},
        )
    )


def test_service_link_is_each_sessions_latest_report_not_the_minutes_worst(
    session: Session, settings: Settings, sites: dict
) -> None:
    """A spike 40 s ago (a busy moment) is not the link's state now: the latest report is."""
    (live, _tomorrow) = make_occurrences(session, sites, count=2)
    p1, p2 = sites["p1"].id, sites["p2"].id
    _stats(session, live.id, p1, "view-p1", 40, rtt_ms=560.0, loss_ratio=0.0)
    _stats(session, live.id, p1, "view-p1", 2, rtt_ms=3.0, loss_ratio=0.0)
    # a site is as bad as its worst session: p2's publishing session loses 8%
    _stats(session, live.id, p2, "view-p2", 2, rtt_ms=4.0, loss_ratio=0.0)
    _stats(session, live.id, p2, "pub-p2", 3, loss_ratio=0.08)
    # the chair console's own viewer is "site" 0: not a site of the meeting
    _stats(session, live.id, 0, "console", 1, rtt_ms=900.0, loss_ratio=0.3)
    session.flush()
    (meeting,) = dashboard_service.overview(
        session=session, settings=settings, now=utcnow()
    ).meetings
    links = {link.site_id: link for link in meeting.sites}
    assert set(links) == {p1, p2}
    assert links[p1].rtt_ms == 3.0 and links[p1].quality == "good" and not links[p1].bad
    assert links[p2].loss_ratio == 0.08 and links[p2].quality == "poor" and links[p2].bad
    # worst first
    assert [link.site_id for link in meeting.sites] == [p2, p1]


def test_service_counts_terminals_online_and_offline(
    session: Session, settings: Settings, sites: dict
) -> None:
    now = utcnow()
    fresh, _token = terminal_service.create_with_token(session=session, site=sites["p1"])
    stale, _token = terminal_service.create_with_token(session=session, site=sites["p2"])
    fresh.last_seen_at = now - timedelta(seconds=5)
    stale.last_seen_at = now - timedelta(hours=2)
    session.flush()
    overview = dashboard_service.overview(session=session, settings=settings, now=now)
    assert (overview.online_total, overview.offline_total) == (1, 1)
    assert [t.terminal_id for t in overview.offline_terminals] == [stale.id]


def test_service_live_meetings_keep_a_meeting_running_over_until_it_is_ended(
    session: Session, settings: Settings, sites: dict
) -> None:
    """Past its end, within the time it may run over, a meeting is still on now; once ended,
    it is not."""
    (meeting, _tomorrow) = make_occurrences(session, sites, count=2)
    grace_min = settings.meetings.overrun_grace_min
    assert grace_min > 2
    running_over = meeting.end_at + timedelta(minutes=2)
    shown = dashboard_service.overview(session=session, settings=settings, now=running_over)
    assert [m.occurrence_id for m in shown.meetings] == [meeting.id]
    past_grace = meeting.end_at + timedelta(minutes=grace_min, seconds=1)
    assert (
        dashboard_service.overview(session=session, settings=settings, now=past_grace).meetings
        == []
    )
    meeting.ended_at = running_over
    session.flush()
    assert (
        dashboard_service.overview(session=session, settings=settings, now=running_over).meetings
        == []
    )
