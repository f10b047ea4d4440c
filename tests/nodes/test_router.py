"""The node registry over HTTP, and joins and floor commands going to the room's node."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from confbridge.auth.models import AuditEntry, Role
from confbridge.db import Database
from confbridge.nodes.models import SfuNode
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from tests.support.factories import enrol_node, make_occurrences
from tests.support.servers import free_port


def beat(node_id: str, port: int, peers: int = 0) -> dict:
    return {
        "node_id": node_id,
        "public_url": f"http://127.0.0.1:{port}",
        "internal_url": f"http://127.0.0.1:{port}",
        "version": "1.0",
        "capacity_peers": 50,
        "load": {"rooms": 0, "peers": peers, "packets_per_s": 0, "cpu_ratio": 0.05},
    }


def test_router_heartbeat_needs_the_nodes_own_key_and_registers(
    client: TestClient, make_user, database: Database
) -> None:
    own_key = enrol_node(database, "a")
    assert client.post("/api/v1/sfu/nodes/heartbeat", json=beat("a", 9001)).status_code == 401
    for wrong in ("nope", "change-me-in-production", "cbn_" + "x" * 43):
        refused = client.post(
            "/api/v1/sfu/nodes/heartbeat",
            json=beat("a", 9001),
            headers={"Authorization": f"Bearer {wrong}"},
        )
        assert refused.status_code == 401
    bad = client.post("/api/v1/sfu/nodes/heartbeat", json={"node_id": "a"}, headers=own_key)
    assert bad.status_code == 422
    ack = client.post("/api/v1/sfu/nodes/heartbeat", json=beat("a", 9001), headers=own_key)
    assert ack.status_code == 200
    assert ack.json() == {"node_id": "a", "draining": False, "revocations": []}

    it = make_user(Role.it)
    secretariat = make_user(Role.secretariat)
    assert client.get("/api/v1/sfu/nodes", headers=secretariat).status_code == 403
    (node,) = client.get("/api/v1/sfu/nodes", headers=it).json()
    assert (node["id"], node["state"], node["capacity_peers"]) == ("a", "up", 50)

    drained = client.post("/api/v1/sfu/nodes/a/drain", headers=it)
    assert drained.status_code == 200 and drained.json()["state"] == "draining"
    again = client.post("/api/v1/sfu/nodes/heartbeat", json=beat("a", 9001), headers=own_key)
    assert again.json()["draining"] is True
    resumed = client.post("/api/v1/sfu/nodes/a/resume", headers=it)
    assert resumed.json()["state"] == "up"
    missing = client.post("/api/v1/sfu/nodes/nope/drain", headers=it)
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_router_join_and_floor_go_to_the_rooms_node(
    client: TestClient, database: Database, sites: dict[str, Site], secretariat: dict
) -> None:
    with database.session() as session:
        (occurrence,) = make_occurrences(session, sites, count=1)
        site = session.get(Site, sites["p1"].id)
        assert site is not None
        _, token = terminal_service.create_with_token(session=session, site=site)
        session.commit()
        occurrence_id = occurrence.id
    busy, idle = free_port(), free_port()
    client.post(
        "/api/v1/sfu/nodes/heartbeat",
        json=beat("busy", busy, peers=40),
        headers=enrol_node(database, "busy"),
    )
    client.post(
        "/api/v1/sfu/nodes/heartbeat",
        json=beat("idle", idle, peers=2),
        headers=enrol_node(database, "idle"),
    )

    joined = client.post(
        f"/api/v1/occurrences/{occurrence_id}/join",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert joined.status_code == 200, joined.text
    assert joined.json()["whip_url"] == f"http://127.0.0.1:{idle}/whip/occ-{occurrence_id}"
    # the floor command goes to that node too (nothing listens there: a clear 503 naming it)
    floor = client.post(
        f"/api/v1/occurrences/{occurrence_id}/floor",
        json={"action": "take"},
        headers=secretariat,
    )
    assert floor.status_code == 503
    assert f"127.0.0.1:{idle}" in floor.json()["detail"]


def test_router_a_node_reported_dead_loses_its_room_at_once(
    client: TestClient, database: Database, sites: dict[str, Site], serve, make_user
) -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def healthz(_request: object) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    alive = serve(Starlette(routes=[Route("/healthz", healthz)]))
    dead = free_port()
    with database.session() as session:
        (occurrence,) = make_occurrences(session, sites, count=1)
        site = session.get(Site, sites["p1"].id)
        assert site is not None
        _, token = terminal_service.create_with_token(session=session, site=site)
        session.commit()
        occurrence_id = occurrence.id
    terminal = {"Authorization": f"Bearer {token}"}
    dead_key, alive_key = enrol_node(database, "dead"), enrol_node(database, "alive")
    client.post("/api/v1/sfu/nodes/heartbeat", json=beat("dead", dead, peers=0), headers=dead_key)
    client.post(
        "/api/v1/sfu/nodes/heartbeat", json=beat("alive", alive.port, peers=5), headers=alive_key
    )
    url = f"/api/v1/occurrences/{occurrence_id}/join"

    first = client.post(url, headers=terminal).json()
    assert first["node_id"] == "dead"
    # a report about a node that answers changes nothing (the terminal's own link failed)
    client.post(
        "/api/v1/sfu/nodes/heartbeat", json=beat("alive", alive.port, peers=0), headers=alive_key
    )
    client.post("/api/v1/sfu/nodes/heartbeat", json=beat("dead", dead, peers=10), headers=dead_key)
    kept = client.post(url, json={"failed_node_id": "alive"}, headers=terminal).json()
    assert kept["node_id"] == "dead"
    moved = client.post(url, json={"failed_node_id": "dead"}, headers=terminal)
    assert moved.status_code == 200, moved.text
    assert moved.json()["node_id"] == "alive"
    assert moved.json()["whep_url"] == f"http://127.0.0.1:{alive.port}/whep/occ-{occurrence_id}"
    it = make_user(Role.it)
    states = {n["id"]: n["state"] for n in client.get("/api/v1/sfu/nodes", headers=it).json()}
    assert states == {"dead": "down", "alive": "up"}
    # its next heartbeat (it was only restarting) brings it back
    client.post("/api/v1/sfu/nodes/heartbeat", json=beat("dead", dead), headers=dead_key)
    states = {n["id"]: n["state"] for n in client.get("/api/v1/sfu/nodes", headers=it).json()}
    assert states["dead"] == "up"
    too_long = client.post(url, json={"failed_node_id": "x" * 101}, headers=terminal)
    assert too_long.status_code == 422


def test_router_enrolment_by_an_admin_shows_the_key_once_and_revokes(
    client: TestClient, make_user, database: Database
) -> None:
    admin, it = make_user(Role.admin), make_user(Role.it)
    body = {"node_id": "qn-1", "allow_loopback": True}
    assert client.post("/api/v1/sfu/nodes", json=body, headers=it).status_code == 403
    enrolled = client.post("/api/v1/sfu/nodes", json=body, headers=admin)
    assert enrolled.status_code == 201, enrolled.text
    key = enrolled.json()["key"]
    assert key.startswith("cbn_") and enrolled.json()["state"] is None
    again = client.post("/api/v1/sfu/nodes", json=body, headers=admin)
    assert again.status_code == 409 and "already enrolled" in again.json()["detail"]
    listed = client.get("/api/v1/sfu/enrolments", headers=it).json()
    assert [e["node_id"] for e in listed] == ["qn-1"] and "key" not in listed[0]
    bad = client.post("/api/v1/sfu/nodes", json={"node_id": "local-0"}, headers=admin)
    assert bad.status_code == 422
    assert (
        client.post("/api/v1/sfu/nodes", json={"node_id": "a b"}, headers=admin).status_code == 422
    )

    own = {"Authorization": f"Bearer {key}"}
    registered = client.post("/api/v1/sfu/nodes/heartbeat", json=beat("qn-1", 9001), headers=own)
    assert registered.status_code == 200
    # a new key for it: the old one stops at once
    rotated = client.post("/api/v1/sfu/nodes", json={**body, "rotate": True}, headers=admin)
    assert rotated.status_code == 201 and rotated.json()["state"] == "up"
    assert (
        client.post("/api/v1/sfu/nodes/heartbeat", json=beat("qn-1", 9001), headers=own).status_code
        == 401
    )
    own = {"Authorization": f"Bearer {rotated.json()['key']}"}
    assert (
        client.post("/api/v1/sfu/nodes/heartbeat", json=beat("qn-1", 9001), headers=own).status_code
        == 200
    )

    assert client.delete("/api/v1/sfu/nodes/qn-1", headers=it).status_code == 403
    assert client.delete("/api/v1/sfu/nodes/qn-1", headers=admin).status_code == 204
    assert client.delete("/api/v1/sfu/nodes/qn-1", headers=admin).status_code == 404
    refused = client.post("/api/v1/sfu/nodes/heartbeat", json=beat("qn-1", 9001), headers=own)
    assert refused.status_code == 401
    (node,) = client.get("/api/v1/sfu/nodes", headers=it).json()
    assert node["state"] == "down"  # its rooms move at their next join
    with database.session() as session:
        actions = [
            (entry.actor, entry.action)
            for entry in session.scalars(
                select(AuditEntry).where(AuditEntry.entity == "sfu_node").order_by(AuditEntry.id)
            )
        ]
    assert actions == [
        ("user:admin1", "node_enrolled"),
        ("node:qn-1", "node_registered"),
        ("user:admin1", "node_key_rotated"),
        ("user:admin1", "node_revoked"),
    ]


def test_router_a_node_speaks_only_for_itself(client: TestClient, database: Database) -> None:
    """With its key a node cannot register (or take the rooms of) another node."""
    enrol_node(database, "victim")
    attacker = enrol_node(database, "attacker")
    refused = client.post(
        "/api/v1/sfu/nodes/heartbeat", json=beat("victim", 9001), headers=attacker
    )
    assert refused.status_code == 403 and "attacker" in refused.json()["detail"]
    with database.session() as session:
        assert session.get(SfuNode, "victim") is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254", "link-local"),
        ("http://[fe80::1]:8001", "link-local"),
        ("http://[::ffff:169.254.169.254]", "link-local"),
        ("http://100.100.100.200", "metadata"),
        ("http://0.0.0.0:8001", "link-local, multicast"),
        ("http://224.0.0.1:8001", "multicast"),
        ("http://user:pw@10.0.0.5:8001", "user name or password"),
        ("ftp://10.0.0.5", "http:// or https://"),
        ("http://10.0.0.5:8001/?next=x", "query"),
        ("http://127.0.0.1:8001", "loopback"),
        ("http://localhost:8001", "loopback"),
        ("http://10.0.0.5:99999", "not a valid URL"),
    ],
)
def test_router_node_urls_are_checked(
    client: TestClient, database: Database, url: str, reason: str
) -> None:
    """The control plane posts to a node's internal URL and other nodes to its public one:
    never to metadata, link-local or (for a remote node) loopback addresses."""
    remote = enrol_node(database, "remote", allow_loopback=False)
    for field in ("public_url", "internal_url"):
        body = beat("remote", 9001) | {"public_url": "http://10.0.0.5:8001"}
        body["internal_url"] = "http://10.0.0.5:8001"
        body[field] = url
        refused = client.post("/api/v1/sfu/nodes/heartbeat", json=body, headers=remote)
        assert refused.status_code == 422, refused.text
        assert field in refused.json()["detail"] and reason in refused.json()["detail"]
    body = beat("remote", 9001) | {
        "public_url": "https://sfu-qn.example.vn:8443",
        "internal_url": "http://10.0.0.5:8001",
    }
    assert client.post("/api/v1/sfu/nodes/heartbeat", json=body, headers=remote).status_code == 200
    with database.session() as session:
        node = session.get(SfuNode, "remote")
        assert node is not None and node.internal_url == "http://10.0.0.5:8001"


def test_router_a_join_with_no_live_node_is_503_with_retry_after(
    client: TestClient, database: Database, sites: dict[str, Site]
) -> None:
    """Never a URL to a worker that is dead or not listening yet: the terminal waits."""
    with database.session() as session:
        (occurrence,) = make_occurrences(session, sites, count=1)
        site = session.get(Site, sites["p1"].id)
        assert site is not None
        _, token = terminal_service.create_with_token(session=session, site=site)
        session.commit()
        occurrence_id = occurrence.id
    url = f"/api/v1/occurrences/{occurrence_id}/join"
    terminal = {"Authorization": f"Bearer {token}"}
    none_yet = client.post(url, headers=terminal)
    assert none_yet.status_code == 503 and none_yet.headers["retry-after"] == "2"
    assert "registered" in none_yet.json()["detail"]
    # a node from before, silent now (a worker of the previous run)
    client.post(
        "/api/v1/sfu/nodes/heartbeat",
        json=beat("old", free_port()),
        headers=enrol_node(database, "old"),
    )
    with database.session() as session:
        node = session.get(SfuNode, "old")
        assert node is not None
        node.last_seen_at = node.last_seen_at - timedelta(seconds=30)
        session.commit()
    dead = client.post(url, headers=terminal)
    assert dead.status_code == 503 and dead.headers["retry-after"] == "2"
    assert "whip_url" not in dead.json()
