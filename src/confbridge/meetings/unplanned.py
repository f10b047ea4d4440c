"""Occurrences the planner could not place: extending open-ended series as time passes,
and the starts that clashed, waiting until the secretariat moves or skips them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.errors import Conflict, NotFound
from confbridge.meetings import service
from confbridge.meetings.conflicts import MAX_REPORTED, ConflictInfo, Interval, find_conflicts
from confbridge.meetings.models import (
    Occurrence,
    OccurrenceStatus,
    Series,
    UnplannedOccurrence,
    UnplannedStatus,
)
from confbridge.settings import MeetingSettings
from confbridge.timeutil import zone

log = logging.getLogger(__name__)

UNPLANNED_CLASH = "clash"  # the reason: another meeting holds one of its sites at that time


@dataclass
class ExtensionResult:
    series_id: int
    created: int
    skipped: list[ConflictInfo]
    unplanned: list[UnplannedOccurrence] = field(default_factory=list)


def extend_horizons(
    *, session: Session, settings: MeetingSettings, now: datetime
) -> list[ExtensionResult]:
    """Plan open-ended series further ahead as time passes.

    An occurrence that would clash with a booking made since is not created: it is recorded as
    unplanned (`UnplannedOccurrence`), with what it clashes with, until the secretariat moves
    it or accepts that it is skipped.
    """
    until_at = now + timedelta(days=settings.horizon_days)
    service.lock_bookings(session)
    due = session.scalars(
        select(Series).where(Series.ended_at.is_(None), Series.materialized_until_at < until_at)
    ).all()
    results = []
    for series in due:
        spec = service.spec_of(series)
        _, _, booked = service.invited_site_ids(session, spec)
        starts = spec.rule.starts(
            after_at=series.materialized_until_at,
            until_at=until_at,
            limit=settings.max_occurrences_per_series,
        )
        known = {
            u.recurrence_at for u in service.list_unplanned(session=session, series_id=series.id)
        }
        result = ExtensionResult(series.id, 0, [])
        for start_at in starts:
            if start_at in known:
                continue
            occurrence = Occurrence(
                recurrence_at=start_at, start_at=start_at, end_at=start_at + spec.duration
            )
            clashes = find_conflicts(
                session=session,
                site_ids=booked,
                intervals=[Interval(occurrence.start_at, occurrence.end_at)],
            )
            if clashes:
                log.warning(
                    "series %s: %s not planned, %d clash(es); recorded as unplanned",
                    series.id,
                    start_at,
                    len(clashes),
                )
                item = UnplannedOccurrence(
                    series_id=series.id,
                    recurrence_at=start_at,
                    reason=UNPLANNED_CLASH,
                    conflicts=[c.as_dict() for c in clashes[:MAX_REPORTED]],
                    status=UnplannedStatus.pending.value,
                    created_at=now,
                )
                session.add(item)
                result.skipped.extend(clashes)
                result.unplanned.append(item)
                continue
            series.occurrences.append(occurrence)
            session.flush()
            service.insert_bookings(session, [occurrence], booked, spec.chair_site_id)
            result.created += 1
        series.materialized_until_at = until_at
        results.append(result)
    session.flush()
    return results


# --- occurrences the planner could not place -----------------------------------------------------


def pending_unplanned(*, session: Session) -> list[tuple[UnplannedOccurrence, Series]]:
    """Every unplanned start still waiting for the secretariat, with its series."""
    query = (
        select(UnplannedOccurrence, Series)
        .join(Series, Series.id == UnplannedOccurrence.series_id)
        .where(UnplannedOccurrence.status == UnplannedStatus.pending.value)
        .order_by(UnplannedOccurrence.recurrence_at)
    )
    return [(item, series) for item, series in session.execute(query)]


def local_date(item: UnplannedOccurrence, series: Series) -> date:
    """The date the rule gave it, in the series' time zone (the key the API uses)."""
    return item.recurrence_at.astimezone(zone(series.tz)).date()


def get_unplanned(*, session: Session, series: Series, day: date) -> UnplannedOccurrence:
    """The unplanned start of the series on `day` (a series meets at most once a day)."""
    for item in service.list_unplanned(session=session, series_id=series.id):
        if local_date(item, series) == day:
            return item
    raise NotFound(f"series {series.id} has no unplanned meeting on {day.isoformat()}")


def _check_pending(series: Series, item: UnplannedOccurrence) -> None:
    if series.ended_at is not None:
        raise Conflict(f"series {series.id} has ended")
    if item.status != UnplannedStatus.pending.value:
        raise Conflict(f"the meeting of {item.recurrence_at:%Y-%m-%d} was already {item.status}")


def move_unplanned(
    *, session: Session, series: Series, item: UnplannedOccurrence, start_at: datetime
) -> Occurrence:
    """Book an unplanned start at `start_at` instead: it becomes an occurrence like the others
    (moved from the start the rule gave), or 409 with the clashes, and nothing changes."""
    service.lock_bookings(session)
    _check_pending(series, item)
    spec = service.spec_of(series)
    _, _, booked = service.invited_site_ids(session, spec)
    new_start = start_at.astimezone(UTC)
    interval = Interval(new_start, new_start + spec.duration)
    own = [
        Interval(o.start_at, o.end_at)
        for o in series.occurrences
        if o.status != OccurrenceStatus.cancelled.value
    ]
    if any(interval.overlaps(other) for other in own):
        raise Conflict("the new time overlaps another meeting of this series")
    service.refuse_conflicts(find_conflicts(session=session, site_ids=booked, intervals=[interval]))
    occurrence = Occurrence(
        recurrence_at=item.recurrence_at,
        start_at=interval.start_at,
        end_at=interval.end_at,
        sequence=1,
    )
    series.occurrences.append(occurrence)
    session.delete(item)
    session.flush()
    service.insert_bookings(session, [occurrence], booked, spec.chair_site_id)
    return occurrence


def skip_unplanned(
    *, session: Session, series: Series, item: UnplannedOccurrence, actor: str, now: datetime
) -> UnplannedOccurrence:
    """Accept that the meeting does not take place: it stays listed, as skipped."""
    _check_pending(series, item)
    item.status = UnplannedStatus.skipped.value
    item.resolved_at, item.resolved_by = now, actor
    session.flush()
    return item
