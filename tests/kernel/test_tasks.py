"""Owned background tasks end when their owner closes them."""

from __future__ import annotations

import asyncio

from confbridge_kernel.tasks import OwnedTask


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
