"""Room systems dialling in (baresip as the room system): as a known site, with the PIN, with
wrong PINs, and outside the meeting's window; audio both ways checked at the far ends."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

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


async def test_a_known_room_system_joins_as_its_site_both_ways(
    bridge: Bridge,
    room_systems: list[Baresip],
    sites: dict[str, Site],
    peers: list[Any],
    tmp_path: Path,
) -> None:
    stack = bridge.stack
    room_system = Baresip(tmp_path / "p1", user="p1-hall", tone_hz=ROOM_SYSTEM_TONE_HZ)
    room_systems.append(room_system)
    set_sip_uri(stack, sites["p1"], room_system.uri)
    await chair_speaking(stack, peers)

    room_system.dial(bridge.address())
    await room_system.until("Call established")
    await eventually(
        lambda: _has_site(stack, sites["p1"].id), 10, "the room system in the room as p1"
    )
    # the chair's tone reaches the room system (decoded by it)
    await asyncio.sleep(3)
    frequency, level = heard_tone(room_system)
    assert abs(frequency - TONE_HZ) < 25 and level > 0.02, (frequency, level)
    # the chair gives it the floor: a ward hall hears the room system
    joined = await stack.join("p2")
    hall = ListeningViewer(joined["whep_url"], joined["token"])
    peers.append(hall)
    assert (await hall.start()).status_code == 201
    assert (await stack.floor("give", sites["p1"].id)).status_code == 200
    await eventually(
        lambda: hears(hall, ROOM_SYSTEM_TONE_HZ), 15, "the hall hearing the room system"
    )

    room_system.hangup()
    await eventually(
        lambda: _left_with_reason(stack, sites["p1"].id), 10, "p1 left, with the call's end"
    )


async def _has_site(stack: Stack, site_id: int) -> bool:
    return site_id in await sites_in_room(stack)


async def _left_with_reason(stack: Stack, site_id: int) -> bool:
    for event in await stack.events():
        if event["type"] == "left" and event["site_id"] == site_id:
            return bool(event.get("detail", {}).get("reason"))
    return False


async def test_a_caller_with_the_pin_joins_as_a_guest_and_not_before(
    bridge: Bridge, room_systems: list[Baresip], peers: list[Any], tmp_path: Path
) -> None:
    stack = bridge.stack
    guest = Baresip(tmp_path / "guest", user="expert", domain="example.org")
    room_systems.append(guest)
    await chair_speaking(stack, peers)
    before = await sites_in_room(stack)

    guest.dial(bridge.address())
    await guest.until("Call established")
    await asyncio.sleep(1)
    assert await sites_in_room(stack) == before  # in the lobby: not in the meeting
    guest.digits("000000#")  # a wrong PIN: still in the lobby
    await asyncio.sleep(1)
    assert await sites_in_room(stack) == before
    assert "terminated" not in guest.log()
    guest.digits(bridge.pin + "#")
    joined = await eventually(
        lambda: _new_sites(stack, before), 10, "the guest in the room after the PIN"
    )
    assert len(joined) == 1
    await asyncio.sleep(3)
    frequency, _level = heard_tone(guest)
    assert abs(frequency - TONE_HZ) < 25


async def _new_sites(stack: Stack, before: set[int]) -> set[int]:
    return await sites_in_room(stack) - before


async def test_three_wrong_pins_end_the_call(
    bridge: Bridge, room_systems: list[Baresip], tmp_path: Path
) -> None:
    guest = Baresip(tmp_path / "guesser", user="guesser", domain="example.org")
    room_systems.append(guest)
    guest.dial(bridge.address())
    await guest.until("Call established")
    wrong = "1" if bridge.pin[0] != "1" else "2"
    for _ in range(3):
        guest.digits(wrong * len(bridge.pin) + "#", gap_s=0.25)
    await guest.until("terminated", timeout_s=10)
    assert bridge.pin not in guest.log()


async def test_a_call_to_a_meeting_not_on_now_is_refused_with_the_reason(
    bridge: Bridge, room_systems: list[Baresip], tmp_path: Path
) -> None:
    caller = Baresip(tmp_path / "early", user="early", domain="example.org")
    room_systems.append(caller)
    caller.dial(bridge.address("98765432"))
    await caller.until(r"404|Not Found", timeout_s=10)
