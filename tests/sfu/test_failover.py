"""A worker dies mid-meeting: its halls notice, join again naming the lost node, and are
served by the other worker within 10 s."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import httpx
import pytest

from confbridge.auth.models import Role
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.servers import Stack

MEDIA_SILENCE_S = 1.0  # what a hall takes as a lost connection
BACK_WITHIN_S = 10.0


@pytest.fixture
def stack_options(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("CONFBRIDGE_SFU_HEARTBEAT_INTERVAL_S", "1")
    return {"sfu": {"local_workers": 2}}


async def rejoin(stack: Stack, site: str, failed_node_id: str | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:
        response = await http.post(
            f"/api/v1/occurrences/{stack.occurrence_id}/join",
            json={"failed_node_id": failed_node_id} if failed_node_id else None,
            headers={"Authorization": f"Bearer {stack.tokens[site]}"},
        )
    assert response.status_code == 200, response.text
    return response.json()


async def test_failover_halls_are_back_within_10_s(
    stack: Stack, peers: list, make_user: Any
) -> None:
    it = make_user(Role.it)

    async def both_up() -> bool:
        async with httpx.AsyncClient(base_url=stack.control) as http:
            nodes = (await http.get("/api/v1/sfu/nodes", headers=it)).json()
        return len([n for n in nodes if n["state"] == "up"]) == 2

    deadline = time.monotonic() + 10
    while not await both_up():
        assert time.monotonic() < deadline, "the two workers did not register"
        await asyncio.sleep(0.2)

    chair_grant = await rejoin(stack, "hq")
    viewer_grant = await rejoin(stack, "p1")
    lost = chair_grant["node_id"]
    assert lost is not None and viewer_grant["node_id"] == lost
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    viewer = WhepViewer(viewer_grant["whep_url"], viewer_grant["token"])
    for peer in (chair, viewer):
        peers.append(peer)
        assert (await peer.start()).status_code == 201
    await until(lambda: len(viewer.frames) > 5, timeout_s=15)

    stack.workers.processes[int(lost.rsplit("-", 1)[1])].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    await until(lambda: time.monotonic() - viewer.frames[-1].at > MEDIA_SILENCE_S, timeout_s=5)
    # both halls join again, naming the node they lost
    chair_again = await rejoin(stack, "hq", failed_node_id=lost)
    viewer_again = await rejoin(stack, "p1", failed_node_id=lost)
    assert chair_again["node_id"] == viewer_again["node_id"] != lost
    chair2 = WhipPublisher(chair_again["whip_url"], chair_again["token"], width=320, height=240)
    viewer2 = WhepViewer(viewer_again["whep_url"], viewer_again["token"])
    for peer in (chair2, viewer2):
        peers.append(peer)
        assert (await peer.start()).status_code == 201
    await until(lambda: len(viewer2.frames) > 0, timeout_s=BACK_WITHIN_S)
    back_after = time.monotonic() - killed_at
    assert back_after <= BACK_WITHIN_S, back_after
    assert viewer2.widths_since(0) == {320}  # the chair's camera, through the other worker
