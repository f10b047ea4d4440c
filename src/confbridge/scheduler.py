"""The control plane's background loop: keeps open-ended series planned ahead, and stores the
attendance of meetings that have just ended (so reports do not compute it on first read)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from confbridge.attendance import service as attendance_service
from confbridge.db import Database
from confbridge.meetings import flows as meeting_flows
from confbridge.settings import Settings
from confbridge.timeutil import utcnow
from confbridge_kernel.tasks import OwnedTask

log = logging.getLogger(__name__)
EXTEND_INTERVAL_S = 3600.0
ATTENDANCE_INTERVAL_S = 300.0
ATTENDANCE_LOOKBACK = timedelta(days=2)
"""Occurrences that started this long ago at most are brought up to date each round."""


class Scheduler:
    """Owns one asyncio task; `start()` creates it, `close()` cancels it and waits."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._settings = settings
        self._task = OwnedTask("confbridge-scheduler")

    def start(self) -> None:
        self._task.start(self._run())

    async def close(self) -> None:
        await self._task.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        extend_due = loop.time()
        while True:
            if loop.time() >= extend_due:
                extend_due = loop.time() + EXTEND_INTERVAL_S
                try:
                    await asyncio.to_thread(self.extend_horizons)
                except Exception:  # keep the loop alive; the next round may succeed
                    log.exception("extending series horizons failed")
            try:
                await asyncio.to_thread(self.store_attendance)
            except Exception:
                log.exception("storing attendance failed")
            await asyncio.sleep(ATTENDANCE_INTERVAL_S)

    def store_attendance(self) -> int:
        """Store the attendance of recently ended occurrences not stored (or outdated) yet;
        returns how many site records were written."""
        now = utcnow()
        with self._database.session() as session:
            stored = attendance_service.refresh(
                session=session,
                from_at=now - ATTENDANCE_LOOKBACK,
                to_at=now,
                rule=self._settings.reports.attendance,
                now=now,
            )
            session.commit()
        if stored:
            log.info("stored %d attendance record(s) of ended meetings", stored)
        return stored

    def extend_horizons(self) -> int:
        with self._database.session() as session:
            results = meeting_flows.plan_ahead(
                session=session, settings=self._settings, now=utcnow()
            )
            session.commit()
        created = sum(r.created for r in results)
        if created:
            log.info("planned %d more occurrence(s) across %d series", created, len(results))
        unplanned = sum(len(r.unplanned) for r in results)
        if unplanned:
            log.warning("%d occurrence(s) could not be planned (clashes): alerted", unplanned)
        return created
