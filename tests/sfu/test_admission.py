"""The join gate: handshakes at a time, joins a second, a short queue, then 503 with a
Retry-After that spreads the halls turned away."""

from __future__ import annotations

import asyncio
import time

import pytest

from sfu.admission import Busy, JoinGate, LoopLag


def gate(**overrides: float) -> JoinGate:
    options: dict[str, float] = {
        "max_handshakes": 2,
        "rate_per_s": 100.0,
        "burst": 10,
        "queue_s": 0.0,
        "max_lag_s": 0.0,
    }
    options.update(overrides)
    return JoinGate(**options)  # type: ignore[arg-type]


async def test_admission_caps_handshakes_at_a_time() -> None:
    joins = gate(max_handshakes=2)
    first = await joins.admit()
    await joins.admit()
    with pytest.raises(Busy) as refused:
        await joins.admit()
    assert refused.value.status == 503 and refused.value.retry_after_s >= 1
    assert "try again in" in refused.value.message
    first.release()
    first.release()  # idempotent: one slot back, not two
    await joins.admit()
    assert (joins.in_flight, joins.admitted, joins.refused) == (2, 3, 1)


async def test_admission_rate_refills_the_bucket() -> None:
    joins = gate(max_handshakes=100, rate_per_s=10.0, burst=2)
    for ticket in [await joins.admit(), await joins.admit()]:
        ticket.release()
    with pytest.raises(Busy):
        await joins.admit()
    await asyncio.sleep(0.15)  # one token back after 0.1 s
    (await joins.admit()).release()


async def test_admission_a_join_waits_in_the_queue_for_a_slot() -> None:
    joins = gate(max_handshakes=1, queue_s=2.0)
    held = await joins.admit()
    asyncio.get_running_loop().call_later(0.2, held.release)
    started = time.monotonic()
    await joins.admit()
    assert 0.15 <= time.monotonic() - started < 1.5


async def test_admission_a_queue_wait_too_long_is_refused() -> None:
    joins = gate(max_handshakes=1, queue_s=0.2)
    await joins.admit()
    started = time.monotonic()
    with pytest.raises(Busy):
        await joins.admit()
    assert time.monotonic() - started >= 0.2


async def test_admission_priority_joins_skip_the_queue_but_count() -> None:
    joins = gate(max_handshakes=1)
    await joins.admit()
    await joins.admit(priority=True)  # a relay, the chair, a hall's second session
    assert joins.in_flight == 2
    with pytest.raises(Busy):
        await joins.admit()


async def test_admission_a_waiting_join_promoted_goes_at_once() -> None:
    joins = gate(max_handshakes=1, queue_s=2.0)
    await joins.admit()
    promoted = False

    def hall_admitted() -> bool:
        return promoted

    waiting = asyncio.create_task(joins.admit(promoted=hall_admitted))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    promoted = True
    await asyncio.wait_for(waiting, 1)
    assert joins.in_flight == 2


async def test_admission_retry_after_spreads_the_halls_turned_away() -> None:
    joins = gate(max_handshakes=1, rate_per_s=2.0)
    await joins.admit()
    waits = []
    for _ in range(8):
        with pytest.raises(Busy) as refused:
            await joins.admit()
        waits.append(refused.value.retry_after_s)
    assert waits == sorted(waits) and waits[-1] > waits[0]
    assert waits[-1] >= 8 / 2.0  # the eighth refused hall comes back after the seven before


async def test_admission_off_admits_everything() -> None:
    joins = gate(max_handshakes=0)
    tickets = [await joins.admit() for _ in range(50)]
    assert len(tickets) == 50 and joins.in_flight == 0


async def test_admission_waits_while_the_event_loop_runs_late() -> None:
    lag = LoopLag()
    joins = gate(max_handshakes=10, queue_s=0.3, max_lag_s=0.05)
    joins.lag = lag
    lag.lag_s = 0.2  # as measured while the loop was held up
    with pytest.raises(Busy):
        await joins.admit()
    joins.start()
    try:
        # the loop is idle: the measured lag falls and joins are taken again
        deadline = time.monotonic() + 5
        while lag.lag_s > 0.05 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        (await joins.admit()).release()
    finally:
        await joins.close()


async def test_admission_loop_lag_measures_a_blocked_loop() -> None:
    lag = LoopLag()
    lag.start()
    try:
        await asyncio.sleep(0.1)
        time.sleep(0.3)  # the loop is held as by a burst of handshakes
        await asyncio.sleep(0.05)
        assert lag.lag_s > 0.03
    finally:
        await lag.close()


async def test_admission_counts_refusals_by_what_held_the_gate() -> None:
    by_handshakes = gate(max_handshakes=1)
    await by_handshakes.admit()
    with pytest.raises(Busy):
        await by_handshakes.admit()
    by_rate = gate(max_handshakes=100, rate_per_s=0.5, burst=1)
    await by_rate.admit()
    with pytest.raises(Busy):
        await by_rate.admit()
    late = LoopLag()
    late.lag_s = 1.0
    by_lag = gate(max_lag_s=0.05, lag=late)
    with pytest.raises(Busy):
        await by_lag.admit()
    full = gate(max_handshakes=1, rate_per_s=1.0, queue_s=1.0)  # a queue of one
    await full.admit()
    waiting = asyncio.create_task(full.admit())
    await asyncio.sleep(0.05)
    with pytest.raises(Busy):
        await full.admit()
    waiting.cancel()
    assert by_handshakes.refused_by == {"handshakes": 1}
    assert by_rate.refused_by == {"rate": 1}
    assert by_lag.refused_by == {"loop lag": 1}
    assert full.refused_by == {"queue full": 1}
    assert by_lag.holdup() == "loop lag"
    late.lag_s = 0.0
    assert by_lag.holdup() is None
