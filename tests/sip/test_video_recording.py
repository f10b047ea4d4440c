"""Recording a room with a room system (baresip sending H.264, a real SIP call): the room's
video is H.264, recorded as it is into Matroska, once; the room system's leg is a participant
of the room, never a second recorder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from confbridge.sites.models import Site
from tests.sfu.recording.probe import decode_all, ffprobe
from tests.sip.test_video import CAMERA, CHAIR_SIZE, _chair_on_camera, _floor_given, _in_room
from tests.support.polling import eventually
from tests.support.sip_agents import Baresip, baresip_video_available
from tests.support.sip_calls import Bridge, set_sip_uri

pytestmark = pytest.mark.skipif(
    not baresip_video_available(), reason="baresip-ffmpeg is not installed (CI installs it)"
)


async def _recording(bridge: Bridge, action: str) -> dict[str, Any]:
    stack = bridge.stack
    async with httpx.AsyncClient(base_url=stack.control, timeout=30) as http:
        response = await http.post(
            f"/api/v1/occurrences/{stack.occurrence_id}/recording",
            json={"action": action},
            headers=stack.secretariat,
        )
    assert response.status_code == 200, response.text
    return response.json()


async def test_recording_a_room_with_a_room_system_is_h264_in_matroska(
    bridge: Bridge,
    room_systems: list[Baresip],
    sites: dict[str, Site],
    peers: list[Any],
    tmp_path: Path,
) -> None:
    stack = bridge.stack
    hall = Baresip(tmp_path / "p2", user="p2-hall", video=CAMERA)
    room_systems.append(hall)
    set_sip_uri(stack, sites["p2"], hall.contact)  # called into the room at once: H.264
    await _chair_on_camera(stack, peers)
    await hall.until("Call established", timeout_s=20)
    await eventually(lambda: _in_room(stack, sites["p2"].id), 10, "p2 called into the room")

    recording = await _recording(bridge, "start")
    await asyncio.sleep(3.0)
    await eventually(lambda: _floor_given(stack, sites["p2"].id), 15, "the floor given")
    await asyncio.sleep(4.0)
    stopped = await _recording(bridge, "stop")

    async with httpx.AsyncClient(base_url=stack.control, timeout=30) as http:
        listed = await http.get(
            f"/api/v1/occurrences/{stack.occurrence_id}/recordings", headers=stack.secretariat
        )
        (item,) = listed.json()  # one recording, the SIP leg's presence notwithstanding
        downloaded = await http.get(item["download_url"], headers=stack.secretariat)
    assert item["id"] == recording["id"] == stopped["id"]
    assert downloaded.headers["content-type"] == "video/x-matroska"
    assert 'filename="recording-' in downloaded.headers["content-disposition"]
    path = tmp_path / "recording.mkv"
    path.write_bytes(downloaded.content)
    probe = ffprobe(path)
    assert probe["format"]["format_name"].startswith("matroska")
    programme = probe["streams"][0]
    assert (programme["codec_name"], programme["tags"]["title"]) == ("h264", "programme")
    decoded = decode_all(path)
    assert decoded.errors == []
    # the chair's camera, then the room system's, both as they were sent
    assert {CHAIR_SIZE[0], CAMERA.width} <= set(decoded.widths)
    assert [c["tags"]["title"] for c in probe["chapters"]][-1] == sites["p2"].name
