"""The IT overview: nodes, live meetings' links worst first, offline terminals, alerts."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi.testclient import TestClient

from confbridge.alerts import service as alert_service
from confbridge.auth.models import Role
from confbridge.bridge import events as event_service
from confbridge.db import Database
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import EventType, PeerStats, SfuEvent
from tests.support.factories import heartbeat, make_occurrences, node_down


def stats(
    occurrence_id: int, site_id: int, loss: float, rtt_ms: float, layer: str | None = None
) -> SfuEvent:
    return SfuEvent(
        id=uuid.uuid4().hex,
        type=EventType.stats,
        at=utcnow() - timedelta(seconds=5),
        node_id="a",
        room=f"occ-{occurrence_id}",
        occurrence_id=occurrence_id,
        site_id=site_id,
        peer_id=f"peer-{site_id}",
        direction="egress",
        stats=PeerStats(loss_ratio=loss, rtt_ms=rtt_ms, packets=100, layer=layer),
    )


def test_router_overview_for_it_staff(
    client: TestClient, database: Database, sites: dict[str, Site], make_user
) -> None:
    with database.session() as session:
        (live, _tomorrow) = make_occurrences(session, sites, count=2)
        heartbeat(session, "a", utcnow())
        event_service.store_events(
            session=session,
            events=[
                stats(live.id, sites["p1"].id, loss=0.01, rtt_ms=50, layer="main"),
                stats(live.id, sites["p2"].id, loss=0.12, rtt_ms=80, layer="small"),
                stats(live.id, sites["hq"].id, loss=0.0, rtt_ms=450),
            ],
        )
        alert_service.raise_(session=session, alert_in=node_down("b"), now=utcnow(), deliver=False)
        site = session.get(Site, sites["dept"].id)
        assert site is not None
        terminal_service.create_with_token(session=session, site=site)  # never heard from
        session.commit()
        live_id = live.id

    assert client.get("/api/v1/overview", headers=make_user(Role.secretariat)).status_code == 403
    overview = client.get("/api/v1/overview", headers=make_user(Role.it))
    assert overview.status_code == 200, overview.text
    body = overview.json()
    assert [(n["id"], n["state"]) for n in body["nodes"]] == [("a", "up")]
    (meeting,) = body["meetings"]
    assert meeting["occurrence_id"] == live_id and meeting["title"] == "Giao ban"
    assert [(s["site_id"], s["bad"], s["layer"]) for s in meeting["sites"]] == [
        (sites["p2"].id, True, "small"),  # 12 % loss: its screen gets the thumbnail
        (sites["p1"].id, False, "main"),
        (sites["hq"].id, True, None),  # 450 ms; no viewer report with a layer
    ]
    assert [t["site_name"] for t in body["offline_terminals"]] == ["Phòng họp Sở"]
    assert body["offline_terminals"][0]["last_seen_at"] is None
    assert [a["subject"] for a in body["alerts"]] == ["node:b"]
