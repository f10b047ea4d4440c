"""Owned background tasks end when their owner closes them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from confbridge_kernel.tasks import OwnedTask, every


async def test_tasks_close_cancels_and_waits() -> None:
    ended = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.set()

    task = OwnedTask("test-forever")
    await task.close()  # never started: nothing to do
    task.start(forever())
    await asyncio.sleep(0)
    assert task.running
    await task.close()
    assert ended.is_set() and not task.running
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "test-forever"]


async def test_every_runs_rounds_until_cancelled_and_outlives_a_failing_round(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds: list[int] = []

    def round_() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 2:
            raise RuntimeError("the database is away")

    task = OwnedTask("rounds")
    task.start(every(0.01, round_, failed="round failed", log=logging.getLogger("test.every")))
    for _ in range(200):
        if len(rounds) >= 4:
            break
        await asyncio.sleep(0.01)
    await task.close()
    assert len(rounds) >= 4  # the round after the failing one ran
    assert [r.getMessage() for r in caplog.records if r.name == "test.every"] == ["round failed"]
    done = len(rounds)
    await asyncio.sleep(0.05)
    # nothing new starts after close (a round already handed to its thread may still finish)
    assert len(rounds) <= done + 1
