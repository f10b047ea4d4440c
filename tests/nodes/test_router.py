"""The node registry over HTTP, and joins and floor commands going to the room's node."""

from __future__ import annotations

from fastapi.testclient import TestClient

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.sites import service as site_service
from confbridge.sites.models import Site
from tests.conftest import free_port
from tests.nodes.conftest import make_occurrences

NODE = {"Authorization": "Bearer change-me-in-production"}  # the development default


def beat(node_id: str, port: int, peers: int = 0) -> dict:
    return {
        "node_id": node_id,
        "public_url": f"http://127.0.0.1:{port}",
        "internal_url": f"http://127.0.0.1:{port}",
        "version": "1.0",
        "capacity_peers": 50,
        "load": {"rooms": 0, "peers": peers, "packets_per_s": 0, "cpu_ratio": 0.05},
    }


def test_router_heartbeat_needs_the_node_secret_and_registers(
    client: TestClient, make_user
) -> None:
    assert client.post("/api/v1/sfu/nodes/heartbeat", json=beat("a", 9001)).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (
        client.post("/api/v1/sfu/nodes/heartbeat", json=beat("a", 9001), headers=wrong).status_code
        == 401
    )
    bad = client.post("/api/v1/sfu/nodes/heartbeat", json={"node_id": "a"}, headers=NODE)
    assert bad.status_code == 422
    ack = client.post("/api/v1/sfu/nodes/heartbeat", json=beat("a", 9001), headers=NODE)
    assert ack.status_code == 200
    assert ack.json() == {"node_id": "a", "draining": False, "revocations": []}

    it = make_user(Role.it)
    secretariat = make_user(Role.secretariat)
    assert client.get("/api/v1/sfu/nodes", headers=secretariat).status_code == 403
    (node,) = client.get("/api/v1/sfu/nodes", headers=it).json()
    assert (node["id"], node["state"], node["capacity_peers"]) == ("a", "up", 50)

    drained = client.post("/api/v1/sfu/nodes/a/drain", headers=it)
    assert drained.status_code == 200 and drained.json()["state"] == "draining"
    again = client.post("/api/v1/sfu/nodes/heartbeat", json=beat("a", 9001), headers=NODE)
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
        _, token = site_service.create_terminal(session=session, site=site)
        session.commit()
        occurrence_id = occurrence.id
    busy, idle = free_port(), free_port()
    client.post("/api/v1/sfu/nodes/heartbeat", json=beat("busy", busy, peers=40), headers=NODE)
    client.post("/api/v1/sfu/nodes/heartbeat", json=beat("idle", idle, peers=2), headers=NODE)

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
        _, token = site_service.create_terminal(session=session, site=site)
        session.commit()
        occurrence_id = occurrence.id
    terminal = {"Authorization": f"Bearer {token}"}
    client.post("/api/v1/sfu/nodes/heartbeat", json=beat("dead", dead, peers=0), headers=NODE)
    client.post(
        "/api/v1/sfu/nodes/heartbeat", json=beat("alive", alive.port, peers=5), headers=NODE
    )
    url = f"/api/v1/occurrences/{occurrence_id}/join"

    first = client.post(url, headers=terminal).json()
    assert first["node_id"] == "dead"
    # a report about a node that answers changes nothing (the terminal's own link failed)
    client.post(
        "/api/v1/sfu/nodes/heartbeat", json=beat("alive", alive.port, peers=0), headers=NODE
    )
    client.post("/api/v1/sfu/nodes/heartbeat", json=beat("dead", dead, peers=10), headers=NODE)
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
    client.post("/api/v1/sfu/nodes/heartbeat", json=beat("dead", dead), headers=NODE)
    states = {n["id"]: n["state"] for n in client.get("/api/v1/sfu/nodes", headers=it).json()}
    assert states["dead"] == "up"
    too_long = client.post(url, json={"failed_node_id": "x" * 101}, headers=terminal)
    assert too_long.status_code == 422
