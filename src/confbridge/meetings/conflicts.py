"""The conflict check: no site may be in two overlapping non-cancelled occurrences."""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
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
    One range query per chunk of sites: the cost is in the bookings already in the window, not
    in sites × intervals.
    """
    if not intervals:
        return []
    ordered = sorted(intervals, key=lambda i: i.start_at)
    window_start = ordered[0].start_at
    window_end = max(i.end_at for i in ordered)
    ends = [i.end_at for i in ordered]
    sites = sorted(set(site_ids))
    found: list[ConflictInfo] = []
    for chunk_start in range(0, len(sites), SITE_CHUNK):
        chunk = sites[chunk_start : chunk_start + SITE_CHUNK]
        query = (
            select(
                Booking.site_id,
                Booking.start_at,
                Booking.end_at,
                Booking.occurrence_id,
                Site.name,
                Series.id,
                Series.title,
            )
            .join(Occurrence, Occurrence.id == Booking.occurrence_id)
            .join(Series, Series.id == Occurrence.series_id)
            .join(Site, Site.id == Booking.site_id)
            .where(
                Booking.site_id.in_(chunk),
                Booking.active.is_(True),
                Booking.start_at < window_end,
                Booking.end_at > window_start,
            )
        )
        if exclude_series_id is not None:
            query = query.where(Occurrence.series_id != exclude_series_id)
        if exclude_occurrence_id is not None:
            query = query.where(Booking.occurrence_id != exclude_occurrence_id)
        by_site: dict[int, list[tuple]] = defaultdict(list)
        for row in session.execute(query):
            by_site[row[0]].append(tuple(row))
        for site_id, rows in by_site.items():
            for _, start_at, end_at, occurrence_id, site_name, series_id, title in rows:
                # The first candidate ending after this booking starts is the only one to test.
                index = bisect.bisect_right(ends, start_at)
                if index < len(ordered) and ordered[index].start_at < end_at:
                    found.append(
                        ConflictInfo(
                            site_id,
                            site_name,
                            series_id,
                            title,
                            occurrence_id,
                            start_at,
                            end_at,
                            ordered[index].start_at,
                        )
                    )
    found.sort(key=lambda c: (c.start_at, c.site_id))
    return found
