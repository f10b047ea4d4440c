"""The bridge calls: invited room systems at the start (and again after a drop), and the
bridge above (`upstream_sip_uri`), which gets the room's programme."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from confbridge.meetings.models import Occurrence
from confbridge.sites.models import Site
from tests.support.peers import TONE_HZ
from tests.support.polling import eventually
from tests.support.servers import Stack
from tests.support.sip_agents import Baresip
from tests.support.sip_calls import (
    ROOM_SYSTEM_TONE_HZ,
    Bridge,
    ListeningViewer,
    chair_speaking,
    heard_tone,
    hears,
    set_sip_uri,
    sites_in_room,
)

UPSTREAM_TONE_HZ = 700


def set_upstream(stack: Stack, uri: str) -> None:
    assert stack.database is not None
    with stack.database.session() as session:
        occurrence = session.get(Occurrence, stack.occurrence_id)
        assert occurrence is not None
        occurrence.series.upstream_sip_uri = uri
        session.commit()


async def test_an_invited_room_system_is_called_at_the_start_and_again_after_a_drop(
    bridge: Bridge,
    room_systems: list[Baresip],
    sites: dict[str, Site],
    peers: list[Any],
    tmp_path: Path,
) -> None:
    stack = bridge.stack
    room_system = Baresip(tmp_path / "p2", user="p2-hall", tone_hz=ROOM_SYSTEM_TONE_HZ)
    room_systems.append(room_system)
    await chair_speaking(stack, peers)
    asked_at = time.monotonic()
    set_sip_uri(stack, sites["p2"], room_system.contact)  # the meeting is on: due at once

    first = await room_system.until("Call established", timeout_s=20)
    await eventually(lambda: _in_room(stack, sites["p2"].id), 10, "p2 called into the room")
    print(f"called and in the room {time.monotonic() - asked_at:.1f} s after being due")
    await asyncio.sleep(3)
    frequency, _level = heard_tone(room_system)
    assert abs(frequency - TONE_HZ) < 25

    room_system.hangup()  # the hall hangs up: the bridge calls again (after a pause)
    await room_system.until("terminated", after=first.end())
    await room_system.until("Call established", after=first.end(), timeout_s=30)
    await eventually(lambda: _in_room(stack, sites["p2"].id), 15, "p2 back in the room")


async def _in_room(stack: Stack, site_id: int) -> bool:
    return site_id in await sites_in_room(stack)


async def test_the_bridge_above_is_called_and_gets_the_rooms_programme(
    bridge: Bridge,
    room_systems: list[Baresip],
    sites: dict[str, Site],
    peers: list[Any],
    tmp_path: Path,
) -> None:
    stack = bridge.stack
    above = Baresip(tmp_path / "above", user="trunguong", tone_hz=UPSTREAM_TONE_HZ)
    room_systems.append(above)
    await chair_speaking(stack, peers)
    before = await sites_in_room(stack)
    set_upstream(stack, above.contact)

    await above.until("Call established", timeout_s=20)
    new_sites = await eventually(
        lambda: _new_sites(stack, before), 10, "the bridge above in the room"
    )
    assert len(new_sites) == 1  # one site: the bridge above
    (upstream_id,) = new_sites
    assert _site_name(stack, upstream_id) == "Trung ương"
    # what goes up is the room's programme: the chair speaking
    await asyncio.sleep(3)
    frequency, _level = heard_tone(above)
    assert abs(frequency - TONE_HZ) < 25

    # the chair gives the floor to the bridge above: a ward hall hears the national briefing
    joined = await stack.join("p1")
    hall = ListeningViewer(joined["whep_url"], joined["token"])
    peers.append(hall)
    assert (await hall.start()).status_code == 201
    await eventually(lambda: hears(hall, TONE_HZ), 15, "the hall hearing the chair")
    await eventually(lambda: _floor_given(stack, upstream_id), 15, "the floor given upstream")
    await eventually(lambda: hears(hall, UPSTREAM_TONE_HZ), 15, "the hall hearing the bridge above")


def _site_name(stack: Stack, site_id: int) -> str:
    assert stack.database is not None
    with stack.database.session() as session:
        site = session.get(Site, site_id)
        assert site is not None
        return site.name


async def _floor_given(stack: Stack, site_id: int) -> bool:
    # the room's events reach the control plane a moment after the leg joined
    response = await stack.floor("give", site_id)
    return response.status_code == 200 and response.json()["speaker_site_id"] == site_id


async def _new_sites(stack: Stack, before: set[int]) -> set[int]:
    return await sites_in_room(stack) - before
