"""Peers that vanish without a DELETE are dropped once ICE consent (RFC 7675) expires.

The worker runs here with a consent check every second and failure after 3 unanswered ones
(`CONFBRIDGE_SFU_ICE_CONSENT_*`; by default every 5 s and 6 failures, about 30 s). A full ICE
agent (port-range mode) then drops a vanished peer 2.4–4 s after it went silent; an ICE-lite
one (single-port mode, the default) sends no checks and drops a peer whose own checks stopped
for the consent window, never shorter than `LITE_CONSENT_MIN_S` (15 s: peers check every
4–6 s).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from confbridge.sites.models import Site
from sfu.rtc.icelite import LITE_CONSENT_MIN_S
from tests.support.peers import WhepViewer, WhipPublisher, until, vanish
from tests.support.servers import NODE_SECRET, Stack

CONSENT_INTERVAL_S = 1.0
CONSENT_FAILURES = 3
# checks at most 1.2 intervals apart, each waiting 0.5 s for its answer, plus slack for a
# loaded host
CONSENT_EXPIRY_MAX_S = CONSENT_FAILURES * (CONSENT_INTERVAL_S * 1.2 + 0.5) + 10


@pytest.fixture(params=["single", "range"])
def stack_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The worker an ICE-lite agent on its single port, and a full agent in port-range mode."""
    return {"sfu": {"udp_mode": request.param}}


def expiry_bounds_s(stack: Stack) -> tuple[float, float]:
    """How long after a peer went silent the worker drops it, at the least and at most."""
    assert stack.settings is not None
    if stack.settings.sfu.udp_mode == "single" and stack.settings.sfu.ice_lite:
        # the peer's last check came up to one of its intervals (5 s × 1.2) before it vanished
        window = max(CONSENT_INTERVAL_S * CONSENT_FAILURES, LITE_CONSENT_MIN_S)
        return window - 6.0, window + CONSENT_INTERVAL_S + 10
    # at least the unanswered checks passed
    return (CONSENT_FAILURES - 1) * CONSENT_INTERVAL_S * 0.8, CONSENT_EXPIRY_MAX_S


@pytest.fixture
def fast_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    # the worker process inherits them
    monkeypatch.setenv("CONFBRIDGE_SFU_ICE_CONSENT_INTERVAL_S", str(CONSENT_INTERVAL_S))
    monkeypatch.setenv("CONFBRIDGE_SFU_ICE_CONSENT_FAILURES", str(CONSENT_FAILURES))


async def _worker_peers(stack: Stack) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.worker, timeout=10) as http:
        response = await http.get("/rooms", headers={"Authorization": f"Bearer {NODE_SECRET}"})
    assert response.status_code == 200, response.text
    return {peer["id"]: peer for room in response.json()["rooms"] for peer in room["peers"]}


async def test_peer_liveness_vanished_peers_are_dropped_after_consent_fails(
    fast_consent: None,
    stack: Stack,
    peers: list[WhipPublisher | WhepViewer],
    sites: dict[str, Site],
) -> None:
    """A publisher and a viewer go silent; the worker drops both and reports why they left."""
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"])
    p1 = await stack.join("p1")
    publisher = WhipPublisher(p1["whip_url"], p1["token"])
    p2 = await stack.join("p2")
    viewer = WhepViewer(p2["whep_url"], p2["token"])
    for peer in (chair, publisher, viewer):
        peers.append(peer)
        assert (await peer.start()).status_code == 201
    await until(lambda: len(viewer.frames) > 5, timeout_s=15)
    assert publisher.location and viewer.location
    gone = {publisher.location.rsplit("/", 1)[1], viewer.location.rsplit("/", 1)[1]}
    present = await _worker_peers(stack)
    assert gone <= present.keys() and all(present[id_]["connected"] for id_ in gone)

    vanish(publisher.pc)
    vanish(viewer.pc)
    vanished_at = time.monotonic()
    shortest_s, longest_s = expiry_bounds_s(stack)
    deadline = vanished_at + longest_s
    while gone & (await _worker_peers(stack)).keys():
        assert time.monotonic() < deadline, "the worker kept peers that answer no consent check"
        await asyncio.sleep(0.5)
    dropped_after_s = time.monotonic() - vanished_at
    # dropped for consent, not for some earlier reason
    assert dropped_after_s > shortest_s, dropped_after_s

    # The chair, still answering, stays; the control plane learns who left and why.
    remaining = await _worker_peers(stack)
    assert [peer["site_id"] for peer in remaining.values()] == [sites["hq"].id]
    deadline = time.monotonic() + 15
    while True:
        left = {
            event["peer_id"]: event
            for event in await stack.events()
            if event["type"] == "left" and event["peer_id"] in gone
        }
        if left.keys() == gone:
            break
        assert time.monotonic() < deadline, left
        await asyncio.sleep(0.2)
    assert {event["site_id"] for event in left.values()} == {sites["p1"].id, sites["p2"].id}
    assert {event["direction"] for event in left.values()} == {"ingest", "egress"}
    for event in left.values():
        assert event["detail"]["reason"] in ("connection failed", "connection closed"), event
