"""`/healthz` and `/readyz` of the control plane."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from confbridge import migrate
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.nodes.models import SfuNode
from confbridge.timeutil import utcnow
from tests.support.factories import heartbeat, make_settings
from tests.support.object_store import SeaweedFs


def test_health_ready_only_with_a_node_up(client: TestClient, database: Database) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    alone = client.get("/readyz")
    assert alone.status_code == 503
    assert alone.json()["checks"]["sfu_nodes"] == {
        "ok": False,
        "detail": "no SFU node has registered",
    }
    assert alone.json()["checks"]["database"]["ok"] and alone.json()["checks"]["migrations"]["ok"]
    with database.session() as session:
        heartbeat(session, "a", utcnow())
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["checks"]["sfu_nodes"]["detail"] == "1 of 1 up"
    with database.session() as session:
        node = session.get(SfuNode, "a")
        assert node is not None
        node.last_seen_at = utcnow() - timedelta(minutes=1)
        session.commit()
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["checks"]["sfu_nodes"]["detail"] == "all 1 registered nodes are down"


def test_health_not_ready_behind_on_migrations(client: TestClient, database: Database) -> None:
    with database.session() as session:
        heartbeat(session, "a", utcnow())
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    try:
        behind = client.get("/readyz")
        assert behind.status_code == 503
        assert behind.json()["checks"]["migrations"]["detail"].startswith("at 0002, code needs")
    finally:
        with database.engine.begin() as connection:
            connection.execute(
                text("UPDATE alembic_version SET version_num = :head"),
                {"head": migrate.head_revision()},
            )


def test_health_a_node_of_the_previous_run_counts_only_once_it_reports_again(
    database: Database, settings
) -> None:
    """Right after a restart the database still says "up" for the previous run's worker,
    which may be dead: not ready until a node heartbeats to this run."""
    with database.session() as session:
        heartbeat(session, "local-0", utcnow() - timedelta(seconds=3))
    with TestClient(create_app(settings, database=database)) as client:
        before = client.get("/readyz")
        assert before.status_code == 503
        assert before.json()["checks"]["sfu_nodes"]["detail"] == (
            "none of 1 registered nodes has reported since the start"
        )
        with database.session() as session:
            heartbeat(session, "local-0", utcnow())
        assert client.get("/readyz").status_code == 200


def test_health_checks_the_object_store_where_one_is_configured(
    database: Database, tmp_path: Path, seaweed: SeaweedFs
) -> None:
    url = database.settings.database_url or ""
    working = make_settings(url, tmp_path, object_store=seaweed.settings())
    with TestClient(create_app(working, database=database)) as client:
        with database.session() as session:
            heartbeat(session, "a", utcnow())
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["object_store"]["ok"]
    wrong = seaweed.settings(secret_access_key="not-the-right-secret-key")
    refused = make_settings(url, tmp_path, object_store=wrong)
    with TestClient(create_app(refused, database=database)) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        check = answer.json()["checks"]["object_store"]
        assert not check["ok"] and "refused" in check["detail"]
