"""Content sharing seen from a viewer that is not on the presenter's worker (an edge): the
chair presents, the chair stops it, a hall given the floor presents next; and a clip for a
hall agent to present."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

from confbridge.sites.models import Site
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.servers import Stack

CHAIR_SLIDES_WIDTH = 352
HALL_SLIDES_WIDTH = 208
MEDIA_TIMEOUT_S = 20.0
QUIET_S = 1.5


def slides_clip(path: Path, width: int, height: int) -> None:
    """A short VP8 clip of ffmpeg's test card, standing in for a department's slides."""
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
         f"testsrc=size={width}x{height}:rate=10", "-t", "3", "-c:v", "libvpx", "-y", str(path)],
        check=True, timeout=60,
    )  # fmt: skip


async def present(stack: Stack, site: str, width: int, peers: list) -> WhipPublisher:
    """Open `site`'s presentation (frames `width` pixels wide) at the room's origin."""
    response = await stack.join_content(site)
    assert response.status_code == 200, response.text
    grant = response.json()
    slides = WhipPublisher(grant["whip_url"], grant["token"], width=width, height=144, content=True)
    peers.append(slides)
    answer = await slides.start()
    assert answer.status_code == 201, answer.text
    return slides


async def content_follows_presenters(
    stack: Stack, viewer: WhepViewer, sites: dict[str, Site], peers: list
) -> None:
    """`viewer` (with a content track) gets the chair's slides, nothing once they are stopped,
    then the slides of hall p2 (which must be in the room) once it has the floor."""
    assert viewer.content_frames == []  # nothing is sent while nobody shares
    chair_slides = await present(stack, "hq", CHAIR_SLIDES_WIDTH, peers)
    await until(
        lambda: CHAIR_SLIDES_WIDTH in viewer.content_widths_since(0), timeout_s=MEDIA_TIMEOUT_S
    )
    stopped = await stack.floor("stop_content")
    assert stopped.status_code == 200, stopped.text
    await until(lambda: chair_slides.pc.connectionState == "closed", timeout_s=MEDIA_TIMEOUT_S)
    await asyncio.sleep(0.5)  # frames in flight
    quiet_from = time.monotonic()
    count = len(viewer.content_frames)
    await asyncio.sleep(QUIET_S)
    assert viewer.content_widths_since(quiet_from) == set()
    assert len(viewer.content_frames) == count  # frames stop increasing

    assert (await stack.floor("give", sites["p2"].id)).status_code == 200
    await present(stack, "p2", HALL_SLIDES_WIDTH, peers)
    started = time.monotonic()
    await until(
        lambda: HALL_SLIDES_WIDTH in viewer.content_widths_since(started),
        timeout_s=MEDIA_TIMEOUT_S,
    )
    # the receiver's jitter buffer lets out the chair's last frame only once the next packet
    # comes: judge the frames after a moment
    settled = time.monotonic() + 0.5
    await until(lambda: len(viewer.content_widths_since(settled + 1.0)) > 0, MEDIA_TIMEOUT_S)
    assert viewer.content_widths_since(settled) == {HALL_SLIDES_WIDTH}
