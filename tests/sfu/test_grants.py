"""Join grants on a real worker: one live session per grant and purpose, and revocation that
reaches the worker through its heartbeat (new sessions refused, live ones closed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from confbridge.auth.models import Role
from confbridge.sites.models import Site
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.servers import NODE_SECRET, Stack

# The worker's heartbeat interval (5 s by default) and slack for a loaded host.
REVOCATION_MAX_S = 5 + 10


async def _worker_peers(stack: Stack) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.worker, timeout=10) as http:
        response = await http.get("/rooms", headers={"Authorization": f"Bearer {NODE_SECRET}"})
    assert response.status_code == 200, response.text
    return [peer for room in response.json()["rooms"] for peer in room["peers"]]


async def _wait_for_peers(
    stack: Stack, condition: Callable[[list[dict[str, Any]]], bool], timeout_s: float
) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = await _worker_peers(stack)
        if condition(found):
            return found
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.2)


def _of(peers: list[dict[str, Any]], site_id: int, direction: str) -> list[dict[str, Any]]:
    return [p for p in peers if p["site_id"] == site_id and p["direction"] == direction]


async def test_grants_one_live_session_per_grant_and_purpose(
    stack: Stack, peers: list[WhipPublisher | WhepViewer], sites: dict[str, Site]
) -> None:
    """A second WHIP with the same grant replaces the first; a burst leaves one session."""
    site_id = sites["p1"].id
    grant = await stack.join("p1")
    first = WhipPublisher(grant["whip_url"], grant["token"])
    viewer = WhepViewer(grant["whep_url"], grant["token"])  # another purpose: allowed beside it
    for peer in (first, viewer):
        peers.append(peer)
        assert (await peer.start()).status_code == 201
    await until(lambda: first.pc.connectionState == "connected", timeout_s=15)
    assert first.location is not None
    first_id = first.location.rsplit("/", 1)[1]

    # the hall lost its network and comes back with the grant it holds
    second = WhipPublisher(grant["whip_url"], grant["token"])
    peers.append(second)
    assert (await second.start()).status_code == 201
    assert second.location is not None
    second_id = second.location.rsplit("/", 1)[1]
    found = await _wait_for_peers(
        stack, lambda found: [p["id"] for p in _of(found, site_id, "ingest")] == [second_id], 10
    )
    assert len(_of(found, site_id, "egress")) == 1  # the viewer stays
    await until(lambda: second.pc.connectionState == "connected", timeout_s=15)
    async with httpx.AsyncClient(timeout=10) as http:
        gone = await http.delete(
            f"{grant['whip_url']}/{first_id}", headers={"Authorization": f"Bearer {grant['token']}"}
        )
    assert gone.status_code == 404  # the replaced session no longer exists

    # a burst of offers with one grant: every one is answered, one session is left
    burst = [WhipPublisher(grant["whip_url"], grant["token"]) for _ in range(12)]
    peers.extend(burst)
    answers = await asyncio.gather(*(peer.start() for peer in burst))
    assert [a.status_code for a in answers] == [201] * len(burst)
    found = await _wait_for_peers(stack, lambda found: len(_of(found, site_id, "ingest")) == 1, 10)
    last_ids = {peer.location.rsplit("/", 1)[1] for peer in burst if peer.location}
    assert _of(found, site_id, "ingest")[0]["id"] in last_ids
    assert len(_of(found, site_id, "egress")) == 1


@pytest.fixture
def it(make_user: Callable[..., dict[str, str]]) -> dict[str, str]:
    return make_user(Role.it)


async def _terminal_id(stack: Stack, it: dict[str, str], site: Site) -> int:
    async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:
        response = await http.get(f"/api/v1/terminals?site_id={site.id}", headers=it)
    (terminal,) = response.json()["items"]
    return int(terminal["id"])


async def test_grants_of_a_revoked_terminal_stop_on_the_worker(
    stack: Stack,
    peers: list[WhipPublisher | WhepViewer],
    sites: dict[str, Site],
    it: dict[str, str],
) -> None:
    """Revoking a terminal, or pairing a new device in its place, closes the live sessions of
    its grants within a heartbeat and refuses those grants."""
    p1_site, p2_site = sites["p1"].id, sites["p2"].id
    p1 = await stack.join("p1")
    p2 = await stack.join("p2")
    sessions = [
        WhipPublisher(p1["whip_url"], p1["token"]),
        WhepViewer(p1["whep_url"], p1["token"]),
        WhipPublisher(p2["whip_url"], p2["token"]),
    ]
    for peer in sessions:
        peers.append(peer)
        assert (await peer.start()).status_code == 201
    await _wait_for_peers(
        stack, lambda found: len(found) == 3 and all(p["connected"] for p in found), 15
    )

    terminal_id = await _terminal_id(stack, it, sites["p1"])
    async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:
        revoked = await http.post(f"/api/v1/terminals/{terminal_id}/revoke", headers=it)
    assert revoked.status_code == 200, revoked.text

    found = await _wait_for_peers(
        stack, lambda found: not [p for p in found if p["site_id"] == p1_site], REVOCATION_MAX_S
    )
    assert len(_of(found, p2_site, "ingest")) == 1  # another site's terminal is untouched
    async with httpx.AsyncClient(timeout=10) as http:
        for url in (p1["whip_url"], p1["whep_url"]):
            again = await http.post(
                url,
                content="v=0\r\n",
                headers={
                    "Authorization": f"Bearer {p1['token']}",
                    "Content-Type": "application/sdp",
                },
            )
            assert again.status_code == 401 and "revoked" in again.text
    # attendance hears why the hall left (events arrive through the worker's spool)
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        left = [e for e in await stack.events() if e["type"] == "left" and e["site_id"] == p1_site]
        if len(left) == 2:
            break
        assert asyncio.get_running_loop().time() < deadline, left
        await asyncio.sleep(0.2)
    assert [e["detail"]["reason"] for e in left] == ["revoked", "revoked"]

    # a replacement device pairs for p2: the old device's grant stops as well
    p2_terminal = await _terminal_id(stack, it, sites["p2"])
    async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:
        code = await http.post(f"/api/v1/terminals/{p2_terminal}/pairing-code", headers=it)
        paired = await http.post("/api/v1/terminals/pair", json={"code": code.json()["code"]})
    assert paired.status_code == 200, paired.text
    await _wait_for_peers(stack, lambda found: not found, REVOCATION_MAX_S)
    stack.tokens["p2"] = paired.json()["token"]
    fresh = await stack.join("p2")
    publisher = WhipPublisher(fresh["whip_url"], fresh["token"])
    peers.append(publisher)
    assert (await publisher.start()).status_code == 201
    await _wait_for_peers(stack, lambda found: len(_of(found, p2_site, "ingest")) == 1, 10)
