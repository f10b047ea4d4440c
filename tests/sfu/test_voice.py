"""Voice-activated floor: the detector on a simulated clock, and a room following it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from confbridge.sites.models import Site
from confbridge_kernel.contracts import (
    FloorAction,
    FloorCommand,
    GrantClaims,
    PeerRole,
    floor_path,
    room_name,
)
from sfu.codecs import RtpCodec
from sfu.forwarding import Source
from sfu.room import Peer, Room
from sfu.voice import (
    VOICE_HOLD_S,
    VOICE_MARGIN_DB,
    VOICE_MIN_LEAD_S,
    VOICE_STALE_AFTER_S,
    VOICE_TICK_INTERVAL_S,
    LevelSample,
    VoiceDetector,
)
from tests.support.peers import ToneTrack, WhepViewer, WhipPublisher, until
from tests.support.servers import Stack

CHAIR, WARD_A, WARD_B = 1, 2, 3
LOUD_DBOV = -12.0
SPEECH_DBOV = -25.0
QUIET_DBOV = -55.0  # room noise
SILENT_DBOV = -127.0
TICK_S = VOICE_TICK_INTERVAL_S


class Meeting:
    """A detector driven tick by tick, with the floor given to whatever it picks."""

    def __init__(self, speaker: int = CHAIR, muted: set[int] | None = None) -> None:
        self.detector = VoiceDetector()
        self.now = 100.0
        self.speaker = speaker
        self.speaker_since = 0.0  # the speaker has held the floor for long
        self.muted = muted or set()
        self.changes: list[tuple[float, int]] = []

    def run(
        self,
        seconds: float,
        levels: dict[int, float],
        *,
        stopped: Collection[int] = (),
        stopped_at: float | None = None,
    ) -> None:
        """Tick for `seconds` with these levels; `stopped` sites send no packet meanwhile, so
        their sample keeps the time of their last one (`stopped_at`, by default now)."""
        last_at = self.now if stopped_at is None else stopped_at
        for _ in range(round(seconds / TICK_S)):
            self.now += TICK_S
            samples = [
                LevelSample(site, level, last_at if site in stopped else self.now)
                for site, level in levels.items()
            ]
            choice = self.detector.tick(
                self.now,
                samples,
                speaker_site_id=self.speaker,
                speaker_since=self.speaker_since,
                muted=self.muted,
            )
            if choice is not None:
                self.speaker, self.speaker_since = choice, self.now
                self.changes.append((self.now, choice))


def test_voice_loudest_site_takes_the_floor_after_its_lead() -> None:
    meeting = Meeting()
    meeting.run(VOICE_MIN_LEAD_S / 2, {CHAIR: SILENT_DBOV, WARD_A: SPEECH_DBOV})
    assert meeting.speaker == CHAIR  # not yet: a lead must last
    meeting.run(3.0, {CHAIR: SILENT_DBOV, WARD_A: SPEECH_DBOV})
    assert meeting.speaker == WARD_A
    assert len(meeting.changes) == 1


def test_voice_margin_is_required_over_the_speaker() -> None:
    meeting = Meeting()
    slightly = SPEECH_DBOV + VOICE_MARGIN_DB - 2
    meeting.run(10.0, {CHAIR: SPEECH_DBOV, WARD_A: slightly})
    assert meeting.speaker == CHAIR and meeting.changes == []
    meeting.run(3.0, {CHAIR: SPEECH_DBOV, WARD_A: SPEECH_DBOV + VOICE_MARGIN_DB + 2})
    assert meeting.speaker == WARD_A


def test_voice_hold_time_keeps_a_new_speaker() -> None:
    meeting = Meeting()
    meeting.run(3.0, {CHAIR: SILENT_DBOV, WARD_A: LOUD_DBOV, WARD_B: SILENT_DBOV})
    assert meeting.changes and meeting.changes[-1][1] == WARD_A
    given_at = meeting.changes[-1][0]
    # Ward B shouts right away: it must wait out A's hold time, not only its own lead.
    meeting.run(4.0, {CHAIR: SILENT_DBOV, WARD_A: SILENT_DBOV, WARD_B: LOUD_DBOV})
    assert meeting.speaker == WARD_B
    assert meeting.changes[-1][0] - given_at >= VOICE_HOLD_S


def test_voice_two_sites_talking_at_once_do_not_flap() -> None:
    meeting = Meeting()
    # A and B alternate being the louder every half second, both far above the silent chair.
    for _ in range(10):
        meeting.run(0.5, {CHAIR: SILENT_DBOV, WARD_A: LOUD_DBOV, WARD_B: SPEECH_DBOV})
        meeting.run(0.5, {CHAIR: SILENT_DBOV, WARD_A: SPEECH_DBOV, WARD_B: LOUD_DBOV})
    # One of them got the floor once; after that neither beats the other by the margin.
    assert len(meeting.changes) <= 1


def test_voice_a_short_burst_does_not_take_the_floor() -> None:
    meeting = Meeting()
    meeting.run(2.0, {CHAIR: SPEECH_DBOV, WARD_A: QUIET_DBOV})
    meeting.run(TICK_S, {CHAIR: SPEECH_DBOV, WARD_A: 0.0})  # a door slams at ward A
    meeting.run(5.0, {CHAIR: SPEECH_DBOV, WARD_A: QUIET_DBOV})
    assert meeting.changes == []


def test_voice_muted_sites_are_ignored() -> None:
    meeting = Meeting(muted={WARD_A})
    meeting.run(5.0, {CHAIR: SILENT_DBOV, WARD_A: LOUD_DBOV, WARD_B: QUIET_DBOV})
    assert meeting.changes == []
    # A muted speaker counts as silent: an audible site takes over.
    meeting = Meeting(speaker=WARD_A, muted={WARD_A})
    meeting.run(5.0, {CHAIR: SPEECH_DBOV, WARD_A: LOUD_DBOV})
    assert meeting.speaker == CHAIR


def test_voice_stale_levels_are_ignored() -> None:
    meeting = Meeting()
    # Ward A's last packet said it was loud, but that was longer ago than the limit.
    last_packet_at = meeting.now
    meeting.now += VOICE_STALE_AFTER_S + TICK_S
    levels = {CHAIR: SILENT_DBOV, WARD_A: LOUD_DBOV}
    meeting.run(5.0, levels, stopped={WARD_A}, stopped_at=last_packet_at)
    assert meeting.changes == []
    assert meeting.detector.level_of(WARD_A) == SILENT_DBOV


def test_voice_a_speaker_that_stops_sending_counts_as_silent() -> None:
    meeting = Meeting(speaker=WARD_A)
    meeting.run(1.0, {CHAIR: SPEECH_DBOV, WARD_A: LOUD_DBOV})
    meeting.run(4.0, {CHAIR: SPEECH_DBOV, WARD_A: LOUD_DBOV}, stopped={WARD_A})
    assert meeting.speaker == CHAIR


def test_voice_room_noise_never_takes_the_floor() -> None:
    meeting = Meeting()
    meeting.run(10.0, {CHAIR: SILENT_DBOV, WARD_A: -60.0, WARD_B: -55.0})
    assert meeting.changes == []


def test_voice_smoothing_damps_a_single_loud_sample() -> None:
    detector = VoiceDetector()
    for step in range(8):
        at = step * TICK_S
        detector.tick(at, [LevelSample(WARD_A, QUIET_DBOV, at)], speaker_site_id=CHAIR,
                      speaker_since=0.0)  # fmt: skip
    at = 8 * TICK_S
    detector.tick(at, [LevelSample(WARD_A, 0.0, at)], speaker_site_id=CHAIR, speaker_since=0.0)
    assert QUIET_DBOV < detector.level_of(WARD_A) < QUIET_DBOV / 2


# --- a room following the detector --------------------------------------------------------------


def _grant() -> GrantClaims:
    now = datetime.now(UTC)
    return GrantClaims(
        jti="test",
        room="occ-1",
        occurrence_id=1,
        site_id=CHAIR,
        site_name="hq",
        role=PeerRole.chair,
        chair_site_id=CHAIR,
        starts_at=now,
        ends_at=now + timedelta(hours=1),
        iat=int(now.timestamp()),
        exp=int((now + timedelta(hours=1)).timestamp()),
    )


class RoomUnderTest:
    def __init__(self) -> None:
        self.changes: list[tuple[int | None, bool]] = []
        self.room = Room(_grant(), on_floor_changed=self._changed)
        self.sources: dict[int, Source] = {}

    def _changed(self, room: Room) -> None:
        state = room.floor.state()
        self.changes.append((state.speaker_site_id, state.voice_activated))

    def publish(self, site_id: int) -> Source:
        source = Source("audio", [RtpCodec("audio/opus", 48000, 111, channels=2)])
        peer = Peer(
            id=f"peer-{site_id}",
            direction="ingest",
            room_name="occ-1",
            site_id=site_id,
            site_name=f"site {site_id}",
            role=PeerRole.chair if site_id == CHAIR else PeerRole.site,
            pc=RTCPeerConnection(RTCConfiguration(iceServers=[])),
            remote_ufrags=set(),
            etag="x",
            created_at=datetime.now(UTC),
            sources={"audio": source},
        )
        self.room.add(peer)
        self.sources[site_id] = source
        return source

    def levels(self, at: float, levels: dict[int, float]) -> None:
        for site_id, level in levels.items():
            self.sources[site_id].audio_level_dbov = int(level)
            self.sources[site_id].audio_level_at = at

    def act(self, action: FloorAction, site_id: int | None = None) -> None:
        self.room.apply_floor(FloorCommand(action=action, site_id=site_id, by="test"))


@pytest.fixture
async def under_test() -> AsyncIterator[RoomUnderTest]:
    room = RoomUnderTest()
    yield room
    await room.room.close()


async def test_voice_room_follows_the_loudest_site_only_in_voice_mode(
    under_test: RoomUnderTest,
) -> None:
    room = under_test.room
    for site in (CHAIR, WARD_A, WARD_B):
        under_test.publish(site)
    detector = VoiceDetector()
    room.speaker_since = 0.0
    now = 100.0

    def run(seconds: float, levels: dict[int, float]) -> None:
        nonlocal now
        for _ in range(round(seconds / TICK_S)):
            now += TICK_S
            under_test.levels(now, levels)
            room.follow_voice(detector, now)

    loud_b = {CHAIR: SILENT_DBOV, WARD_A: QUIET_DBOV, WARD_B: LOUD_DBOV}
    run(3.0, loud_b)
    assert room.floor.speaker_site_id == CHAIR and under_test.changes == []  # mode is off
    under_test.act(FloorAction.voice_on)
    assert room.floor.state().voice_activated
    run(3.0, loud_b)
    assert room.floor.speaker_site_id == WARD_B
    # each change is reported, as any floor change: the mode, then the speaker
    assert under_test.changes == [(CHAIR, True), (WARD_B, True)]
    assert 100.0 < room.speaker_since <= now  # the hold runs on the clock given to the room
    # The chair mutes ward B: the floor goes to the next audible site, not to the muted one.
    under_test.act(FloorAction.mute, WARD_B)
    run(4.0, {CHAIR: SILENT_DBOV, WARD_A: SPEECH_DBOV, WARD_B: LOUD_DBOV})
    assert room.floor.speaker_site_id == WARD_A
    # An explicit give sticks: voice mode goes off and loud sites no longer take the floor.
    under_test.act(FloorAction.give, CHAIR)
    assert not room.floor.state().voice_activated
    run(4.0, {CHAIR: SILENT_DBOV, WARD_A: LOUD_DBOV, WARD_B: SILENT_DBOV})
    assert room.floor.speaker_site_id == CHAIR


async def test_voice_room_owns_its_task(under_test: RoomUnderTest) -> None:
    room = under_test.room
    under_test.act(FloorAction.voice_on)
    task = room._voice_task
    assert task is not None and not task.done()
    under_test.act(FloorAction.voice_on)  # already on: the same task
    assert room._voice_task is task
    under_test.act(FloorAction.voice_off)
    assert room._voice_task is None
    await asyncio.sleep(0)
    assert task.cancelled()
    under_test.act(FloorAction.voice_on)
    task = room._voice_task
    assert task is not None
    await room.close()
    assert task.done() and room._voice_task is None


async def test_voice_room_task_moves_the_floor_on_real_time(under_test: RoomUnderTest) -> None:
    """The room's own task, on the real clock, gives the floor to a loud site."""
    loud = under_test.publish(WARD_A)
    under_test.publish(CHAIR)
    under_test.act(FloorAction.voice_on)
    # Source levels are stamped with time.monotonic(), the room's clock.
    deadline = time.monotonic() + VOICE_HOLD_S + VOICE_MIN_LEAD_S + 5.0
    while under_test.room.floor.speaker_site_id != WARD_A:
        assert time.monotonic() < deadline, "the floor did not follow the loud site"
        loud.audio_level_dbov, loud.audio_level_at = int(LOUD_DBOV), time.monotonic()
        await asyncio.sleep(0.02)
    assert under_test.changes == [(CHAIR, True), (WARD_A, True)]


# --- through a real worker ----------------------------------------------------------------------

LOUD_AMPLITUDE = 0.5  # about -9 dBov
E2E_SWITCH_TIMEOUT_S = 15.0


async def _worker_floor(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.worker, timeout=10) as http:
        response = await http.get(floor_path(room_name(stack.occurrence_id)), headers=stack.admin())
    assert response.status_code == 200, response.text
    return response.json()


async def _until_speaker(stack: Stack, site_id: int) -> float:
    """Wait until the worker's floor has `site_id` speaking; returns when it was seen."""
    deadline = time.monotonic() + E2E_SWITCH_TIMEOUT_S
    while (await _worker_floor(stack))["speaker_site_id"] != site_id:
        assert time.monotonic() < deadline, await _worker_floor(stack)
        await asyncio.sleep(0.1)
    return time.monotonic()


async def test_voice_floor_follows_the_louder_site_through_the_worker(
    stack: Stack, peers: list[WhipPublisher | WhepViewer], sites: dict[str, Site]
) -> None:
    """aiortc publishers send levels in ssrc-audio-level; the programme follows the loud one."""
    mics = {key: ToneTrack() for key in ("hq", "p1", "p2")}
    widths = {"hq": 320, "p1": 176, "p2": 240}
    for key in ("hq", "p1", "p2"):
        grant = await stack.join(key)
        publisher = WhipPublisher(
            grant["whip_url"], grant["token"], width=widths[key], height=144, audio=mics[key]
        )
        peers.append(publisher)
        assert (await publisher.start()).status_code == 201
    p2 = await stack.join("p2")
    viewer = WhepViewer(p2["whep_url"], p2["token"])
    peers.append(viewer)
    assert (await viewer.start()).status_code == 201
    await until(lambda: widths["hq"] in viewer.widths_since(0), timeout_s=15)

    # Loud levels while voice mode is off change nothing.
    mics["p1"].amplitude = LOUD_AMPLITUDE
    await asyncio.sleep(VOICE_HOLD_S)
    assert (await _worker_floor(stack))["speaker_site_id"] == sites["hq"].id

    turned_on = await stack.floor("voice_on")
    assert turned_on.status_code == 200, turned_on.text
    assert turned_on.json()["voice_activated"] is True
    await _until_speaker(stack, sites["p1"].id)
    switched_at = time.monotonic()
    await until(lambda: widths["p1"] in viewer.widths_since(switched_at), timeout_s=10)

    # Ward 1 falls silent and ward 2 speaks up: the floor moves on.
    mics["p1"].amplitude, mics["p2"].amplitude = 0.0, LOUD_AMPLITUDE
    await _until_speaker(stack, sites["p2"].id)

    # The chair takes the floor back: that ends voice mode, however loud ward 2 stays.
    taken = await stack.floor("take")
    assert taken.json()["voice_activated"] is False
    await asyncio.sleep(VOICE_HOLD_S + VOICE_MIN_LEAD_S)
    assert (await _worker_floor(stack))["speaker_site_id"] == sites["hq"].id

    # Every change reached the control plane as a floor_changed event.
    wanted = [(sites["p1"].id, True), (sites["p2"].id, True), (sites["hq"].id, False)]
    deadline = time.monotonic() + 15
    while True:
        floors = [
            (event["floor"]["speaker_site_id"], event["floor"]["voice_activated"])
            for event in await stack.events()
            if event["type"] == "floor_changed"
        ]
        if all(change in floors for change in wanted):
            break
        assert time.monotonic() < deadline, floors
        await asyncio.sleep(0.2)
