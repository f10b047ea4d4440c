"""The IT overview's own reading of the registry: the province each node serves, and where
each live meeting's room is held and relayed."""

from __future__ import annotations

from sqlalchemy.orm import Session

from confbridge.dashboard import service as dashboard_service
from confbridge.nodes import service as node_service
from confbridge.nodes.models import RoomEdge, RoomPlacement
from confbridge.settings import Settings
from confbridge.sites import service as site_service
from confbridge.sites.models import UnitKind
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
