"""Room systems with a camera (baresip: libx264 on a test pattern, FFmpeg's H.264 decoder):
a caller joining by PIN and an invited hall called at the start. Both ways are checked where
they are decoded: the room's H.264 by the room system (a snapshot of the pictures it decodes),
the room system's by a WebRTC hall once the chair gives it the floor."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import av
import pytest

from confbridge.sites.models import Site
from tests.support.peers import ToneTrack, WhepViewer, WhipPublisher
from tests.support.polling import eventually
from tests.support.servers import Stack
from tests.support.sip_agents import Baresip, BaresipVideo, baresip_video_available
from tests.support.sip_calls import Bridge, set_sip_uri, sites_in_room

pytestmark = pytest.mark.skipif(
    not baresip_video_available(), reason="baresip-ffmpeg is not installed (CI installs it)"
)

CAMERA = BaresipVideo(width=352, height=288)
CHAIR_SIZE = (192, 144)  # neither the room system's nor any hall's picture size
# H.264 of a flat picture decodes nearly flat; a test pattern or a broken decode does not
FLAT_STDDEV = 8.0


async def test_a_room_system_joining_by_pin_sees_the_chair_and_is_seen_with_the_floor(
    bridge: Bridge, room_systems: list[Baresip], peers: list[Any], tmp_path: Path
) -> None:
    """The caller's leg switches the room to H.264: the chair, publishing after it joined,
    sends H.264 that the room system decodes; given the floor, a ward hall decodes it."""
    stack = bridge.stack
    guest = Baresip(tmp_path / "guest", user="expert", domain="example.org", video=CAMERA)
    room_systems.append(guest)
    before = await sites_in_room(stack)
    guest.dial(bridge.address())
    await guest.until("Call established")
    await guest.until("Set video decoder: H264 packetization-mode=1")
    guest.digits(bridge.pin + "#")
    (guest_site,) = await eventually(
        lambda: _new_sites(stack, before), 10, "the guest in the room after the PIN"
    )

    await _chair_on_camera(stack, peers)  # the chair speaks: the room system sees it
    picture = await asyncio.to_thread(guest.snapshot_received, tmp_path / "chair.png")
    assert _flat_picture_size(picture) == CHAIR_SIZE

    await _given_the_floor_is_seen(stack, peers, guest_site, viewer_site="p2")


async def test_an_invited_room_system_called_at_the_start_exchanges_video(
    bridge: Bridge,
    room_systems: list[Baresip],
    sites: dict[str, Site],
    peers: list[Any],
    tmp_path: Path,
) -> None:
    """A site with a room system is due: the chair's grant asks for H.264 before any call,
    the bridge's offer carries H.264, and pictures go both ways."""
    stack = bridge.stack
    hall = Baresip(tmp_path / "p2", user="p2-hall", video=CAMERA)
    room_systems.append(hall)
    set_sip_uri(stack, sites["p2"], hall.contact)  # the meeting is on: due at once
    await _chair_on_camera(stack, peers)

    # waited for in a thread: the chair, on this event loop, goes on connecting meanwhile
    await hall.until("Call established", timeout_s=20)
    await eventually(lambda: _in_room(stack, sites["p2"].id), 10, "p2 called into the room")
    picture = await asyncio.to_thread(hall.snapshot_received, tmp_path / "chair.png")
    assert _flat_picture_size(picture) == CHAIR_SIZE

    await _given_the_floor_is_seen(stack, peers, sites["p2"].id, viewer_site="p1")


async def _chair_on_camera(stack: Stack, peers: list[Any]) -> WhipPublisher:
    joined = await stack.join("hq")
    width, height = CHAIR_SIZE
    chair = WhipPublisher(
        joined["whip_url"], joined["token"], width=width, height=height, audio=ToneTrack(0.5)
    )
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    return chair


async def _given_the_floor_is_seen(
    stack: Stack, peers: list[Any], site_id: int, *, viewer_site: str
) -> None:
    """A ward hall watching the room decodes the room system's pictures once it speaks."""
    joined = await stack.join(viewer_site)
    viewer = WhepViewer(joined["whep_url"], joined["token"])
    peers.append(viewer)
    assert (await viewer.start()).status_code == 201
    await eventually(lambda: _shows(viewer, CHAIR_SIZE, 0.0), 15, "the hall seeing the chair")
    given = await eventually(lambda: _floor_given(stack, site_id), 15, "the floor given")
    camera = (CAMERA.width, CAMERA.height)
    await eventually(lambda: _shows(viewer, camera, given), 15, "the hall seeing the room system")


def _flat_picture_size(path: Path) -> tuple[int, int]:
    """The size of a decoded snapshot that shows a flat picture (the chair's camera)."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    spread = frame.to_ndarray(format="rgb24").reshape(-1, 3).std(axis=0).max()
    assert spread < FLAT_STDDEV, f"not the chair's flat picture: {spread:.1f}"
    return frame.width, frame.height


async def _shows(viewer: WhepViewer, size: tuple[int, int], since: float) -> bool:
    """True once the viewer decoded a few pictures of `size` after `since`."""
    return sum(1 for f in viewer.frames if f.at >= since and (f.width, f.height) == size) >= 5


async def _floor_given(stack: Stack, site_id: int) -> float | None:
    # the room's events reach the control plane a moment after the leg joined
    response = await stack.floor("give", site_id)
    if response.status_code == 200 and response.json()["speaker_site_id"] == site_id:
        return time.monotonic()
    return None


async def _in_room(stack: Stack, site_id: int) -> bool:
    return site_id in await sites_in_room(stack)


async def _new_sites(stack: Stack, before: set[int]) -> set[int]:
    return await sites_in_room(stack) - before
