"""The scheduler stores the attendance of meetings that have just ended."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from confbridge import scheduler as scheduler_module
from confbridge.attendance import service as attendance_service
from confbridge.attendance.models import Attendance, AttendanceRun
from confbridge.db import Database
from confbridge.meetings.models import Occurrence
from confbridge.scheduler import Scheduler
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import EventType
from tests.support.events import TZ, event, media

REPORT = "/api/v1/reports/attendance"
AT_DAWN = datetime(2000, 1, 1, tzinfo=UTC)


def test_scheduled_store_ended_meetings_once(
    database: Database,
    settings: Settings,
    meeting: Callable[..., int],
    post_events: Callable[..., None],
    sites: dict[str, Site],
) -> None:
    start = (utcnow() - timedelta(hours=3)).astimezone(TZ).replace(second=0, microsecond=0)
    ended = meeting(dtstart=start.replace(tzinfo=None).isoformat(), duration_min=60)
    running = meeting(
        dtstart=(start + timedelta(hours=2, minutes=30)).replace(tzinfo=None).isoformat(),
        duration_min=120,
    )
    post_events(
        event(ended, sites["p1"].id, EventType.joined, start + timedelta(minutes=1)),
        event(ended, sites["p1"].id, EventType.left, start + timedelta(minutes=59)),
    )
    scheduler = Scheduler(database, settings)
    assert scheduler.store_attendance() == 3  # one record per invited site
    assert scheduler.store_attendance() == 0  # up to date: nothing to do
    with database.session() as session:
        assert session.get(AttendanceRun, ended) is not None
        assert session.get(AttendanceRun, running) is None  # still on: computed when read
    # a late event makes the stored attendance out of date: the next round redoes it
    post_events(event(ended, sites["p2"].id, EventType.joined, start + timedelta(minutes=2)))
    assert scheduler.store_attendance() == 3


def _ended_meeting(meeting: Callable[..., int], ago: timedelta, duration_min: int = 60) -> int:
    start = (utcnow() - ago).astimezone(TZ).replace(second=0, microsecond=0)
    return meeting(dtstart=start.replace(tzinfo=None).isoformat(), duration_min=duration_min)


def _attended(
    post_events: Callable[..., None], occurrence_id: int, site: Site, start: datetime
) -> None:
    """The site joined at the start and sent media for the whole hour."""
    end = start + timedelta(minutes=60)
    post_events(
        event(occurrence_id, site.id, EventType.joined, start),
        *media(occurrence_id, site.id, start, end),
        event(occurrence_id, site.id, EventType.left, end, reason="meeting_ended"),
    )


def _start_of(database: Database, occurrence_id: int) -> datetime:
    with database.session() as session:
        occurrence = session.get(Occurrence, occurrence_id)
        assert occurrence is not None
        return occurrence.start_at


def test_scheduled_store_old_meetings_and_backlogs_in_batches(
    database: Database,
    settings: Settings,
    meeting: Callable[..., int],
    post_events: Callable[..., None],
    sites: dict[str, Site],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Meetings that ended long ago (an upgrade, the server down for days) are caught up too."""
    monkeypatch.setattr(scheduler_module, "FOLD_BATCH", 2)
    ended = [_ended_meeting(meeting, timedelta(days=days)) for days in (40, 12, 3, 1)]
    _attended(post_events, ended[0], sites["p1"], _start_of(database, ended[0]))
    scheduler = Scheduler(database, settings)
    assert scheduler.store_attendance() == 4 * 3  # three invited sites each, two batches
    with database.session() as session:
        stale = attendance_service.stale_occurrence_ids(
            session=session, from_at=AT_DAWN, to_at=utcnow(), now=utcnow()
        )
        status = session.get(Attendance, (ended[0], sites["p1"].id))
    assert stale == []
    assert status is not None and status.status == "present"


def test_scheduled_store_report_reads_stored_rows_without_computing(
    database: Database,
    settings: Settings,
    client: TestClient,
    secretariat: dict[str, str],
    meeting: Callable[..., int],
    post_events: Callable[..., None],
    sites: dict[str, Site],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Events arrive, the loop folds them in, and the report reads rows: nothing to compute."""
    occurrence_id = _ended_meeting(meeting, timedelta(hours=2))
    start = _start_of(database, occurrence_id)
    _attended(post_events, occurrence_id, sites["p1"], start)
    params = {"from": start.astimezone(TZ).date().isoformat()}
    params["to"] = params["from"]
    computed_on_read = client.get(REPORT, params=params, headers=secretariat).json()
    # the same state again, this time with the loop's round first
    with database.session() as session:
        session.execute(delete(Attendance))
        session.execute(delete(AttendanceRun))
        session.commit()
    assert Scheduler(database, settings).store_attendance() == 3

    def no_computing(**_kwargs: object) -> None:
        raise AssertionError("the report computed attendance on read")

    monkeypatch.setattr(attendance_service, "compute", no_computing)
    report = client.get(REPORT, params=params, headers=secretariat)
    assert report.status_code == 200, report.text
    stored = report.json()
    assert (stored["occurrences"], stored["invited"], stored["present"]) == (1, 3, 1)
    for figures in (stored, computed_on_read):
        figures.pop("generated_at")
    assert stored == computed_on_read


def test_scheduled_store_next_round_just_after_a_meeting_ends(
    database: Database, settings: Settings, meeting: Callable[..., int]
) -> None:
    occurrence_id = _ended_meeting(meeting, timedelta(minutes=-30), duration_min=60)
    with database.session() as session:
        occurrence = session.get(Occurrence, occurrence_id)
        assert occurrence is not None
        end_at = occurrence.end_at
    scheduler = Scheduler(database, settings)
    grace = scheduler_module.ATTENDANCE_END_GRACE_S
    # 20 s before the end: the round comes when its last events are in
    assert scheduler.attendance_delay_s(end_at - timedelta(seconds=20)) == 20 + grace
    # an end further away than the interval: the interval
    far = end_at - timedelta(minutes=30)
    assert scheduler.attendance_delay_s(far) == scheduler_module.ATTENDANCE_INTERVAL_S
    # that round done, the next one is the interval's again
    after = end_at + timedelta(seconds=grace)
    assert scheduler.attendance_delay_s(after) == scheduler_module.ATTENDANCE_INTERVAL_S


def test_scheduled_store_skips_what_another_process_is_folding(
    database: Database,
    settings: Settings,
    meeting: Callable[..., int],
) -> None:
    """With `serve --processes 2` two loops run; a meeting one is folding, the other skips."""
    if database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no two loops fold at once")
    busy, free = (_ended_meeting(meeting, timedelta(hours=h)) for h in (3, 5))
    rule = settings.reports.attendance
    with database.session() as other, database.session() as session:
        other.execute(select(Occurrence.id).where(Occurrence.id == busy).with_for_update())
        folded = attendance_service.fold_stale(session=session, rule=rule, now=utcnow(), limit=5)
        session.commit()
        assert folded == attendance_service.Folded(occurrences=1, records=3)
        assert session.get(AttendanceRun, free) is not None
        assert session.get(AttendanceRun, busy) is None
        other.rollback()


def test_scheduled_store_read_waits_for_a_fold_in_progress(
    database: Database,
    settings: Settings,
    meeting: Callable[..., int],
) -> None:
    """A report arriving while the loop folds a meeting waits for it, then computes nothing."""
    if database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: a read never meets a fold in progress")
    occurrence_id = _ended_meeting(meeting, timedelta(hours=2))
    rule, now = settings.reports.attendance, utcnow()
    written: list[int] = []
    with database.session() as loop, database.session() as report:
        folded = attendance_service.fold_stale(session=loop, rule=rule, now=now, limit=5)
        assert folded.occurrences == 1  # not committed yet: the occurrence stays locked

        def read() -> None:
            written.append(
                attendance_service.refresh(
                    session=report, from_at=AT_DAWN, to_at=now, rule=rule, now=now
                )
            )
            report.commit()

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(0.5)
        assert reader.is_alive()  # waiting for the loop's lock
        loop.commit()
        reader.join(10)
        assert not reader.is_alive()
    assert written == [0]
    with database.session() as session:
        assert session.get(AttendanceRun, occurrence_id) is not None
