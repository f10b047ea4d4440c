"""Meeting series and occurrences: booking, re-planning, moving, cancelling, agendas.

Extending series over time and the starts that could not be placed are in `unplanned`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from confbridge.errors import Conflict, Invalid, NotFound
from confbridge.meetings import dial_numbers
from confbridge.meetings.conflicts import (
    MAX_REPORTED,
    ConflictInfo,
    Interval,
    find_conflicts,
    self_overlaps,
)
from confbridge.meetings.models import (
    Booking,
    BookingLock,
    Occurrence,
    OccurrenceStatus,
    RecordPolicy,
    Series,
    UnplannedOccurrence,
)
from confbridge.meetings.recurrence import Rule, normalise_rrule, parse_exdate
from confbridge.meetings.schemas import SeriesCreate, SeriesUpdate
from confbridge.settings import MeetingSettings
from confbridge.sites import service as site_service
from confbridge.sites.models import Site, Unit
from confbridge.timeutil import zone

log = logging.getLogger(__name__)

SCHEDULE_FIELDS = {
    "rrule",
    "dtstart",
    "tz",
    "duration_min",
    "chair_site_id",
    "site_ids",
    "unit_ids",
    "exdates",
    "skip_holidays",
}
NON_NULLABLE = {
    "title",
    "kind",
    "mode",
    "rrule",
    "dtstart",
    "tz",
    "duration_min",
    "chair_site_id",
    "skip_holidays",
    "record",
}
ONE_MICROSECOND = timedelta(microseconds=1)
# Bound the bound parameters of one booking INSERT (site ids + occurrence ids) below 999,
# the oldest SQLite limit.
INSERT_SITE_CHUNK = 600
INSERT_OCCURRENCE_CHUNK = 300
BOOKING_COLUMNS = ["occurrence_id", "site_id", "start_at", "end_at", "active", "is_chair"]
M = TypeVar("M", bound=BaseModel)


@dataclass
class SeriesSpec:
    """Validated, normalised fields of a series."""

    title: str
    kind: str
    mode: str
    rrule: str
    dtstart: datetime
    tz: str
    duration_min: int
    chair_site_id: int
    site_ids: list[int]
    unit_ids: list[int]
    exdates: list[str]
    skip_holidays: bool

    @property
    def rule(self) -> Rule:
        return Rule(
            rrule=self.rrule,
            dtstart=self.dtstart,
            tz=self.tz,
            exdates=tuple(parse_exdate(e) for e in self.exdates),
            skip_holidays=self.skip_holidays,
        )

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_min)


def _wall_clock(value: datetime, tz: str) -> datetime:
    """DTSTART as wall-clock time in `tz`; an aware value is converted first."""
    if value.tzinfo is not None:
        value = value.astimezone(zone(tz)).replace(tzinfo=None)
    return value.replace(second=0, microsecond=0)


def _exdate_strings(values: Sequence[date | datetime | str], tz: str) -> list[str]:
    result = []
    for value in values:
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(zone(tz))
        parsed = parse_exdate(value)
        text = parsed.isoformat(timespec="minutes") if isinstance(parsed, datetime) else str(parsed)
        result.append(text)
    return sorted(set(result))


def build_spec(
    data: dict[str, Any], *, default_tz: str, max_duration_min: int | None = None
) -> SeriesSpec:
    tz = data.get("tz") or default_tz
    zone(tz)
    if max_duration_min is not None and data["duration_min"] > max_duration_min:
        raise Invalid(f"duration_min: at most {max_duration_min} minutes")
    spec = SeriesSpec(
        title=data["title"].strip(),
        kind=str(data["kind"]),
        mode=str(data["mode"]),
        rrule=normalise_rrule(data["rrule"], tz),
        dtstart=_wall_clock(data["dtstart"], tz),
        tz=tz,
        duration_min=data["duration_min"],
        chair_site_id=data["chair_site_id"],
        site_ids=sorted(set(data.get("site_ids") or [])),
        unit_ids=sorted(set(data.get("unit_ids") or [])),
        exdates=_exdate_strings(data.get("exdates") or [], tz),
        skip_holidays=bool(data.get("skip_holidays", True)),
    )
    spec.rule.check_occurs()  # before any expansion: a rule that never occurs costs seconds
    return spec


def spec_of(series: Series) -> SeriesSpec:
    return SeriesSpec(
        title=series.title,
        kind=series.kind,
        mode=series.mode,
        rrule=series.rrule,
        dtstart=series.dtstart,
        tz=series.tz,
        duration_min=series.duration_min,
        chair_site_id=series.chair_site_id,
        site_ids=[s.id for s in series.sites],
        unit_ids=[u.id for u in series.units],
        exdates=list(series.exdates),
        skip_holidays=series.skip_holidays,
    )


def _validated(model: type[M], value: M | dict[str, Any]) -> M:
    """Accept a schema instance or plain data (from a schedule file), refusing bad fields."""
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Invalid(f"{where}: {first['msg']}") from None


def lock_bookings(session: Session) -> None:
    """Serialise booking transactions: the first statement takes the booking lock row."""
    result = session.execute(
        sql_update(BookingLock).where(BookingLock.id == 1).values(version=BookingLock.version + 1)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        session.add(BookingLock(id=1, version=1))
        session.flush()


def _load_sites(session: Session, site_ids: Sequence[int]) -> list[Site]:
    sites: list[Site] = []
    for start in range(0, len(site_ids), 900):
        chunk = site_ids[start : start + 900]
        sites.extend(session.scalars(select(Site).where(Site.id.in_(chunk))))
    return sites


def invited_site_ids(session: Session, spec: SeriesSpec) -> tuple[list[Site], list[Unit], set[int]]:
    """Check the chair, sites and units exist; return them and every site the series books."""
    wanted = sorted(set(spec.site_ids) | {spec.chair_site_id})
    sites = _load_sites(session, wanted)
    by_id = {s.id: s for s in sites}
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise Invalid(f"unknown site ids: {', '.join(map(str, missing[:20]))}", site_ids=missing)
    archived = [i for i in wanted if by_id[i].archived_at is not None]
    if archived:
        raise Invalid(f"archived sites cannot be booked: {', '.join(map(str, archived[:20]))}")
    guests = [i for i in wanted if by_id[i].guest_uri is not None]
    if guests:
        raise Invalid(f"SIP guests cannot be invited: sites {', '.join(map(str, guests[:20]))}")
    units = list(session.scalars(select(Unit).where(Unit.id.in_(spec.unit_ids))))
    unknown_units = sorted(set(spec.unit_ids) - {u.id for u in units})
    if unknown_units:
        raise Invalid(f"unknown unit ids: {', '.join(map(str, unknown_units[:20]))}")
    booked = set(wanted) | site_service.site_ids_under_units(
        session=session, unit_ids=spec.unit_ids
    )
    explicit = [by_id[i] for i in sorted(set(spec.site_ids))]
    return explicit, units, booked


def refuse_conflicts(conflicts: list[ConflictInfo]) -> None:
    if conflicts:
        raise Conflict(
            f"{len(conflicts)} booking(s) would overlap meetings already booked for the same site",
            conflicts=[c.as_dict() for c in conflicts[:MAX_REPORTED]],
            conflict_count=len(conflicts),
        )


def _local(instant: datetime, tz: str) -> str:
    return instant.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")


def _check_schedule(
    session: Session,
    *,
    series_id: int | None,
    occurrences: Sequence[Occurrence],
    site_ids: set[int],
    tz: str,
) -> None:
    intervals = [
        Interval(o.start_at, o.end_at)
        for o in occurrences
        if o.status != OccurrenceStatus.cancelled
    ]
    overlapping = self_overlaps(intervals)
    if overlapping:
        first, second = overlapping[0]
        raise Invalid(
            "occurrences of this series would overlap each other "
            f"({_local(first.start_at, tz)} and {_local(second.start_at, tz)}): "
            "the duration is longer than the time between them"
        )
    refuse_conflicts(
        find_conflicts(
            session=session, site_ids=site_ids, intervals=intervals, exclude_series_id=series_id
        )
    )


def insert_bookings(
    session: Session, occurrences: Sequence[Occurrence], site_ids: set[int], chair_site_id: int
) -> int:
    """Book every site for every occurrence, copying the occurrence's times and status.

    The rows are made by the database, one INSERT ... SELECT per chunk (occurrences × sites):
    a national series is ~50 × 3,355 rows, and building and binding them one by one in Python
    cost seconds. `site_ids` come from `invited_site_ids`, checked in this transaction.
    Returns the number of rows written.
    """
    if not occurrences or not site_ids:
        return 0
    session.flush()  # the rows are read back from the occurrences table
    sites = sorted(site_ids)
    occurrence_ids = [o.id for o in occurrences]
    written = 0
    for site_start in range(0, len(sites), INSERT_SITE_CHUNK):
        site_chunk = sites[site_start : site_start + INSERT_SITE_CHUNK]
        for occ_start in range(0, len(occurrence_ids), INSERT_OCCURRENCE_CHUNK):
            occurrence_chunk = occurrence_ids[occ_start : occ_start + INSERT_OCCURRENCE_CHUNK]
            rows = (
                select(
                    Occurrence.id,
                    Site.id,
                    Occurrence.start_at,
                    Occurrence.end_at,
                    Occurrence.status != OccurrenceStatus.cancelled.value,
                    Site.id == chair_site_id,
                )
                .join(Site, Site.id.in_(site_chunk))
                .where(Occurrence.id.in_(occurrence_chunk))
                # Site by site, both booking indexes grow in runs: twice as fast as the
                # other order on SQLite, and faster on PostgreSQL too.
                .order_by(Site.id, Occurrence.id)
            )
            result = session.execute(insert(Booking).from_select(BOOKING_COLUMNS, rows))
            written += result.rowcount  # type: ignore[attr-defined]
    return written


def _apply_spec(series: Series, spec: SeriesSpec, sites: list[Site], units: list[Unit]) -> None:
    series.title, series.kind, series.mode = spec.title, spec.kind, spec.mode
    series.rrule, series.dtstart, series.tz = spec.rrule, spec.dtstart, spec.tz
    series.duration_min, series.chair_site_id = spec.duration_min, spec.chair_site_id
    series.exdates, series.skip_holidays = spec.exdates, spec.skip_holidays
    series.sites, series.units = sites, units


def planning_horizon(spec: SeriesSpec, *, settings: MeetingSettings, now: datetime) -> datetime:
    """Plan `horizon_days` ahead of now, or of the first start when that is later."""
    first_start_at = spec.dtstart.replace(tzinfo=zone(spec.tz)).astimezone(UTC)
    return max(now, first_start_at) + timedelta(days=settings.horizon_days)


def create(
    *,
    session: Session,
    series_in: SeriesCreate | dict[str, Any],
    settings: MeetingSettings,
    now: datetime,
    source_key: str | None = None,
) -> Series:
    """Book a series: every occurrence up to the horizon, every invited site, no overlaps."""
    data = _validated(SeriesCreate, series_in).model_dump()
    spec = build_spec(
        data, default_tz=settings.default_tz, max_duration_min=settings.max_duration_min
    )
    lock_bookings(session)
    sites, units, booked = invited_site_ids(session, spec)
    until_at = planning_horizon(spec, settings=settings, now=now)
    starts = spec.rule.starts(
        after_at=None, until_at=until_at, limit=settings.max_occurrences_per_series
    )
    if not starts:
        raise Invalid(f"the rule gives no occurrence before {until_at:%Y-%m-%d}")
    past = [s for s in starts if s + spec.duration <= now]
    if past and not data.get("record_past"):
        raise past_meetings_refused(len(past), past[0], spec.tz)
    series = Series(source_key=source_key, materialized_until_at=until_at)
    _apply_spec(series, spec, sites, units)
    dial_numbers.assign(session, series, data)
    series.record = str(data.get("record") or RecordPolicy.on_demand)
    series.recording_retention_days = data.get("recording_retention_days")
    occurrences = [
        Occurrence(recurrence_at=s, start_at=s, end_at=s + spec.duration) for s in starts
    ]
    _check_schedule(session, series_id=None, occurrences=occurrences, site_ids=booked, tz=spec.tz)
    series.occurrences = occurrences
    session.add(series)
    session.flush()
    insert_bookings(session, occurrences, booked, spec.chair_site_id)
    return series


def update(
    *,
    session: Session,
    series: Series,
    series_in: SeriesUpdate | dict[str, Any],
    settings: MeetingSettings,
    now: datetime,
) -> Series:
    """Change a series; schedule changes re-plan its coming occurrences (past ones stay)."""
    changes = _validated(SeriesUpdate, series_in).model_dump(exclude_unset=True)
    nulls = sorted(k for k, v in changes.items() if v is None and k in NON_NULLABLE)
    if nulls:
        raise Invalid(f"{', '.join(nulls)}: may not be null")
    dial_numbers.refuse_nulls(changes)
    if series.ended_at is not None:
        raise Conflict(f"series {series.id} has ended and can no longer be changed")
    current = spec_of(series)
    merged = {**current.__dict__, **changes}
    if "tz" in changes and "dtstart" not in changes:
        merged["dtstart"] = current.dtstart  # keep the wall clock, in the new zone
    spec = build_spec(
        merged, default_tz=settings.default_tz, max_duration_min=settings.max_duration_min
    )
    dial_numbers.assign(session, series, changes)
    if changes.get("record") is not None:
        series.record = str(changes["record"])
    if "recording_retention_days" in changes:  # null: kept
        series.recording_retention_days = changes["recording_retention_days"]
    if not changes.keys() & SCHEDULE_FIELDS:
        series.title, series.kind, series.mode = spec.title, spec.kind, spec.mode
        session.flush()
        return series
    lock_bookings(session)
    sites, units, booked = invited_site_ids(session, spec)
    _apply_spec(series, spec, sites, units)
    _replan(session, series, spec, booked, settings=settings, now=now)
    return series


def _replan(
    session: Session,
    series: Series,
    spec: SeriesSpec,
    booked: set[int],
    *,
    settings: MeetingSettings,
    now: datetime,
) -> None:
    coming = [o for o in series.occurrences if o.start_at >= now and o.recurrence_at >= now]
    if coming:
        session.execute(
            sql_delete(Booking).where(Booking.occurrence_id.in_([o.id for o in coming]))
        )
    until_at = max(series.materialized_until_at, planning_horizon(spec, settings=settings, now=now))
    starts = spec.rule.starts(
        after_at=now - ONE_MICROSECOND,
        until_at=until_at,
        limit=settings.max_occurrences_per_series,
    )
    # Unplanned starts the new rule still gives stay as they are (waiting for the secretariat,
    # or skipped on purpose); those it no longer gives are no longer part of the series.
    unplanned = {
        u.recurrence_at: u
        for u in list_unplanned(session=session, series_id=series.id)
        if u.recurrence_at >= now
    }
    kept = set(starts) & set(unplanned)
    for start_at, item in unplanned.items():
        if start_at not in kept:
            session.delete(item)
    existing = {o.recurrence_at: o for o in coming}
    planned: list[Occurrence] = []
    for start_at in starts:
        if start_at in kept:
            continue
        occurrence = existing.pop(start_at, None)
        if occurrence is None:
            occurrence = Occurrence(recurrence_at=start_at, start_at=start_at)
            series.occurrences.append(occurrence)
        occurrence.end_at = occurrence.start_at + spec.duration
        planned.append(occurrence)
    for dropped in existing.values():
        series.occurrences.remove(dropped)
    series.materialized_until_at = until_at
    session.flush()
    _check_schedule(session, series_id=series.id, occurrences=planned, site_ids=booked, tz=spec.tz)
    insert_bookings(session, planned, booked, spec.chair_site_id)


def delete_series(*, session: Session, series: Series, now: datetime) -> bool:
    """Delete a series; one with past occurrences is ended instead, keeping its history.

    Returns True when the series was removed, False when it was ended.
    """
    lock_bookings(session)
    coming = [o for o in series.occurrences if o.start_at >= now]
    if len(coming) == len(series.occurrences):
        session.execute(
            sql_delete(UnplannedOccurrence).where(UnplannedOccurrence.series_id == series.id)
        )
        session.delete(series)
        session.flush()
        return True
    for occurrence in coming:
        series.occurrences.remove(occurrence)
    session.execute(
        sql_delete(UnplannedOccurrence).where(
            UnplannedOccurrence.series_id == series.id, UnplannedOccurrence.recurrence_at >= now
        )
    )
    series.ended_at = now
    session.flush()
    return False


def list_unplanned(*, session: Session, series_id: int) -> list[UnplannedOccurrence]:
    """The series' unplanned starts (waiting or skipped), in date order."""
    query = select(UnplannedOccurrence).where(UnplannedOccurrence.series_id == series_id)
    return list(session.scalars(query.order_by(UnplannedOccurrence.recurrence_at)))


def get(*, session: Session, series_id: int) -> Series:
    series = session.get(Series, series_id)
    if series is None:
        raise NotFound(f"series {series_id} does not exist")
    return series


def get_by_source_key(*, session: Session, source_key: str) -> Series | None:
    return session.scalar(select(Series).where(Series.source_key == source_key))


def list_(
    *,
    session: Session,
    limit: int = 100,
    offset: int = 0,
    where: ColumnElement[bool] | None = None,
) -> tuple[list[Series], int]:
    """Series by id; `where` narrows them (a scope's condition, `meetings.access`)."""
    query = select(Series)
    if where is not None:
        query = query.where(where)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Series.id).limit(limit).offset(offset))
    return list(rows), total


def occurrence_count(*, session: Session, series_id: int) -> int:
    query = select(func.count()).where(Occurrence.series_id == series_id)
    return session.scalar(query) or 0


def past_meetings_refused(count: int, first_at: datetime, tz: str) -> Invalid:
    """The refusal of a booking or a move that would record meetings already over."""
    when = first_at.astimezone(zone(tz)).strftime("%d/%m/%Y %H:%M")
    return Invalid(
        f"{count} cuộc họp đã kết thúc trước thời điểm hiện tại (đầu tiên: {when}); để ghi "
        "nhận cuộc họp đã diễn ra, chọn “Ghi nhận cuộc họp đã diễn ra” (record_past: true). "
        f"{count} meeting(s) would end before now (first: {when}); to record meetings that "
        "took place, send record_past: true",
        code="record_past_needed",
        past_count=count,
    )
