"""The IT overview's own reading of the registry: the province each node serves."""

from __future__ import annotations

from sqlalchemy.orm import Session

from confbridge.contracts import NodeHeartbeat
from confbridge.dashboard import service as dashboard_service
from confbridge.db import utcnow
from confbridge.nodes import service as node_service
from confbridge.settings import Settings
from confbridge.sites import service as site_service
from confbridge.sites.models import UnitKind


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
