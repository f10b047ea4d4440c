"""A join storm on a real worker process: joins beyond its admission limit get 503 with
Retry-After and all get in after waiting as told; viewers already in keep receiving."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx
import pytest
from aiortc import RTCPeerConnection

from sfu.rtc.observe import set_receive_filter
from tests.support.join_storm import Hall, StormProcess
from tests.support.peers import WhipPublisher, until
from tests.support.servers import Stack

# Goal: no gap over 0.5 s; the margin is for a machine shared with other test runs.
LARGEST_GAP_S = 1.5


@pytest.fixture
def stack_options(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> dict:
    """The worker's admission settings (it inherits CONFBRIDGE_SFU_* from this process)."""
    limits = getattr(request, "param", {})
    for name, value in limits.items():
        monkeypatch.setenv(f"CONFBRIDGE_SFU_{name.upper()}", str(value))
    return {}


async def _storm(stack: Stack, count: int) -> list[Hall]:
    """`count` halls (each with its own grant) joining all at once."""
    grants = [await stack.join("p1" if i % 2 else "p2") for i in range(count)]
    return [Hall(grant["whep_url"], grant["token"]) for grant in grants]


LIMITED = {
    "join_max_handshakes": 2,
    "join_rate_per_s": 2,
    "join_burst": 2,
    "join_queue_s": 0.2,
    "join_max_loop_lag_ms": 0,
}


@pytest.mark.parametrize("stack_options", [LIMITED], indirect=True)
async def test_join_storm_beyond_the_limit_is_told_to_wait_then_all_join(
    stack: Stack, peers: list
) -> None:
    """Eight halls at once against two handshakes at a time and two joins a second: some
    get 503 with a JSON reason and Retry-After; waiting as told, every one gets in."""
    chair = await stack.join("hq")
    publisher = WhipPublisher(chair["whip_url"], chair["token"])
    peers.append(publisher)
    assert (await publisher.start()).status_code == 201  # the chair goes first
    halls = await _storm(stack, 8)
    async with httpx.AsyncClient(timeout=30) as http:
        try:
            await asyncio.gather(*(hall.join(http) for hall in halls))
            await until(
                lambda: all(h.pc and h.pc.connectionState == "connected" for h in halls), 30
            )
            await until(lambda: all(h.packets > 20 for h in halls), 20)
        finally:
            await asyncio.gather(*(hall.leave(http) for hall in halls))
    refusals = [r for hall in halls for r in hall.refusals]
    assert len([h for h in halls if h.refusals]) >= 3, refusals
    assert all("admitting other halls" in r["detail"] for r in refusals)
    assert all(r["retry_after_s"] >= 1 for r in refusals)
    # the halls turned away together were told different times: they come back spread out
    assert len({r["retry_after_s"] for r in refusals}) > 1, refusals


def _arrivals(pc: RTCPeerConnection) -> list[float]:
    """When each RTP datagram reached `pc` (read before SRTP; nothing is dropped)."""
    times: list[float] = []
    dtls = pc.getTransceivers()[0].receiver.transport

    def note(data: bytes) -> bool:
        if len(data) > 12 and 128 <= data[0] < 192 and not 64 <= (data[1] & 0x7F) < 96:
            times.append(time.monotonic())
        return False

    set_receive_filter(dtls, note)
    return times


async def test_join_storm_viewers_already_in_keep_receiving(stack: Stack, peers: list) -> None:
    """Thirty halls join at once (the worker's default admission) while a hall watches: the
    largest gap between the packets it receives stays small, and every hall gets in."""
    chair = await stack.join("hq")
    publisher = WhipPublisher(chair["whip_url"], chair["token"])
    peers.append(publisher)
    assert (await publisher.start()).status_code == 201
    watcher = (await _storm(stack, 1))[0]
    halls = await _storm(stack, 30)
    storm = await StormProcess.start()
    async with httpx.AsyncClient(timeout=30) as http:
        try:
            await watcher.join(http)
            assert watcher.pc is not None
            await until(lambda: watcher.packets > 50, 20)
            arrivals = _arrivals(watcher.pc)
            await asyncio.sleep(1)
            storm_at = time.monotonic()
            joined = await storm.join(halls[0].url, [hall.token for hall in halls])
            await asyncio.sleep(1)
            ended_at = time.monotonic()
        finally:
            await storm.stop()
            await watcher.leave(http)
    assert joined["connected"] == len(halls), joined
    during = [t for t in arrivals if storm_at - 1 <= t <= ended_at]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert len(during) > 100, "the watching hall received too little to judge"
    assert max(gaps) <= LARGEST_GAP_S, f"largest gap {max(gaps):.2f} s during the joins"
