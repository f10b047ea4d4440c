"""The scheduler stores the attendance of meetings that have just ended."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from confbridge.attendance.models import AttendanceRun
from confbridge.db import Database
from confbridge.scheduler import Scheduler
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import EventType
from tests.support.events import TZ, event


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
