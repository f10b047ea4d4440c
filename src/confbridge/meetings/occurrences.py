"""One meeting date at a time: reading occurrences, changing one, and whether it is live."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, func, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from confbridge.db import UTCDateTime
from confbridge.errors import Conflict, DomainError, Invalid, NotFound
from confbridge.meetings.conflicts import (
    Interval,
    find_conflicts,
)
from confbridge.meetings.models import (
    Booking,
    Occurrence,
    OccurrenceStatus,
    Series,
    series_sites,
)
from confbridge.meetings.service import (
    lock_bookings,
    past_meetings_refused,
    refuse_conflicts,
)
from confbridge.settings import MeetingSettings
from confbridge.timeutil import utcnow


def get_occurrence(*, session: Session, occurrence_id: int) -> Occurrence:
    occurrence = session.get(Occurrence, occurrence_id)
    if occurrence is None:
        raise NotFound(f"occurrence {occurrence_id} does not exist")
    return occurrence


def occurrence_site_ids(*, session: Session, occurrence_id: int) -> list[int]:
    query = select(Booking.site_id).where(Booking.occurrence_id == occurrence_id)
    return sorted(session.scalars(query))


def list_occurrences(
    *,
    session: Session,
    from_at: datetime,
    to_at: datetime,
    series_id: int | None = None,
    site_id: int | None = None,
    limit: int = 500,
    offset: int = 0,
    where: ColumnElement[bool] | None = None,
) -> tuple[list[tuple[Occurrence, int]], int]:
    """Occurrences overlapping [from_at, to_at), each with its number of invited sites."""
    site_count = (
        select(func.count())
        .where(Booking.occurrence_id == Occurrence.id)
        .correlate(Occurrence)
        .scalar_subquery()
    )
    query = select(Occurrence, site_count).where(
        Occurrence.start_at < to_at, Occurrence.end_at > from_at
    )
    if series_id is not None:
        query = query.where(Occurrence.series_id == series_id)
    if site_id is not None:
        invited = select(Booking.occurrence_id).where(Booking.site_id == site_id)
        query = query.where(Occurrence.id.in_(invited))
    if where is not None:
        query = query.where(where)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.order_by(Occurrence.start_at, Occurrence.id).limit(limit).offset(offset)
    )
    return [(row[0], row[1]) for row in rows], total


def next_end_at(
    *, session: Session, after_at: datetime, before_at: datetime, max_duration_min: int
) -> datetime | None:
    """The first end of a held occurrence in (after_at, before_at], if any.

    Bounded on the start index: an occurrence ending then started at most `max_duration_min`
    before `after_at`.
    """
    query = select(func.min(Occurrence.end_at)).where(
        Occurrence.status == OccurrenceStatus.scheduled.value,
        Occurrence.start_at > after_at - timedelta(minutes=max_duration_min),
        Occurrence.start_at < before_at,
        Occurrence.end_at > after_at,
        Occurrence.end_at <= before_at,
    )
    return session.scalar(query)


def set_occurrence_upstream(
    *, session: Session, occurrence: Occurrence, upstream_sip_uri: str | None
) -> Occurrence:
    """Give one occurrence its own bridge above (None: the series')."""
    if occurrence.series.ended_at is not None and occurrence.start_at >= occurrence.series.ended_at:
        raise Conflict("the series has ended")
    occurrence.upstream_sip_uri = upstream_sip_uri
    session.flush()
    return occurrence


@dataclass(frozen=True)
class OccurrenceChange:
    """What a change to one occurrence asks for (None: keep as it is).

    `record_past`: the caller chose to record a meeting that took place (its end is past);
    `confirm` and `reason`: a meeting with attendance is moved or cancelled on purpose.
    """

    start_at: datetime | None = None
    end_at: datetime | None = None
    status: OccurrenceStatus | None = None
    record_past: bool = False
    confirm: bool = False
    reason: str | None = None


def closes_at(occurrence: Occurrence, *, overrun_grace_min: int) -> datetime:
    """When the room closes and joining stops: when the meeting was ended, else its end plus
    the time a meeting may run over by before it ends by itself."""
    if occurrence.ended_at is not None:
        return occurrence.ended_at
    return occurrence.end_at + timedelta(minutes=overrun_grace_min)


def live_clause(*, now: datetime, overrun_grace_min: int) -> ColumnElement[bool]:
    """`is_live` as a query condition: started, scheduled, not ended, and not past the time
    it may run over until (a meeting running over stays on the IT page and in the metrics)."""
    return (
        (Occurrence.start_at <= now)
        & (Occurrence.status == OccurrenceStatus.scheduled.value)
        & Occurrence.ended_at.is_(None)
        & (Occurrence.end_at > now - timedelta(minutes=overrun_grace_min))
    )


def is_live(occurrence: Occurrence, *, now: datetime, overrun_grace_min: int) -> bool:
    """Started, not cancelled, not ended, and not past the time it may run over until."""
    return (
        occurrence.status == OccurrenceStatus.scheduled.value
        and occurrence.ended_at is None
        and occurrence.start_at <= now < closes_at(occurrence, overrun_grace_min=overrun_grace_min)
    )


def held_meeting_refused(attended_sites: int, *, reason_missing: bool) -> DomainError:
    """The refusal of a move or cancellation of a meeting that has attendance: 409 without a
    confirmation, 422 without a reason."""
    if reason_missing:
        return Invalid(
            "Hãy ghi lý do khi dời hoặc hủy cuộc họp đã có điểm cầu tham dự. "
            "reason: give the reason for moving or cancelling a meeting that has attendance",
            code="reason_needed",
            attended_sites=attended_sites,
        )
    return Conflict(
        f"Cuộc họp đã có {attended_sites} điểm cầu tham dự: xác nhận và ghi lý do để dời "
        f"hoặc hủy (điểm danh được giữ lại). The meeting has attendance ({attended_sites} "
        "site(s) joined): send confirm: true and a reason to move or cancel it (its attendance "
        "is kept)",
        code="confirm_needed",
        attended_sites=attended_sites,
    )


def update_occurrence(
    *,
    session: Session,
    occurrence: Occurrence,
    change: OccurrenceChange,
    settings: MeetingSettings,
    now: datetime,
    attended_sites: int = 0,
) -> Occurrence:
    """Move, extend, end, cancel or restore one occurrence.

    A live meeting whose end alone changes is extended (clashes are checked like a move) or,
    with an end not after now, ended now. Anything else that would leave the meeting over
    before now needs `record_past`; moving or cancelling a meeting with `attended_sites`
    needs `confirm` and a reason. A move into a busy slot is refused with the clashes.
    """
    lock_bookings(session)
    if occurrence.series.ended_at is not None and occurrence.start_at >= occurrence.series.ended_at:
        raise Conflict("the series has ended")
    new_start = change.start_at.astimezone(UTC) if change.start_at else occurrence.start_at
    if change.end_at is not None:
        new_end = change.end_at.astimezone(UTC)
    else:
        new_end = new_start + (occurrence.end_at - occurrence.start_at)
    if new_end <= new_start:
        raise Invalid("end_at: the end must be after the start (Giờ kết thúc phải sau giờ bắt đầu)")
    if new_end - new_start > timedelta(minutes=settings.max_duration_min):
        raise Invalid(f"duration: at most {settings.max_duration_min} minutes")
    new_status = change.status.value if change.status is not None else occurrence.status
    timing = new_start != occurrence.start_at or new_end != occurrence.end_at
    grace = settings.overrun_grace_min
    live_end_only = (
        is_live(occurrence, now=now, overrun_grace_min=grace)
        and new_start == occurrence.start_at
        and new_status == OccurrenceStatus.scheduled.value
    )
    if not live_end_only:
        _check_past_and_held(
            occurrence, change, (new_start, new_end), new_status, timing, now, attended_sites
        )
    ending = live_end_only and new_end <= now
    if new_status == OccurrenceStatus.scheduled and not ending:
        site_ids = occurrence_site_ids(session=session, occurrence_id=occurrence.id)
        conflicts = find_conflicts(
            session=session,
            site_ids=site_ids,
            intervals=[Interval(new_start, new_end)],
            exclude_occurrence_id=occurrence.id,
        )
        refuse_conflicts(conflicts)
    if ending:
        occurrence.ended_at = now
    elif timing:
        # moved or extended: open again unless it is over (a past meeting recorded)
        occurrence.ended_at = None if new_end > now else occurrence.ended_at
    occurrence.start_at, occurrence.end_at = new_start, new_end
    occurrence.status = new_status
    occurrence.sequence = (occurrence.sequence or 0) + 1
    session.execute(
        sql_update(Booking)
        .where(Booking.occurrence_id == occurrence.id)
        .values(
            start_at=occurrence.start_at,
            end_at=occurrence.end_at,
            active=new_status == OccurrenceStatus.scheduled,
        )
    )
    session.flush()
    return occurrence


def _check_past_and_held(
    occurrence: Occurrence,
    change: OccurrenceChange,
    interval: tuple[datetime, datetime],
    new_status: str,
    timing: bool,
    now: datetime,
    attended_sites: int,
) -> None:
    new_start, new_end = interval
    restored = (
        occurrence.status == OccurrenceStatus.cancelled.value
        and new_status == OccurrenceStatus.scheduled.value
    )
    held = new_status == OccurrenceStatus.scheduled.value and (timing or restored)
    if held and new_end <= now and not change.record_past:
        raise past_meetings_refused(1, new_start, occurrence.series.tz)
    cancels = (
        occurrence.status == OccurrenceStatus.scheduled.value
        and new_status == OccurrenceStatus.cancelled.value
    )
    if attended_sites and (timing or cancels):
        if not change.confirm:
            raise held_meeting_refused(attended_sites, reason_missing=False)
        if not (change.reason or "").strip():
            raise held_meeting_refused(attended_sites, reason_missing=True)


# The agenda is what every terminal polls: a Core statement built once (no ORM entities to
# load, no statement to build and hash per request), on the (site_id, start_at) index.
_BOOKINGS, _OCCURRENCES, _SERIES = Booking.__table__, Occurrence.__table__, Series.__table__
_AGENDA = (
    select(
        _OCCURRENCES.c.id,
        _SERIES.c.id,
        _SERIES.c.title,
        _SERIES.c.kind,
        _SERIES.c.mode,
        _BOOKINGS.c.start_at,
        _BOOKINGS.c.end_at,
        _BOOKINGS.c.is_chair,
    )
    .select_from(
        _BOOKINGS.join(_OCCURRENCES, _OCCURRENCES.c.id == _BOOKINGS.c.occurrence_id).join(
            _SERIES, _SERIES.c.id == _OCCURRENCES.c.series_id
        )
    )
    .where(
        _BOOKINGS.c.site_id == bindparam("site_id"),
        _BOOKINGS.c.active.is_(True),
        _BOOKINGS.c.start_at > bindparam("started_after_at", type_=UTCDateTime()),
        # running over its end (not ended yet) still counts: the halls stay in the meeting
        _BOOKINGS.c.end_at > bindparam("open_after_at", type_=UTCDateTime()),
        _OCCURRENCES.c.ended_at.is_(None),
    )
    .order_by(_BOOKINGS.c.start_at)
    .limit(bindparam("limit"))
)


def agenda(
    *,
    session: Session,
    site_id: int,
    now: datetime,
    limit: int,
    max_duration_min: int,
    overrun_grace_min: int = 0,
) -> Sequence[Row[Any]]:
    """The site's coming and running occurrences (running over their end too, until they
    end or the grace is over), soonest first.

    Rows of (occurrence id, series id, title, kind, mode, start_at, end_at, is_chair).
    """
    grace = timedelta(minutes=overrun_grace_min)
    return session.execute(
        _AGENDA,
        {
            "site_id": site_id,
            "started_after_at": now - timedelta(minutes=max_duration_min) - grace,
            "open_after_at": now - grace,
            "limit": limit,
        },
    ).all()


def site_commitments(*, session: Session, site_id: int) -> list[dict[str, object]]:
    """Series that still need the site: it chairs them, is invited by id, or is booked ahead."""
    booked_ahead = (
        select(Occurrence.series_id)
        .join(Booking, Booking.occurrence_id == Occurrence.id)
        .where(Booking.site_id == site_id, Booking.active.is_(True), Booking.end_at > utcnow())
    )
    named = select(series_sites.c.series_id).where(series_sites.c.site_id == site_id)
    query = select(Series.id, Series.title).where(
        Series.ended_at.is_(None),
        or_(
            Series.chair_site_id == site_id,
            Series.id.in_(named),
            Series.id.in_(booked_ahead),
        ),
    )
    return [{"id": i, "title": t} for i, t in session.execute(query)]
