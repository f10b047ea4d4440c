"""The control plane's background loop: keeps open-ended series planned ahead."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from confbridge.db import Database, utcnow
from confbridge.meetings import service as meeting_service
from confbridge.settings import Settings

log = logging.getLogger(__name__)
EXTEND_INTERVAL_S = 3600.0


class Scheduler:
    """Owns one asyncio task; `start()` creates it, `close()` cancels it and waits."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._settings = settings
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="confbridge-scheduler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.extend_horizons)
            except Exception:  # keep the loop alive; the next round may succeed
                log.exception("extending series horizons failed")
            await asyncio.sleep(EXTEND_INTERVAL_S)

    def extend_horizons(self) -> int:
        with self._database.session() as session:
            results = meeting_service.extend_horizons(
                session=session, settings=self._settings.meetings, now=utcnow()
            )
            session.commit()
        created = sum(r.created for r in results)
        if created:
            log.info("planned %d more occurrence(s) across %d series", created, len(results))
        return created
