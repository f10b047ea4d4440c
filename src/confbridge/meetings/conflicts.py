"""The conflict check: no site may be in two overlapping non-cancelled occurrences."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.meetings.models import Booking, Occurrence, Series
from confbridge.sites.models import Site

# Bound the IN (...) lists we send; SQLite and PostgreSQL are both happy below this.
SITE_CHUNK = 900
MAX_REPORTED = 50


@dataclass(frozen=True)
class Interval:
    start_at: datetime
    end_at: datetime

    def overlaps(self, other: Interval) -> bool:
        return self.start_at < other.end_at and other.start_at < self.end_at


@dataclass(frozen=True)
class ConflictInfo:
    site_id: int
    site_name: str
    series_id: int | None
    series_title: str
    occurrence_id: int | None
    start_at: datetime
    end_at: datetime
    requested_start_at: datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "site_id": self.site_id,
            "site_name": self.site_name,
            "series_id": self.series_id,
            "series_title": self.series_title,
            "occurrence_id": self.occurrence_id,
            "start_at": self.start_at.isoformat(),
            "end_at": self.end_at.isoformat(),
            "requested_start_at": self.requested_start_at.isoformat(),
        }


def self_overlaps(intervals: Sequence[Interval]) -> list[tuple[Interval, Interval]]:
    """Pairs of the series' own occurrences that overlap each other (sorted sweep)."""
    ordered = sorted(intervals, key=lambda i: i.start_at)
    return [(a, b) for a, b in itertools.pairwise(ordered) if a.overlaps(b)]


def find_conflicts(
    *,
    session: Session,
    site_ids: Iterable[int],
    intervals: Sequence[Interval],
    exclude_series_id: int | None = None,
    exclude_occurrence_id: int | None = None,
) -> list[ConflictInfo]:
    """Existing active bookings of `site_ids` that overlap any of `intervals`.

    `intervals` must not overlap each other (check `self_overlaps` first): sorted by start, their
    ends are then sorted too, and one bisect finds the candidate an existing booking can hit.

    Two steps, so that the cost follows the conflicts found rather than the bookings in the
    window (a national series books ~3,355 sites × 50 occurrences):
    1. per chunk of sites, the distinct booked slots (occurrence, start, end) in the window,
       grouped by the database: a few per occurrence, however many sites it books;
    2. for each slot that hits a candidate, the sites booked in it.
    """
    if not intervals:
        return []
    ordered = sorted(intervals, key=lambda i: i.start_at)
    window_start = ordered[0].start_at
    window_end = max(i.end_at for i in ordered)
    ends = [i.end_at for i in ordered]
    wanted = set(site_ids)
    sites = sorted(wanted)

    slots = _booked_slots(
        session,
        sites,
        window=(window_start, window_end),
        exclude_series_id=exclude_series_id,
        exclude_occurrence_id=exclude_occurrence_id,
    )
    requested_by_slot: dict[tuple[int, datetime, datetime], datetime] = {}
    for slot in slots:
        _, start_at, end_at = slot
        # The first candidate ending after this slot starts is the only one to test.
        index = bisect.bisect_right(ends, start_at)
        if index < len(ordered) and ordered[index].start_at < end_at:
            requested_by_slot[slot] = ordered[index].start_at
    if not requested_by_slot:
        return []

    series_of = _series_of(session, sorted({o for o, _, _ in requested_by_slot}))
    hits: list[tuple[int, int, datetime, datetime, datetime]] = []
    for (occurrence_id, start_at, end_at), requested_at in requested_by_slot.items():
        booked = session.scalars(
            select(Booking.site_id).where(
                Booking.occurrence_id == occurrence_id,
                Booking.start_at == start_at,
                Booking.end_at == end_at,
                Booking.active.is_(True),
            )
        )
        hits.extend(
            (site_id, occurrence_id, start_at, end_at, requested_at)
            for site_id in booked
            if site_id in wanted
        )
    names = _site_names(session, sorted({h[0] for h in hits}))
    found = [
        ConflictInfo(
            site_id,
            names[site_id],
            series_of[occurrence_id][0],
            series_of[occurrence_id][1],
            occurrence_id,
            start_at,
            end_at,
            requested_at,
        )
        for site_id, occurrence_id, start_at, end_at, requested_at in hits
    ]
    found.sort(key=lambda c: (c.start_at, c.site_id))
    return found


def _booked_slots(
    session: Session,
    sites: list[int],
    *,
    window: tuple[datetime, datetime],
    exclude_series_id: int | None,
    exclude_occurrence_id: int | None,
) -> set[tuple[int, datetime, datetime]]:
    """The distinct (occurrence, start, end) slots in which any of `sites` is actively booked
    within the window, a chunk of sites per query."""
    window_start, window_end = window
    slots: set[tuple[int, datetime, datetime]] = set()
    for chunk_start in range(0, len(sites), SITE_CHUNK):
        chunk = sites[chunk_start : chunk_start + SITE_CHUNK]
        query = (
            select(Booking.occurrence_id, Booking.start_at, Booking.end_at)
            .where(
                Booking.site_id.in_(chunk),
                Booking.active.is_(True),
                Booking.start_at < window_end,
                Booking.end_at > window_start,
            )
            .group_by(Booking.occurrence_id, Booking.start_at, Booking.end_at)
        )
        if exclude_series_id is not None:
            query = query.join(Occurrence, Occurrence.id == Booking.occurrence_id).where(
                Occurrence.series_id != exclude_series_id
            )
        if exclude_occurrence_id is not None:
            query = query.where(Booking.occurrence_id != exclude_occurrence_id)
        slots.update((o, s, e) for o, s, e in session.execute(query))
    return slots


def _series_of(session: Session, occurrence_ids: list[int]) -> dict[int, tuple[int, str]]:
    """Series id and title of each occurrence."""
    result: dict[int, tuple[int, str]] = {}
    for start in range(0, len(occurrence_ids), SITE_CHUNK):
        query = (
            select(Occurrence.id, Series.id, Series.title)
            .join(Series, Series.id == Occurrence.series_id)
            .where(Occurrence.id.in_(occurrence_ids[start : start + SITE_CHUNK]))
        )
        result.update((o, (s, t)) for o, s, t in session.execute(query))
    return result


def _site_names(session: Session, site_ids: list[int]) -> dict[int, str]:
    result: dict[int, str] = {}
    for start in range(0, len(site_ids), SITE_CHUNK):
        query = select(Site.id, Site.name).where(Site.id.in_(site_ids[start : start + SITE_CHUNK]))
        result.update((i, n) for i, n in session.execute(query))
    return result
