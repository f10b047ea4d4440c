"""Planning ahead and re-planning: what happens to occurrences over time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from confbridge.errors import Invalid
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings import service as meeting_service
from confbridge.meetings import unplanned
from confbridge.meetings.models import Booking, Occurrence, OccurrenceStatus
from confbridge.meetings.occurrences import OccurrenceChange
from confbridge.settings import MeetingSettings
from confbridge.sites.models import Site

NOW = datetime(2030, 3, 1, tzinfo=UTC)
SHORT = MeetingSettings(horizon_days=30)


def _create(session: Session, body: dict[str, Any], now: datetime = NOW):
    series = meeting_service.create(session=session, series_in=body, settings=SHORT, now=now)
    session.commit()
    return series


def test_open_ended_series_is_planned_to_the_horizon_then_extended(
    session: Session, series_body: Callable[..., dict[str, Any]]
) -> None:
    series = _create(session, series_body(rrule="FREQ=WEEKLY;BYDAY=MO"))
    assert len(series.occurrences) == 5  # Mondays 4 Mar – 1 Apr 2030 (30 + 3 days ahead)
    later = NOW + timedelta(days=28)
    results = unplanned.extend_horizons(session=session, settings=SHORT, now=later)
    session.commit()
    assert [r.created for r in results] == [3]  # 8, 15 and 22 April
    assert meeting_service.occurrence_count(session=session, series_id=series.id) == 8
    again = unplanned.extend_horizons(session=session, settings=SHORT, now=later)
    assert again == []


def test_extension_skips_a_slot_booked_since_and_reports_it(
    session: Session, series_body: Callable[..., dict[str, Any]], sites: dict[str, Site]
) -> None:
    series = _create(session, series_body(rrule="FREQ=WEEKLY;BYDAY=MO"))
    # Someone books ward p1 on a Monday beyond the first horizon.
    _create(
        session,
        series_body(
            title="Tập huấn",
            dtstart="2030-04-15T08:00",
            rrule="FREQ=WEEKLY;COUNT=1",
            chair_site_id=sites["p1"].id,
            site_ids=[],
        ),
    )
    results = unplanned.extend_horizons(
        session=session, settings=SHORT, now=NOW + timedelta(days=28)
    )
    session.commit()
    mine = next(r for r in results if r.series_id == series.id)
    assert mine.created == 2  # 8 and 22 April; the 15th is taken
    assert [c.series_title for c in mine.skipped] == ["Tập huấn"]
    starts = session.scalars(
        select(Occurrence.start_at).where(Occurrence.series_id == series.id)
    ).all()
    assert datetime(2030, 4, 15, 0, 30, tzinfo=UTC) not in starts


def test_replan_keeps_past_occurrences_and_individual_moves(
    session: Session, series_body: Callable[..., dict[str, Any]]
) -> None:
    series = _create(session, series_body(rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=6"))
    first, second, third = series.occurrences[:3]
    occurrence_service.update_occurrence(
        session=session,
        occurrence=third,
        change=OccurrenceChange(start_at=third.start_at + timedelta(hours=3)),
        settings=SHORT,
        now=NOW,
    )
    session.commit()
    moved_start = third.start_at
    # A week later the duration changes: the past occurrence stays as it was.
    meeting_service.update(
        session=session,
        series=series,
        series_in={"duration_min": 45},
        settings=SHORT,
        now=first.end_at + timedelta(days=1),
    )
    session.commit()
    session.refresh(first)
    assert first.end_at - first.start_at == timedelta(minutes=90)
    assert second.end_at - second.start_at == timedelta(minutes=45)
    assert third.start_at == moved_start and third.moved
    bookings = session.scalars(select(Booking).where(Booking.occurrence_id == third.id)).all()
    assert {(b.start_at, b.end_at) for b in bookings} == {
        (moved_start, moved_start + timedelta(minutes=45))
    }


def test_cancelled_occurrence_stays_cancelled_after_replan(
    session: Session, series_body: Callable[..., dict[str, Any]], sites: dict[str, Site]
) -> None:
    series = _create(session, series_body(rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=3"))
    target = series.occurrences[1]
    occurrence_service.update_occurrence(
        session=session,
        occurrence=target,
        change=OccurrenceChange(status=OccurrenceStatus.cancelled),
        settings=SHORT,
        now=NOW,
    )
    meeting_service.update(
        session=session,
        series=series,
        series_in={"site_ids": [sites["p2"].id]},
        settings=SHORT,
        now=NOW,
    )
    session.commit()
    assert target.status == OccurrenceStatus.cancelled
    active = session.scalar(
        select(func.count())
        .select_from(Booking)
        .where(Booking.occurrence_id == target.id, Booking.active.is_(True))
    )
    assert active == 0
    sites_now = occurrence_service.occurrence_site_ids(session=session, occurrence_id=target.id)
    assert sites_now == sorted([sites["hq"].id, sites["p2"].id])


def test_duration_above_the_configured_maximum_is_refused(
    session: Session, series_body: Callable[..., dict[str, Any]]
) -> None:
    strict = MeetingSettings(max_duration_min=120)
    with pytest.raises(Invalid, match="at most 120"):
        meeting_service.create(
            session=session, series_in=series_body(duration_min=180), settings=strict, now=NOW
        )
