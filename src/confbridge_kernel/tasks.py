"""Background tasks with an owner: started once, cancelled and awaited when the owner closes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any


class OwnedTask:
    """One asyncio task of a component: `start()` creates it, `close()` cancels it and waits
    for its end, so nothing runs on after its owner has closed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._task = asyncio.create_task(coroutine, name=self.name)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


async def every(
    interval_s: float, round_: Callable[[], object], *, failed: str, log: logging.Logger
) -> None:
    """Run the blocking `round_` in a thread every `interval_s` until cancelled; a round that
    raises is logged (`failed`) and the next one runs as planned (a database or server back)."""
    while True:
        try:
            await asyncio.to_thread(round_)
        except Exception:
            log.exception(failed)
        await asyncio.sleep(interval_s)
