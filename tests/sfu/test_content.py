"""Content sharing with aiortc halls against the worker process: a content grant publishes a
presentation, viewers decode it on their second video track, a new presenter replaces the old,
the chair stops it, and the events say who presented when."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from confbridge.sites.models import Site
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.servers import Stack

CAMERA_WIDTH = 320
CHAIR_SLIDES_WIDTH = 352
HALL_SLIDES_WIDTH = 208
MEDIA_TIMEOUT_S = 15.0
QUIET_S = 1.5


async def _content_events(stack: Stack, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + MEDIA_TIMEOUT_S
    while True:
        events = [e for e in await stack.events() if e["type"].startswith("content_")]
        if len(events) >= count:
            return events
        assert time.monotonic() < deadline, events
        await asyncio.sleep(0.2)


async def _present(stack: Stack, site: str, width: int, peers: list) -> WhipPublisher:
    response = await stack.join_content(site)
    assert response.status_code == 200, response.text
    grant = response.json()
    assert grant["purpose"] == "content"
    slides = WhipPublisher(grant["whip_url"], grant["token"], width=width, height=144, content=True)
    peers.append(slides)
    answer = await slides.start()
    assert answer.status_code == 201, answer.text
    return slides


async def test_content_reaches_viewers_on_the_second_track_and_the_chair_stops_it(
    stack: Stack, peers: list, sites: dict[str, Site]
) -> None:
    """Chair presents; a two-track viewer decodes it, a one-track viewer keeps the programme;
    a hall with the floor takes over; the chair stops it; events record both presenters."""
    chair_grant = await stack.join("hq")
    camera = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=CAMERA_WIDTH)
    peers.append(camera)
    assert (await camera.start()).status_code == 201
    p1 = await stack.join("p1")
    viewer = WhepViewer(p1["whep_url"], p1["token"], content=True)
    peers.append(viewer)
    assert (await viewer.start()).status_code == 201
    p2 = await stack.join("p2")
    plain = WhepViewer(p2["whep_url"], p2["token"])  # an older terminal: one video m-line
    peers.append(plain)
    assert (await plain.start()).status_code == 201
    await until(lambda: CAMERA_WIDTH in viewer.widths_since(0), timeout_s=MEDIA_TIMEOUT_S)
    assert viewer.content_frames == []  # nothing is sent while nobody shares

    # A hall without the floor may not present.
    refused = await stack.join_content("p2")
    assert refused.status_code == 403, refused.text
    assert "floor" in refused.text

    chair_slides = await _present(stack, "hq", CHAIR_SLIDES_WIDTH, peers)
    await until(
        lambda: CHAIR_SLIDES_WIDTH in viewer.content_widths_since(0), timeout_s=MEDIA_TIMEOUT_S
    )
    now = time.monotonic()
    await until(lambda: CAMERA_WIDTH in viewer.widths_since(now), timeout_s=MEDIA_TIMEOUT_S)
    await until(lambda: CAMERA_WIDTH in plain.widths_since(now), timeout_s=MEDIA_TIMEOUT_S)
    assert CHAIR_SLIDES_WIDTH not in plain.widths_since(0)
    floor = (await stack.floor("take")).json()
    assert floor["content_site_id"] == sites["hq"].id
    # a hall that joins while the chair presents gets the slides at once
    again = await stack.join("p1")  # a second screen of the hall: its own grant
    late = WhepViewer(again["whep_url"], again["token"], content=True)
    peers.append(late)
    assert (await late.start()).status_code == 201
    await until(
        lambda: CHAIR_SLIDES_WIDTH in late.content_widths_since(0), timeout_s=MEDIA_TIMEOUT_S
    )

    # The hall given the floor presents; its slides replace the chair's.
    assert (await stack.floor("give", sites["p2"].id)).status_code == 200
    hall_publisher = await _present(stack, "p2", HALL_SLIDES_WIDTH, peers)
    switched = time.monotonic()
    await until(
        lambda: HALL_SLIDES_WIDTH in viewer.content_widths_since(switched),
        timeout_s=MEDIA_TIMEOUT_S,
    )
    await until(lambda: chair_slides.pc.connectionState == "closed", timeout_s=MEDIA_TIMEOUT_S)

    stopped = await stack.floor("stop_content")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["content_site_id"] is None
    await until(lambda: hall_publisher.pc.connectionState == "closed", timeout_s=MEDIA_TIMEOUT_S)
    await asyncio.sleep(0.5)  # frames in flight
    quiet_from = time.monotonic()
    await asyncio.sleep(QUIET_S)
    assert viewer.content_widths_since(quiet_from) == set()
    # the programme goes on (p2 has no camera here: the chair takes the floor back)
    await stack.floor("take")
    await until(lambda: CAMERA_WIDTH in viewer.widths_since(quiet_from), timeout_s=MEDIA_TIMEOUT_S)

    events = await _content_events(stack, 4)
    story = [(e["type"], e["site_id"]) for e in events]
    assert story == [
        ("content_started", sites["hq"].id),
        ("content_stopped", sites["hq"].id),
        ("content_started", sites["p2"].id),
        ("content_stopped", sites["p2"].id),
    ]
    assert events[1]["detail"]["reason"] == "replaced by another presenter"
    assert events[3]["detail"]["reason"].startswith("stopped by")
    # A presentation is no attendance: the camera sessions' joins are the only ones.
    joined = {e["site_id"] for e in await stack.events() if e["type"] == "joined"}
    assert joined == {sites["hq"].id, sites["p1"].id, sites["p2"].id}
    # The attendance lists who presented, when, and how it ended.
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"{stack.control}/api/v1/occurrences/{stack.occurrence_id}/attendance",
            headers=stack.secretariat,
        )
    assert response.status_code == 200, response.text
    shown = response.json()["presentations"]
    assert [(p["site_id"], p["site_name"], p["end_reason"]) for p in shown] == [
        (sites["hq"].id, sites["hq"].name, "replaced by another presenter"),
        (sites["p2"].id, sites["p2"].name, "stopped by user:vanphong"),
    ]
    assert shown[0]["started_at"] < shown[0]["ended_at"] <= shown[1]["started_at"]
    assert shown[1]["ended_at"] == events[3]["at"]


async def test_content_grant_cannot_view_nor_carry_audio(stack: Stack, peers: list) -> None:
    """A content grant publishes one video track, nothing else."""
    grant = (await stack.join_content("hq")).json()
    viewer = WhepViewer(grant["whep_url"], grant["token"])
    peers.append(viewer)
    refused = await viewer.start()
    assert refused.status_code == 403 and "content grant" in refused.text
    with_audio = WhipPublisher(grant["whip_url"], grant["token"])  # camera and microphone
    peers.append(with_audio)
    answer = await with_audio.start()
    assert answer.status_code == 400 and "one video track" in answer.text
