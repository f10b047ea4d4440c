"""The control plane's background loop: keeps open-ended series planned ahead, ends meetings
left running past their end and the grace, and stores the attendance of meetings as they end
and as late events arrive, so that reports read stored rows instead of computing them on first
read."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from confbridge import signing
from confbridge.attendance import service as attendance_service
from confbridge.bridge import timing
from confbridge.db import Database
from confbridge.live import LiveBus
from confbridge.meetings import flows as meeting_flows
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.models import Occurrence
from confbridge.nodes.worker_client import WorkerUnavailable
from confbridge.object_store import store_of
from confbridge.recordings import archive as recording_archive
from confbridge.records import documents as document_service
from confbridge.records.storage import store_for
from confbridge.settings import Settings
from confbridge.timeutil import utcnow
from confbridge_kernel.tasks import OwnedTask

log = logging.getLogger(__name__)
EXTEND_INTERVAL_S = 3600.0
ATTENDANCE_INTERVAL_S = 60.0
"""At most this long between attendance rounds: late events are folded in within it."""
ATTENDANCE_END_GRACE_S = 15.0
"""A round starts this long after a meeting ends: its last `left` events arrive within it."""
FOLD_BATCH = 20
"""Occurrences per transaction (a national briefing, 3,355 records, takes about 0.3 s)."""
MAX_FOLD_BATCHES = 50
"""Batches per round at most (1,000 occurrences): a backlog (an upgrade, the server down for
days) is worked off over a few rounds rather than in one long one."""


class Scheduler:
    """Owns one asyncio task; `start()` creates it, `close()` cancels it and waits."""

    def __init__(self, database: Database, settings: Settings, live: LiveBus | None = None) -> None:
        self._database = database
        self._settings = settings
        self._live = live
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
                    await asyncio.to_thread(self.purge_documents)
                except Exception:
                    log.exception("purging meeting documents failed")
                try:
                    await asyncio.to_thread(self.purge_recordings)
                except Exception:
                    log.exception("deleting recordings past their retention failed")
            try:
                await asyncio.to_thread(self.end_overrun)
            except Exception:
                log.exception("ending meetings left running failed")
            try:
                await asyncio.to_thread(self.move_recordings)
            except Exception:
                log.exception("moving recordings to the object store failed")
            delay_s = ATTENDANCE_INTERVAL_S
            try:
                await asyncio.to_thread(self.store_attendance)
                delay_s = await asyncio.to_thread(self.attendance_delay_s)
            except Exception:
                log.exception("storing attendance failed")
            await asyncio.sleep(delay_s)

    def end_overrun(self, now: datetime | None = None) -> int:
        """End the meetings left running past their end and the grace; their rooms close and
        the pages following them are told. Returns how many ended."""
        now = now or utcnow()
        with self._database.session() as session:
            changes = timing.end_overrun(session=session, settings=self._settings.meetings, now=now)
            session.commit()
            if not changes:
                return 0
            signer = signing.signer_for(self._settings.grant_key_path)
            timing.tell_rooms(session=session, changes=changes, signer=signer)
            if self._live is not None:
                for change in changes:
                    occurrence = session.get(Occurrence, change.occurrence_id)
                    if occurrence is not None:
                        timing.publish_schedule(self._live, occurrence, self._settings.meetings)
        log.info("%d meeting(s) left running past their end ended by themselves", len(changes))
        return len(changes)

    def store_attendance(self, now: datetime | None = None) -> int:
        """Store the attendance of ended occurrences not stored (or out of date) yet, however
        old, in short transactions; returns how many site records were written."""
        now = now or utcnow()
        rule = self._settings.reports.attendance
        occurrences = records = 0
        for _ in range(MAX_FOLD_BATCHES):
            with self._database.session() as session:
                folded = attendance_service.fold_stale(
                    session=session, rule=rule, now=now, limit=FOLD_BATCH
                )
                session.commit()
            occurrences, records = occurrences + folded.occurrences, records + folded.records
            if folded.occurrences < FOLD_BATCH:
                break
        if occurrences:
            log.info("stored %d attendance record(s) of %d ended meeting(s)", records, occurrences)
        return records

    def attendance_delay_s(self, now: datetime | None = None) -> float:
        """Seconds until the next attendance round: just after the next meeting ends, or the
        interval if none ends sooner."""
        now = now or utcnow()
        interval = timedelta(seconds=ATTENDANCE_INTERVAL_S)
        grace = timedelta(seconds=ATTENDANCE_END_GRACE_S)
        with self._database.session() as session:
            end_at = occurrence_service.next_end_at(
                session=session,
                after_at=now - grace,
                before_at=now + interval - grace,
                max_duration_min=self._settings.meetings.max_duration_min,
            )
        if end_at is None:
            return ATTENDANCE_INTERVAL_S
        return max(0.0, (end_at + grace - now).total_seconds())

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

    def purge_documents(self, now: datetime | None = None) -> int:
        """Delete meeting documents past their retention period (rows, then their bytes) and
        files no row refers to (uploads cut off by a crash); returns how many documents went."""
        store = store_for(self._settings)
        with self._database.session() as session:
            keys = document_service.purge_expired(
                session=session,
                now=now or utcnow(),
                retention_days=self._settings.records.document_retention_days,
            )
            session.commit()
            for key in keys:
                store.delete(key)
            document_service.sweep(session=session, store=store)
        if keys:
            log.info("purged %d meeting document(s) past their retention period", len(keys))
        return len(keys)

    def purge_recordings(self, now: datetime | None = None) -> int:
        """Delete the recordings past their series' retention: each file where it is kept,
        then its row (audited); returns how many went."""
        signer = signing.signer_for(self._settings.grant_key_path)
        with self._database.session() as session:
            deleted = recording_archive.purge_expired(
                session=session,
                signer=signer,
                objects=store_of(self._settings),
                now=now or utcnow(),
            )
            session.commit()
        if deleted:
            log.info("deleted %d recording(s) past their retention", len(deleted))
        return len(deleted)

    def move_recordings(self) -> int:
        """Copy finished recordings from their workers to the object store (when one is
        configured), one committed row at a time, then free the workers' disks; returns how
        many moved. A worker that cannot be reached is skipped for the rest of the round."""
        objects = store_of(self._settings)
        if objects is None:
            return 0
        signer = signing.signer_for(self._settings.grant_key_path)
        moved = 0
        unreachable: set[str] = set()
        with self._database.session() as session:
            for row in recording_archive.to_move(session=session):
                if moved >= recording_archive.MOVE_BATCH:
                    break
                if row.node_id in unreachable:
                    continue
                try:
                    done = recording_archive.move_to_store(
                        session=session, row=row, signer=signer, objects=objects
                    )
                except WorkerUnavailable as exc:
                    log.info("recordings on %s wait for it: %s", row.node_id, exc)
                    unreachable.add(row.node_id)
                    continue
                if done:
                    session.commit()
                    recording_archive.release(session=session, row=row, signer=signer)
                    moved += 1
        if moved:
            log.info("moved %d finished recording(s) to the object store", moved)
        return moved
