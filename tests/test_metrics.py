"""The control plane's `/metrics`: request timings by route, meetings, nodes and alerts."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from confbridge.alerts import service as alert_service
from confbridge.db import Database
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from tests.support.factories import heartbeat, node_down

NODE = {"Authorization": "Bearer change-me-in-production"}


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=NODE)
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_time_requests_by_route_and_read_state(
    client: TestClient, database: Database, sites: dict[str, Site]
) -> None:
    assert client.get("/metrics").status_code == 401
    for site_id in (1, 2, 3):
        client.get(f"/api/v1/sites/{site_id}")
    with database.session() as session:
        heartbeat(session, "a", utcnow())
        alert_service.raise_(session=session, alert_in=node_down("b"), now=utcnow(), deliver=False)
        hall = session.get(Site, sites["p1"].id)
        assert hall is not None
        online, _ = terminal_service.create_with_token(session=session, site=hall)
        online.last_seen_at = utcnow()
        revoked, _ = terminal_service.create_with_token(session=session, site=hall)
        revoked.revoked_at = utcnow()
        terminal_service.create_with_token(session=session, site=hall)  # never heard from
        session.commit()
    samples = scrape(client)
    # one series for the three ids: the route's template, with the API prefix
    key = (
        "confbridge_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/api/v1/sites/{site_id}"), ("status", "401")),
    )
    assert samples[key] == 3
    assert samples[("confbridge_sfu_nodes", (("state", "up"),))] == 1
    assert samples[("confbridge_sfu_nodes", (("state", "down"),))] == 0
    assert samples[("confbridge_alerts_open", (("kind", "node_down"),))] == 1
    assert samples[("confbridge_meetings_live", ())] == 0
    for status in ("online", "offline", "revoked"):
        assert samples[("confbridge_terminals", (("status", status),))] == 1
