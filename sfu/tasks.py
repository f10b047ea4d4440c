"""The short-lived tasks of a worker (connection watchdogs, ICE restarts, pipe pushes,
reconnections), kept until they end so that closing the worker can cancel them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class PendingTasks:
    """A set of tasks with one owner: `own()` keeps a task until it ends, `close()` ends all."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Task[None]] = set()

    def own(
        self, task: asyncio.Task[None], on_done: Callable[[asyncio.Task[None]], None] | None = None
    ) -> None:
        """Keep `task` until it ends, so close() can cancel it."""
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        if on_done is not None:
            task.add_done_callback(on_done)

    async def close(self) -> None:
        """Cancel every task still running and wait for their ends."""
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
