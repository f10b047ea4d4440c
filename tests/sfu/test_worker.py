"""The worker as a real process: terminals join through the control plane, publish with WHIP,
view with WHEP, and the chair's floor changes reach every hall."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from confbridge.sites.models import Site
from tests.support.peers import WhepViewer, WhipPublisher, loopback_peer, until
from tests.support.servers import Stack


async def test_worker_chair_reaches_wards_and_give_switches_the_programme(
    stack: Stack, peers: list, sites: dict[str, Site]
) -> None:
    chair_grant = await stack.join("hq")
    assert chair_grant["role"] == "chair"
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    response = await chair.start()
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/sdp")
    media_ports = [
        int(line.split()[5])
        for line in response.text.splitlines()
        if line.startswith("a=candidate:")
    ]
    # single-port mode (the default): the worker's one media port
    assert stack.settings is not None
    assert media_ports and set(media_ports) == {stack.settings.sfu.udp_port}

    p1 = await stack.join("p1")
    viewer = WhepViewer(p1["whep_url"], p1["token"])
    peers.append(viewer)
    viewed = await viewer.start()
    assert viewed.status_code == 201, viewed.text
    await until(lambda: len(viewer.frames) > 10 and viewer.audio_frames > 10, timeout_s=15)
    assert viewer.widths_since(0) == {320}  # the chair's camera

    p2 = await stack.join("p2")
    speaker = WhipPublisher(p2["whip_url"], p2["token"], width=176, height=144)
    peers.append(speaker)
    assert (await speaker.start()).status_code == 201
    given = await stack.floor("give", sites["p2"].id)
    assert given.status_code == 200, given.text
    assert given.json()["speaker_site_id"] == sites["p2"].id
    switched_at = time.monotonic()
    await until(lambda: 176 in viewer.widths_since(switched_at), timeout_s=10)

    taken = await stack.floor("take")
    assert taken.json()["speaker_site_id"] == sites["hq"].id
    back_at = time.monotonic()
    await until(lambda: 320 in viewer.widths_since(back_at + 0.5), timeout_s=10)

    # The worker reported who joined and the floor changes; the control plane stored them.
    wanted = {("joined", sites[k].id) for k in ("hq", "p1", "p2")}
    deadline = time.monotonic() + 15
    while True:
        events = await stack.events()
        seen = {(e["type"], e["site_id"]) for e in events}
        floors = [e for e in events if e["type"] == "floor_changed"]
        if wanted <= seen and len(floors) >= 2:
            break
        assert time.monotonic() < deadline, events
        await asyncio.sleep(0.2)
    assert floors[0]["floor"]["speaker_site_id"] == sites["p2"].id


async def test_worker_refuses_bad_requests_with_reasons(stack: Stack, peers: list) -> None:
    grant = await stack.join("p1")
    whip = grant["whip_url"]
    async with httpx.AsyncClient(timeout=10) as http:

        def post(url: str, body: str, headers: dict[str, str]) -> Any:
            return http.post(url, content=body, headers=headers)

        auth = {"Authorization": f"Bearer {grant['token']}"}
        sdp = {"Content-Type": "application/sdp"}
        no_token = await post(whip, "v=0", sdp)
        assert no_token.status_code == 401
        wrong_type = await post(whip, "v=0", {**auth, "Content-Type": "text/plain"})
        assert wrong_type.status_code == 415
        garbage = await post(whip, "this is not SDP", {**auth, **sdp})
        assert garbage.status_code == 400 and "SDP" in garbage.text
        other_room = await post(
            whip.replace(grant["whip_url"].rsplit("/", 1)[1], "occ-999999"), "v=0", {**auth, **sdp}
        )
        assert other_room.status_code == 403
        forged = await post(whip, "v=0", {"Authorization": "Bearer x.y.z", **sdp})
        assert forged.status_code == 401
        unknown = await http.delete(f"{whip}/0123456789abcdef", headers=auth)
        assert unknown.status_code == 404
        # a camera, its thumbnail, and one video track too many
        crowded = loopback_peer()
        for _ in range(3):
            crowded.addTransceiver("video", direction="sendonly")
        await crowded.setLocalDescription(await crowded.createOffer())
        too_many = await post(whip, crowded.localDescription.sdp, {**auth, **sdp})
        await crowded.close()
        assert too_many.status_code == 400 and "two video tracks" in too_many.text
    # The room still serves a well-behaved publisher afterwards.
    publisher = WhipPublisher(whip, grant["token"])
    peers.append(publisher)
    assert (await publisher.start()).status_code == 201
