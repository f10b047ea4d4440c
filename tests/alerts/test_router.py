"""Alerts over HTTP: IT staff list and acknowledge them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from confbridge.alerts import service as alert_service
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.timeutil import utcnow
from tests.support.factories import node_down


def test_router_lists_and_acknowledges(client: TestClient, database: Database, make_user) -> None:
    with database.session() as session:
        for node in ("a", "b"):
            alert_service.raise_(
                session=session, alert_in=node_down(node), now=utcnow(), deliver=False
            )
        alert_service.resolve(
            session=session, kind=node_down().kind, subject="node:b", now=utcnow()
        )
        session.commit()
    it = make_user(Role.it)
    assert client.get("/api/v1/alerts", headers=make_user(Role.viewer)).status_code == 403
    everything = client.get("/api/v1/alerts", headers=it).json()
    assert everything["total"] == 2
    open_only = client.get("/api/v1/alerts?open=true", headers=it).json()
    (alert,) = open_only["items"]
    assert (alert["subject"], alert["open"], alert["message_en"]) == (
        "node:a",
        True,
        "SFU node a is down",
    )
    assert client.get("/api/v1/alerts?kind=nonsense", headers=it).status_code == 422
    acked = client.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=it)
    assert acked.status_code == 200 and acked.json()["acknowledged_by"].startswith("user:it")
    twice = client.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=it)
    assert twice.status_code == 409 and "acknowledged" in twice.json()["detail"]
    assert client.post("/api/v1/alerts/999999/acknowledge", headers=it).status_code == 404
