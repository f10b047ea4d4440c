"""The terminal agent as a real process presents a file (`--content-file`): it waits until its
site has the floor, the halls decode the file on their second video track, and once the chair
stops it the hall does not start it again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from confbridge.sites.models import Site
from tests.support.content_share import slides_clip
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.servers import AgentProcess, Stack, pairing_code

CLIP_WIDTH, CLIP_HEIGHT = 256, 144
MEDIA_TIMEOUT_S = 20.0


async def test_agent_presents_its_file_once_it_has_the_floor_until_the_chair_stops_it(
    stack: Stack,
    sites: dict[str, Site],
    it_user: dict[str, str],
    agents: Callable[[list[str]], AgentProcess],
    peers: list[WhipPublisher | WhepViewer],
    tmp_path: Path,
) -> None:
    """Refused without the floor → given the floor → presented → stopped by the chair."""
    clip = tmp_path / "bao-cao.webm"
    slides_clip(clip, CLIP_WIDTH, CLIP_HEIGHT)
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"])
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    ward_grant = await stack.join("p1")
    ward = WhepViewer(ward_grant["whep_url"], ward_grant["token"], content=True)
    peers.append(ward)
    assert (await ward.start()).status_code == 201

    code = pairing_code(stack, it_user, sites["p2"])
    agent = agents(
        ["--server", stack.control, "--pair", code, "--token-file", str(tmp_path / "token"),
         "--host-address", "127.0.0.1", "--agenda-interval-s", "2",
         "--content-file", str(clip), "--content-retry-s", "0.5"]
    )  # fmt: skip
    await agent.wait_for("joined", 30)
    await asyncio.sleep(2)  # it asks a few times; it has no floor yet
    assert agent.events("content_started") == []
    assert ward.content_frames == []

    assert (await stack.floor("give", sites["p2"].id)).status_code == 200
    await agent.wait_for("content_started", 15)
    await until(lambda: CLIP_WIDTH in ward.content_widths_since(0), timeout_s=MEDIA_TIMEOUT_S)
    assert {f.height for f in ward.content_frames} == {CLIP_HEIGHT}

    stopped = await stack.floor("stop_content")
    assert stopped.status_code == 200, stopped.text
    await agent.wait_for("content_stopped", 15)
    await asyncio.sleep(0.5)  # frames in flight
    quiet_from = time.monotonic()
    await asyncio.sleep(2)  # four retry intervals: it would have presented again by now
    assert ward.content_widths_since(quiet_from) == set()
    assert len(agent.events("content_started")) == 1

    deadline = time.monotonic() + MEDIA_TIMEOUT_S
    while True:
        events = [e for e in await stack.events() if e["type"].startswith("content_")]
        if len(events) >= 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert [(e["type"], e["site_id"]) for e in events] == [
        ("content_started", sites["p2"].id),
        ("content_stopped", sites["p2"].id),
    ]
