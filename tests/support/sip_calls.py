"""Helpers of the SIP tests: the bridge's SIP side on a running stack, what is in the room,
and what a hall or a room system heard."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any

import httpx

from confbridge.sites.models import Site
from tests.support.peers import ToneTrack, WhepViewer, WhipPublisher
from tests.support.servers import Stack
from tests.support.sip_agents import Baresip, tone_of, tone_of_samples

ROOM_SYSTEM_TONE_HZ = 1000


@dataclass
class Bridge:
    stack: Stack
    sip_port: int
    meeting_number: str
    pin: str

    def address(self, number: str | None = None) -> str:
        return f"sip:{number or self.meeting_number}@127.0.0.1:{self.sip_port}"


def set_sip_uri(stack: Stack, site: Site, uri: str) -> None:
    assert stack.database is not None
    with stack.database.session() as session:
        stored = session.get(Site, site.id)
        assert stored is not None
        stored.sip_uri = uri
        session.commit()


async def rooms(stack: Stack) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.worker) as http:
        response = await http.get("/rooms", headers=stack.admin())
    response.raise_for_status()
    return response.json()["rooms"]


async def sites_in_room(stack: Stack) -> set[int]:
    found: set[int] = set()
    for room in await rooms(stack):
        for peer in room.get("peers", []):
            found.add(peer["site_id"])
    return found


class ListeningViewer(WhepViewer):
    """A hall's loudspeaker that keeps what it hears (the first channel, 48 kHz)."""

    pcm: bytearray

    async def _read(self, track: Any, is_content: bool = False) -> None:
        self.pcm = getattr(self, "pcm", bytearray())
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            if track.kind == "audio":
                # packed s16: channels interleaved in one row (the plane's buffer is padded)
                samples = frame.to_ndarray()[0, :: len(frame.layout.channels)]
                self.pcm.extend(samples.astype("<i2").tobytes())


async def chair_speaking(stack: Stack, peers: list[Any]) -> WhipPublisher:
    joined = await stack.join("hq")
    chair = WhipPublisher(joined["whip_url"], joined["token"], audio=ToneTrack(0.5))
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    return chair


def heard_tone(agent: Baresip) -> tuple[float, float]:
    files = agent.heard()
    assert files, "the room system decoded no audio"
    return tone_of(files[-1], last_s=1.5)  # what it hears now, not while the call began


def viewer_tone(viewer: ListeningViewer, seconds: float = 1.0) -> tuple[float, float]:
    """The tone in the viewer's last `seconds` of sound."""
    pcm = bytes(getattr(viewer, "pcm", b""))[-int(48_000 * 2 * seconds) :]
    return tone_of_samples(array("h", pcm), 48_000)


async def hears(viewer: ListeningViewer, hz: int) -> bool:
    """True if the hall's loudspeaker plays the tone `hz` now."""
    frequency, level = viewer_tone(viewer)
    return abs(frequency - hz) < 25 and level > 0
