"""Emergency meetings (họp khẩn): a booking that cancels or moves the meetings it clashes with.

The caller names what becomes of every clashing occurrence; all of it happens in the caller's
transaction, under the booking lock, or nothing does. Each displaced occurrence gets a
`Displacement` row: the occurrence pages show it, and its change or cancellation notice tells
the sites why (`records.notices`). Who may displace a meeting is who may change it: the
secretariat of its chair site's unit (or one above it), or an admin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.scope import Scope
from confbridge.errors import Conflict, Forbidden, Invalid
from confbridge.meetings import access
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings import service as meeting_service
from confbridge.meetings.conflicts import (
    MAX_REPORTED,
    ConflictInfo,
    Interval,
    find_conflicts,
    self_overlaps,
)
from confbridge.meetings.models import (
    Displacement,
    DisplacementAction,
    Occurrence,
    OccurrenceStatus,
    Series,
)
from confbridge.meetings.schemas import DisplacedIn, EmergencyIn, SeriesCreate
from confbridge.settings import MeetingSettings
from confbridge.timeutil import zone


@dataclass(frozen=True)
class EmergencyBooking:
    series: Series
    displacements: list[Displacement]


def _check_request(emergency: EmergencyIn) -> None:
    """Refuse a request that does not say clearly what it overrides (422)."""
    if not emergency.confirm:
        raise Invalid(
            "Hãy xác nhận họp khẩn (confirm: true). emergency.confirm: must be true to cancel "
            "or move the meetings already booked",
            code="emergency_confirm_needed",
        )
    if not (emergency.reason or "").strip():
        raise Invalid(
            "Hãy ghi lý do họp khẩn. emergency.reason: say why the meetings already booked "
            "are displaced (their sites are told)",
            code="emergency_reason_needed",
        )
    seen: set[int] = set()
    for item in emergency.displaced:
        if item.occurrence_id in seen:
            raise Invalid(f"emergency.displaced: occurrence {item.occurrence_id} is named twice")
        seen.add(item.occurrence_id)
        if item.action == DisplacementAction.move and item.new_start is None:
            raise Invalid(
                f"Hãy chọn giờ mới cho cuộc họp {item.occurrence_id}. emergency.displaced: "
                f"occurrence {item.occurrence_id} is moved: give its new_start",
                code="emergency_new_start_needed",
                occurrence_id=item.occurrence_id,
            )


def clashes(
    *, session: Session, series_in: SeriesCreate, settings: MeetingSettings, now: datetime
) -> list[ConflictInfo]:
    """Every booking the series would clash with (not only the first `MAX_REPORTED`).

    A request `meeting_service.create` refuses for another reason (an unknown site, a rule
    that never occurs, overlapping occurrences) clashes with nothing here: `create` then says
    what is wrong with it.
    """
    spec = meeting_service.build_spec(
        series_in.model_dump(),
        default_tz=settings.default_tz,
        max_duration_min=settings.max_duration_min,
    )
    _sites, _units, booked = meeting_service.invited_site_ids(session, spec)
    until_at = meeting_service.planning_horizon(spec, settings=settings, now=now)
    starts = spec.rule.starts(
        after_at=None, until_at=until_at, limit=settings.max_occurrences_per_series
    )
    intervals = [Interval(s, s + spec.duration) for s in starts]
    if not intervals or self_overlaps(intervals):
        return []
    return find_conflicts(session=session, site_ids=booked, intervals=intervals)


def _check_coverage(conflicts: Sequence[ConflictInfo], chosen: dict[int, DisplacedIn]) -> None:
    """409 when a clash is not covered (it may have been booked a moment ago), 422 when a
    named occurrence does not clash at all."""
    uncovered = [c for c in conflicts if c.occurrence_id not in chosen]
    if uncovered:
        ids = sorted({c.occurrence_id for c in uncovered if c.occurrence_id is not None})
        raise Conflict(
            f"Cuộc họp khẩn còn trùng với {len(ids)} cuộc họp chưa được chọn hủy hoặc dời "
            f"({', '.join(map(str, ids[:20]))}). The emergency meeting also clashes with "
            f"occurrence(s) {', '.join(map(str, ids[:20]))}: add each to emergency.displaced",
            code="emergency_uncovered",
            uncovered_occurrence_ids=ids,
            conflicts=[c.as_dict() for c in uncovered[:MAX_REPORTED]],
            conflict_count=len(uncovered),
        )
    clashing = {c.occurrence_id for c in conflicts}
    extra = sorted(set(chosen) - clashing)
    if extra:
        raise Invalid(
            f"emergency.displaced: occurrence(s) {', '.join(map(str, extra[:20]))} do not clash "
            "with this booking (Cuộc họp không trùng lịch, không cần hủy hoặc dời)",
            code="emergency_not_clashing",
            occurrence_ids=extra,
        )


def _displaceable(
    session: Session, occurrence_ids: Sequence[int], read: Scope, write: Scope
) -> dict[int, Occurrence]:
    """The occurrences, if the user may change each (404 unseen, 403 another unit's)."""
    found = {}
    for occurrence_id in occurrence_ids:
        occurrence = access.visible_occurrence(
            session=session, occurrence_id=occurrence_id, scope=read
        )
        try:
            access.check_chair(session=session, series=occurrence.series, scope=write)
        except Forbidden:
            raise Forbidden(
                f"Bạn không có quyền hủy hoặc dời cuộc họp “{occurrence.series.title}” "
                f"(occurrence {occurrence_id}): it is chaired by another unit's site; only "
                "that unit's secretariat (or one above it) may displace it",
                code="emergency_forbidden",
                occurrence_id=occurrence_id,
            ) from None
        found[occurrence_id] = occurrence
    return found


def _move_refused(occurrence: Occurrence, new_start: datetime, exc: Conflict) -> Conflict:
    local = new_start.astimezone(zone(occurrence.series.tz)).strftime("%d/%m/%Y %H:%M")
    return Conflict(
        f"Không dời được cuộc họp “{occurrence.series.title}” sang {local}: giờ mới trùng lịch. "
        f"Occurrence {occurrence.id} cannot be moved to {local}: the new time clashes",
        code="emergency_move_clash",
        occurrence_id=occurrence.id,
        conflicts=exc.extra.get("conflicts", []),
        conflict_count=exc.extra.get("conflict_count", 0),
    )


def _displace(
    session: Session,
    occurrences: dict[int, Occurrence],
    chosen: dict[int, DisplacedIn],
    reason: str,
    *,
    settings: MeetingSettings,
    now: datetime,
) -> dict[int, tuple[datetime, datetime]]:
    """Cancel, then move, the chosen occurrences; returns each one's former slot. Cancels go
    first so that a move may take a slot another displaced meeting leaves."""
    before = {i: (o.start_at, o.end_at) for i, o in occurrences.items()}
    ordered = sorted(chosen.values(), key=lambda d: (d.action != "cancel", d.occurrence_id))
    for item in ordered:
        occurrence = occurrences[item.occurrence_id]
        change = occurrence_service.OccurrenceChange(
            start_at=item.new_start if item.action == "move" else None,
            status=OccurrenceStatus.cancelled if item.action == "cancel" else None,
            confirm=True,
            reason=reason,
        )
        try:
            occurrence_service.update_occurrence(
                session=session, occurrence=occurrence, change=change, settings=settings, now=now
            )
        except Conflict as exc:
            if item.new_start is None or "conflicts" not in exc.extra:
                raise
            raise _move_refused(occurrence, item.new_start, exc) from None
    return before


def book(
    *,
    session: Session,
    series_in: SeriesCreate,
    read: Scope,
    write: Scope,
    actor: str,
    settings: MeetingSettings,
    now: datetime,
) -> EmergencyBooking:
    """Book `series_in` over the occurrences its `emergency` names (the caller commits)."""
    emergency = series_in.emergency
    if emergency is None:
        raise Invalid("emergency: missing")
    _check_request(emergency)
    reason = (emergency.reason or "").strip()
    meeting_service.lock_bookings(session)
    conflicts = clashes(session=session, series_in=series_in, settings=settings, now=now)
    chosen = {d.occurrence_id: d for d in emergency.displaced}
    _check_coverage(conflicts, chosen)
    occurrences = _displaceable(session, sorted(chosen), read, write)
    before = _displace(session, occurrences, chosen, reason, settings=settings, now=now)
    moved = {i for i, d in chosen.items() if d.action == "move"}
    try:
        series = meeting_service.create(
            session=session, series_in=series_in, settings=settings, now=now
        )
    except Conflict as exc:
        hit = sorted({int(c["occurrence_id"]) for c in exc.extra.get("conflicts", [])} & moved)
        if not hit:
            raise
        raise Conflict(
            f"Giờ mới của cuộc họp {hit[0]} trùng với chính cuộc họp khẩn. The new time of "
            f"occurrence {hit[0]} clashes with the emergency meeting: move it elsewhere",
            code="emergency_move_clash",
            occurrence_id=hit[0],
        ) from None
    by_start = {o.start_at: o.id for o in series.occurrences}
    rows = []
    for conflict in {c.occurrence_id: c for c in conflicts}.values():
        occurrence = occurrences[conflict.occurrence_id or 0]
        item = chosen[occurrence.id]
        row = Displacement(
            occurrence_id=occurrence.id,
            emergency_series_id=series.id,
            emergency_occurrence_id=by_start.get(conflict.requested_start_at),
            action=item.action,
            from_start_at=before[occurrence.id][0],
            from_end_at=before[occurrence.id][1],
            to_start_at=occurrence.start_at if item.action == "move" else None,
            sequence=occurrence.sequence,
            reason=reason,
            actor=actor,
            created_at=now,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return EmergencyBooking(series=series, displacements=rows)


def record_audit(*, session: Session, booking: EmergencyBooking, actor: str, via: str) -> None:
    """The audit log's entries: the booking that overrode, and each meeting it displaced."""
    series = booking.series
    auth_service.record(
        session=session,
        actor=actor,
        action="emergency_booked",
        entity="series",
        entity_id=series.id,
        detail={
            "title": series.title,
            "via": via,
            "reason": booking.displacements[0].reason if booking.displacements else "",
            "displaced": [
                {"occurrence_id": d.occurrence_id, "action": d.action}
                for d in booking.displacements
            ],
        },
    )
    for row in booking.displacements:
        auth_service.record(
            session=session,
            actor=actor,
            action=f"occurrence_displaced_{row.action}",
            entity="occurrence",
            entity_id=row.occurrence_id,
            detail={
                "emergency_series_id": series.id,
                "reason": row.reason,
                "from_start_at": row.from_start_at.isoformat(),
                "to_start_at": row.to_start_at.isoformat() if row.to_start_at else None,
            },
        )


def involving(*, session: Session, occurrence_id: int) -> list[Displacement]:
    """The displacements of this occurrence, or made by it (an emergency meeting), oldest first."""
    query = select(Displacement).where(
        or_(
            Displacement.occurrence_id == occurrence_id,
            Displacement.emergency_occurrence_id == occurrence_id,
        )
    )
    return list(session.scalars(query.order_by(Displacement.id)))
