"""Only the node holding a room records it: with the room piped from its origin worker to an
edge worker (real worker processes, a real hall viewing on the edge), the edge refuses to
record and the control plane's recording is written once, on the origin."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from tests.sfu.test_pipe import base, other_worker
from tests.support.factories import let_node_hold
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.polling import eventually
from tests.support.servers import Stack


@pytest.fixture
def stack_options() -> dict[str, Any]:
    return {"sfu": {"local_workers": 2}}


async def _active(http: httpx.AsyncClient, worker: str, stack: Stack) -> float:
    text = (await http.get(f"{worker}/metrics", headers=stack.admin(worker))).text
    return next(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "confbridge_sfu_recordings_active"
    )


async def test_recording_an_edge_never_records_the_origin_does_once(
    stack: Stack, peers: list, sites: dict[str, Site], tmp_path: Any
) -> None:
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    origin = base(chair_grant["whip_url"])
    edge = other_worker(origin, stack)
    room = f"occ-{stack.occurrence_id}"
    async with httpx.AsyncClient(timeout=10) as http:

        async def chair_connected() -> bool:
            answer = await http.get(f"{origin}/rooms", headers=stack.admin(origin))
            held = [r for r in answer.json()["rooms"] if r["room"] == room]
            return bool(held) and any(p["connected"] for p in held[0]["peers"])

        await eventually(chair_connected, timeout_s=15, what="the chair's session connected")
        extended = await http.post(
            f"{edge}/rooms/{room}/pipe",
            json={
                "origin_url": origin,
                "occurrence_id": stack.occurrence_id,
                "chair_site_id": sites["hq"].id,
                "ends_at": (utcnow() + timedelta(hours=1)).isoformat(),
                "token": stack.relay_token(),
            },
            headers=stack.admin(edge),
        )
        assert extended.status_code == 200, extended.text
        assert stack.database is not None
        let_node_hold(stack.database, stack.node_id(edge), stack.occurrence_id)
        viewer = WhepViewer(f"{edge}/whep/{room}", (await stack.join("p1"))["token"])
        peers.append(viewer)
        assert (await viewer.start()).status_code == 201
        await until(lambda: len(viewer.frames) > 10, timeout_s=15)

        refused = await http.post(
            f"{edge}/rooms/{room}/recording",
            json={"action": "start", "recording_id": "on-the-edge"},
            headers=stack.admin(edge),
        )
        assert refused.status_code == 409 and "the node holding it records" in refused.text

        started = await http.post(
            f"{stack.control}/api/v1/occurrences/{stack.occurrence_id}/recording",
            json={"action": "start"},
            headers=stack.secretariat,
        )
        assert started.status_code == 200, started.text
        assert await _active(http, origin, stack) == 1
        assert await _active(http, edge, stack) == 0
        stopped = await http.post(
            f"{stack.control}/api/v1/occurrences/{stack.occurrence_id}/recording",
            json={"action": "stop"},
            headers=stack.secretariat,
        )
        assert stopped.status_code == 200, stopped.text
    recording_id = started.json()["id"]
    written = {p.parent.name for p in tmp_path.glob("recordings-*/*.webm")}
    assert written == {f"recordings-{stack.index(origin)}"}
    assert (tmp_path / f"recordings-{stack.index(origin)}" / f"{recording_id}.webm").exists()
