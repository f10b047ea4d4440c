"""Part B of `bench/sip.py`: time from an occurrence's start to media at a room system the
bridge dials out to (the real gateway, `SipService`, and Debian's baresip)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import time
from array import array
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fanout import Stack

from confbridge.meetings.models import Booking, Occurrence
from confbridge.sip.dial_out import DialOuts
from confbridge.sip.service import SipService
from confbridge.timeutil import utcnow
from tests.support.factories import book_occurrence, move_occurrence, province_sites, soon
from tests.support.peers import ToneTrack, WhipPublisher
from tests.support.servers import free_port
from tests.support.sip_agents import WAV_HEADER_BYTES, Baresip
from tests.support.sip_calls import set_sip_uri

POLL_S = 0.02
CALL_TIMEOUT_S = 20.0
TONE_PEAK = 3000  # the chair's tone is at half of full scale; silence and noise stay far below
CHAIR_TONE = 0.5
# what baresip (1.0, auto-answer) logs at each step of a call it gets, in DialTiming's order
LOG_MARKS = {
    "invited": "answering call on line",
    "established": "Call established",
    "rtp": "incoming rtp for 'audio' established",
}


@dataclass
class DialTiming:
    invited_s: float  # start → baresip answered the INVITE ("answering call")
    established_s: float  # start → baresip logged "Call established" (the ACK)
    rtp_s: float  # start → baresip logged the first RTP of the call's audio
    media_s: float  # start → the first 20 ms of the chair's tone in what baresip decoded


def dial_interval_s() -> float:
    """How often the gateway looks for due calls (`DialOuts`' default, which it uses)."""
    return float(inspect.signature(DialOuts).parameters["interval_s"].default)


def end_occurrence(stack: Stack, occurrence_id: int) -> None:
    """End it now (its bookings too): no longer due, and its slot is free for the next one."""
    now = utcnow()
    with stack.database.session() as session:
        occurrence = session.get(Occurrence, occurrence_id)
        assert occurrence is not None
        occurrence.end_at = max(now, occurrence.start_at + timedelta(seconds=1))
        for booking in session.query(Booking).filter_by(occurrence_id=occurrence_id):
            booking.end_at = occurrence.end_at
        session.commit()


def first_tone_at(path: Path, offset: int) -> tuple[bool, int]:
    """(tone found, bytes read so far) of baresip's WAV of decoded audio, from `offset`."""
    data = path.read_bytes()
    channels = int.from_bytes(data[22:24], "little") or 1
    rate = int.from_bytes(data[24:28], "little") or 8000
    block = rate // 50 * channels * 2  # 20 ms
    start = max(offset, WAV_HEADER_BYTES)
    while start + block <= len(data):
        samples = array("h", data[start : start + block])
        if max(abs(value) for value in samples) >= TONE_PEAK:
            return True, start
        start += block
    return False, start


async def wait_for_media(room_system: Baresip, before: set[Path], log_from: int) -> DialTiming:
    """Poll baresip's log and its new WAV until the tone is heard; times are time.time()."""
    marks: dict[str, float] = {}
    media = None
    offset = 0
    deadline = time.monotonic() + CALL_TIMEOUT_S
    while media is None and time.monotonic() < deadline:
        log = room_system.log()[log_from:]
        for name, text in LOG_MARKS.items():
            if name not in marks and text in log:
                marks[name] = time.time()
        new = [path for path in room_system.heard() if path not in before]
        if new:
            found, offset = first_tone_at(new[-1], offset)
            if found:
                media = time.time()
        await asyncio.sleep(POLL_S)
    if media is None:
        raise TimeoutError("the room system heard no tone")
    return DialTiming(*(marks.get(name, media) for name in LOG_MARKS), media)


async def chair_joins(stack: Stack, occurrence_id: int) -> WhipPublisher:
    async with httpx.AsyncClient(base_url=stack.control.url, timeout=10) as http:
        response = await http.post(
            f"/api/v1/occurrences/{occurrence_id}/join",
            headers={"Authorization": f"Bearer {stack.tokens['hq']}"},
        )
    response.raise_for_status()
    joined = response.json()
    chair = WhipPublisher(joined["whip_url"], joined["token"], audio=ToneTrack(CHAIR_TONE))
    started = await chair.start()
    if started.status_code != 201:
        raise RuntimeError(f"the chair could not publish: {started.status_code}")
    return chair


async def one_dial(
    stack: Stack, sites: dict[str, Any], room_system: Baresip, start_at: datetime
) -> DialTiming:
    next_minute = (utcnow() + timedelta(minutes=2)).replace(second=0, microsecond=0)
    occurrence_id = book_occurrence(
        stack.database, stack.settings, sites, next_minute, invited=("p2",)
    )
    move_occurrence(stack.database, occurrence_id, start_at)
    chair = await chair_joins(stack, occurrence_id)
    before = set(room_system.heard())
    log_from = len(room_system.log())
    try:
        timing = await wait_for_media(room_system, before, log_from)
    finally:
        room_system.hangup()
        end_occurrence(stack, occurrence_id)
        await chair.stop()
    start = start_at.timestamp()
    return DialTiming(
        timing.invited_s - start,
        timing.established_s - start,
        timing.rtp_s - start,
        timing.media_s - start,
    )


async def run_dial_outs(
    stack: Stack, data_dir: Path, count: int, lead_s: float
) -> tuple[list[DialTiming], float]:
    """`count` calls out, one after another; the timings of those that reached media."""
    end_occurrence(stack, stack.occurrence_id)  # part A's: its sites are not dialled
    with stack.database.session() as session:
        sites = province_sites(session)
    room_system = Baresip(data_dir / "room-system", user="p2-hall", tone_hz=1000)
    set_sip_uri(stack, sites["p2"], room_system.contact)  # type: ignore[arg-type]
    port = free_port()
    sip = stack.settings.sip.model_copy(
        update={"listen": f"127.0.0.1:{port}", "dial_out_lead_min": 0}
    )
    service = SipService(stack.settings.model_copy(update={"sip": sip}), stack.database)
    service.start()
    timings: list[DialTiming] = []
    rng = random.Random(15)
    try:
        for number in range(count):
            # an occurrence starts whenever it was booked for, at any phase of the gateway's
            # polling: a random fraction of its interval (else one call's timing, whole
            # seconds after the last, would set the next one's)
            start_at = soon(lead_s) + timedelta(seconds=rng.uniform(0, dial_interval_s()))
            try:
                timing = await one_dial(stack, sites, room_system, start_at)
            except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
                print(f"  call {number + 1}: {exc}", flush=True)
                continue
            timings.append(timing)
            print(f"  call {number + 1}: media {timing.media_s:.2f} s after start", flush=True)
            await asyncio.sleep(1.0)  # the BYE is through before the next occurrence
    finally:
        service.close()
        with contextlib.suppress(Exception):
            room_system.stop()
    return timings, dial_interval_s()
