"""The overlap rules behind the conflict check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from confbridge.meetings.conflicts import Interval, self_overlaps

T0 = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)


def span(start_min: int, end_min: int) -> Interval:
    return Interval(T0 + timedelta(minutes=start_min), T0 + timedelta(minutes=end_min))


def test_interval_overlap_is_half_open() -> None:
    assert span(0, 60).overlaps(span(30, 90))
    assert span(0, 60).overlaps(span(-10, 200))
    assert not span(0, 60).overlaps(span(60, 120))  # back-to-back meetings are fine
    assert not span(0, 60).overlaps(span(-60, 0))


def test_self_overlaps_finds_adjacent_pairs() -> None:
    assert self_overlaps([span(0, 60), span(120, 180)]) == []
    assert self_overlaps([span(120, 200), span(0, 130)]) == [(span(0, 130), span(120, 200))]
