"""Waiting for something to happen without blocking the event loop (the test's own peers
live on it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(
    condition: Callable[[], Any], timeout_s: float = 10.0, step_s: float = 0.05
) -> None:
    """Until `condition()` is true; an AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step_s)


async def eventually(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    """Poll the coroutine `check` until it gives something true, and return that."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not seen in {timeout_s} s"
        await asyncio.sleep(0.2)
