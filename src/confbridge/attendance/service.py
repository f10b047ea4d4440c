"""Attendance (điểm danh) per occurrence and site, from the SFU's join/leave/stats events.

A site joins with several peers (an ingest peer that publishes, an egress peer that watches);
it is connected while at least one of them is. It may join, drop and rejoin: each time it goes
from no peer to one peer starts a session. Figures:

- `connected_s`: seconds connected within the scheduled [start, end) of the occurrence;
- `media_s`: seconds within it that media flowed to or from the hall (see below);
- `first_join_at` / `last_leave_at` (None when still connected at the end) and the reason the
  last peer gave for leaving (`detail.reason` of its `left` event);
- `reconnects`: sessions after the first;
- `joined_late`: first join after start + `late_grace_min`; `left_early`: last leave before
  end - `early_leave_grace_min`;
- link quality: the median RTT and the worst loss ratio over the site's `stats` events;
- status by `reports.attendance`: present when media flowed for `present_min_ratio` of the
  meeting, partial when it flowed less, absent when none flowed while it ran (a connection
  that carried nothing, an ICE session with no camera and no programme, is not attendance).

Media: the worker reports every peer's link every `stats_interval_s` with a `stats` event whose
`packets` counts the RTP packets received from the hall (an ingest peer) or sent to it (an
egress peer) since the peer connected. A report whose count rose since the peer's previous
report (or since it joined) proves that media flowed over that span; a span is credited at
most two reporting intervals back (`interval_s` of the event), so reports lost on the way do
not turn one packet into an hour. A site's media time is the union of its peers' spans.

Ended occurrences are computed once into the `attendance` table (`store`), in one pass over
their events in (occurrence, time) order; an occurrence is computed again when it received
events since (`attendance_pending`) or was moved. The server's loop does it as meetings end and
as late events arrive (`fold_stale`), so reports read stored rows; `refresh`, called by every
read, then finds nothing (or the odd meeting that ended seconds ago) to compute.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.orm import Session

from confbridge.attendance.models import (
    Attendance,
    AttendanceCorrection,
    AttendancePending,
    AttendanceRun,
    AttendanceStatus,
)
from confbridge.bridge.models import SfuEventRecord
from confbridge.bridge.service import guest_sites
from confbridge.errors import Conflict, Invalid
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.models import Booking, Occurrence, OccurrenceStatus
from confbridge.settings import AttendanceRule
from confbridge.sites.models import Site, Unit
from confbridge.text import vietnamese_key
from confbridge_kernel.contracts import EventType

# Occurrence ids per IN (...) list: well under the oldest SQLite limit of 999 parameters.
ID_CHUNK = 500
JOINED, LEFT = EventType.joined.value, EventType.left.value
ATTENDANCE_EVENT_TYPES = (JOINED, LEFT, EventType.stats.value)
REASON_MAX_CHARS = 100
_TICK = timedelta(microseconds=1)
# A report of rising packets credits media this many reporting intervals back at most...
MEDIA_CREDIT_INTERVALS = 2
# ...with this interval when the event does not say (the worker's default stats_interval_s).
DEFAULT_STATS_INTERVAL_S = 10.0


@dataclass
class SiteFigures:
    """One site's attendance at one occurrence, as computed from events."""

    site_id: int
    status: AttendanceStatus = AttendanceStatus.absent
    connected_s: int = 0
    media_s: int = 0
    first_join_at: datetime | None = None
    last_leave_at: datetime | None = None
    last_leave_reason: str | None = None
    reconnects: int = 0
    joined_late: bool = False
    left_early: bool = False
    rtt_median_ms: float | None = None
    loss_max: float | None = None

    def row(self, occurrence_id: int, corrected_status: str | None) -> dict[str, Any]:
        return {
            "occurrence_id": occurrence_id,
            "site_id": self.site_id,
            "status": self.status.value,
            "corrected_status": corrected_status,
            "connected_s": self.connected_s,
            "media_s": self.media_s,
            "first_join_at": self.first_join_at,
            "last_leave_at": self.last_leave_at,
            "last_leave_reason": self.last_leave_reason,
            "reconnects": self.reconnects,
            "joined_late": self.joined_late,
            "left_early": self.left_early,
            "rtt_median_ms": self.rtt_median_ms,
            "loss_max": self.loss_max,
        }


@dataclass
class _SiteState:
    """Running state of one site while its events are replayed."""

    peers: set[str] = field(default_factory=set)
    session_start_at: datetime | None = None
    sessions: int = 0
    connected_s: float = 0.0
    first_join_at: datetime | None = None
    last_leave_at: datetime | None = None
    last_leave_reason: str | None = None
    rtts: list[float] = field(default_factory=list)
    loss_max: float | None = None
    # each connected peer's last report: (when, packets so far); from its join at first
    reports: dict[str, tuple[datetime, int]] = field(default_factory=dict)
    media: list[tuple[datetime, datetime]] = field(default_factory=list)


@dataclass(frozen=True)
class OccurrenceWindow:
    """What the computation needs of an occurrence."""

    id: int
    start_at: datetime
    end_at: datetime


def _overlap_s(start_at: datetime, end_at: datetime, window: OccurrenceWindow) -> float:
    lo, hi = max(start_at, window.start_at), min(end_at, window.end_at)
    return max(0.0, (hi - lo).total_seconds())


def _union_s(spans: list[tuple[datetime, datetime]], window: OccurrenceWindow) -> float:
    """Seconds covered by `spans` within the window (spans of several peers overlap)."""
    total, covered_to = 0.0, window.start_at
    for start_at, end_at in sorted(spans):
        start_at, end_at = max(start_at, covered_to), min(end_at, window.end_at)
        if end_at > start_at:
            total += (end_at - start_at).total_seconds()
            covered_to = end_at
    return total


class OccurrenceReplay:
    """Replays one occurrence's events, in time order, into per-site figures."""

    def __init__(self, window: OccurrenceWindow, site_ids: Iterable[int]) -> None:
        self.window = window
        self.sites = {site_id: _SiteState() for site_id in site_ids}

    def feed(
        self,
        site_id: int,
        peer: str,
        type_: str,
        at: datetime,
        rtt_ms: float | None = None,
        loss_ratio: float | None = None,
        reason: str | None = None,
        packets: int | None = None,
        interval_s: float | None = None,
    ) -> None:
        """One event of the occurrence; events must come in time order."""
        state = self.sites.get(site_id)
        if state is None:  # not invited: such joins are refused, stray events are ignored
            return
        if type_ == JOINED:
            if not state.peers:
                state.session_start_at = at
                state.sessions += 1
                if state.first_join_at is None:
                    state.first_join_at = at
            state.peers.add(peer)
            state.reports.setdefault(peer, (at, 0))
        elif type_ == LEFT:
            if peer not in state.peers:  # a leave without its join: nothing to close
                return
            state.peers.discard(peer)
            state.reports.pop(peer, None)
            if not state.peers and state.session_start_at is not None:
                state.connected_s += _overlap_s(state.session_start_at, at, self.window)
                state.session_start_at = None
                state.last_leave_at = at
                state.last_leave_reason = reason[:REASON_MAX_CHARS] if reason else None
        else:
            if rtt_ms is not None:
                state.rtts.append(rtt_ms)
            if loss_ratio is not None:
                state.loss_max = max(state.loss_max or 0.0, loss_ratio)
            self._media(state, peer, at, packets or 0, interval_s)

    @staticmethod
    def _media(
        state: _SiteState, peer: str, at: datetime, packets: int, interval_s: float | None
    ) -> None:
        """Credit the span since the peer's previous report if packets flowed in it."""
        previous = state.reports.get(peer)
        if previous is None:  # a report of a peer that is not connected: nothing to credit
            return
        since_at, before = previous
        if packets > before:
            interval = timedelta(seconds=interval_s or DEFAULT_STATS_INTERVAL_S)
            state.media.append((max(since_at, at - MEDIA_CREDIT_INTERVALS * interval), at))
        state.reports[peer] = (at, packets)

    def figures(self, rule: AttendanceRule, *, until_at: datetime) -> list[SiteFigures]:
        """Per-site figures; sites still connected are counted as connected up to `until_at`."""
        window = self.window
        duration_s = (window.end_at - window.start_at).total_seconds()
        late_s = rule.late_grace_min * 60
        early_s = rule.early_leave_grace_min * 60
        result = []
        for site_id, state in sorted(self.sites.items()):
            connected_s = state.connected_s
            last_leave_at = state.last_leave_at
            if state.session_start_at is not None:  # still connected: no last leave
                connected_s += _overlap_s(state.session_start_at, until_at, window)
                last_leave_at = None
            media_s = _union_s(state.media, window)
            figures = SiteFigures(
                site_id=site_id,
                connected_s=round(connected_s),
                media_s=round(media_s),
                first_join_at=state.first_join_at,
                last_leave_at=last_leave_at,
                last_leave_reason=state.last_leave_reason if last_leave_at else None,
                reconnects=max(state.sessions - 1, 0),
                rtt_median_ms=round(statistics.median(state.rtts), 1) if state.rtts else None,
                loss_max=state.loss_max,
            )
            if state.first_join_at is not None:
                figures.joined_late = (state.first_join_at - window.start_at).total_seconds() > (
                    late_s
                )
            if last_leave_at is not None:
                figures.left_early = (window.end_at - last_leave_at).total_seconds() > early_s
            if media_s > 0 and media_s >= rule.present_min_ratio * duration_s:
                figures.status = AttendanceStatus.present
            elif media_s > 0:
                figures.status = AttendanceStatus.partial
            result.append(figures)
        return result


# --- reading events ------------------------------------------------------------------------------


def _event_query(occurrence_ids: Sequence[int]) -> Any:
    payload, type_ = SfuEventRecord.payload, SfuEventRecord.type
    # JSON is read only where it matters: stats of `stats` events, the reason of `left` ones.
    is_stats = type_ == EventType.stats.value
    return (
        select(
            SfuEventRecord.occurrence_id,
            SfuEventRecord.site_id,
            func.coalesce(SfuEventRecord.peer_id, SfuEventRecord.direction, ""),
            type_,
            SfuEventRecord.at,
            case((is_stats, payload[("stats", "rtt_ms")].as_float())),
            case((is_stats, payload[("stats", "loss_ratio")].as_float())),
            case((type_ == EventType.left.value, payload[("detail", "reason")].as_string())),
            case((is_stats, payload[("stats", "packets")].as_integer())),
            case((is_stats, payload[("stats", "interval_s")].as_float())),
        )
        .where(
            SfuEventRecord.occurrence_id.in_(occurrence_ids),
            SfuEventRecord.type.in_(ATTENDANCE_EVENT_TYPES),
            SfuEventRecord.site_id.is_not(None),
        )
        # The (occurrence_id, at) index gives this order; id only breaks ties.
        .order_by(SfuEventRecord.occurrence_id, SfuEventRecord.at, SfuEventRecord.id)
    )


def _invited(session: Session, occurrence_ids: Sequence[int]) -> dict[int, list[int]]:
    invited: dict[int, list[int]] = {i: [] for i in occurrence_ids}
    query = select(Booking.occurrence_id, Booking.site_id).where(
        Booking.occurrence_id.in_(occurrence_ids)
    )
    for occurrence_id, site_id in session.execute(query):
        invited[occurrence_id].append(site_id)
    return invited


def compute(
    *,
    session: Session,
    occurrences: Sequence[OccurrenceWindow],
    rule: AttendanceRule,
    now: datetime,
) -> dict[int, list[SiteFigures]]:
    """Attendance of every invited site (and SIP guest) of `occurrences`, in one pass over
    their events."""
    result: dict[int, list[SiteFigures]] = {}
    for start in range(0, len(occurrences), ID_CHUNK):
        chunk = occurrences[start : start + ID_CHUNK]
        ids = [o.id for o in chunk]
        invited, guests = _invited(session, ids), guest_sites(session=session, occurrence_ids=ids)
        replays = {o.id: OccurrenceReplay(o, invited[o.id] + guests[o.id]) for o in chunk}
        for occurrence_id, *event in session.execute(_event_query(ids)):
            replays[occurrence_id].feed(*event)
        for occurrence in chunk:
            until_at = min(now, occurrence.end_at)
            result[occurrence.id] = replays[occurrence.id].figures(rule, until_at=until_at)
    return result


# --- the materialised table ----------------------------------------------------------------------


def _stale_query(now: datetime) -> Any:
    """Ended, held occurrences whose stored attendance is missing or out of date (events
    received since, or the occurrence was moved)."""
    run = AttendanceRun
    pending = select(AttendancePending.occurrence_id)
    return (
        select(Occurrence.id)
        .outerjoin(run, run.occurrence_id == Occurrence.id)
        .where(
            Occurrence.status == OccurrenceStatus.scheduled.value,
            Occurrence.end_at <= now,
            or_(
                run.occurrence_id.is_(None),
                run.start_at != Occurrence.start_at,
                run.end_at != Occurrence.end_at,
                Occurrence.id.in_(pending),
            ),
        )
    )


def stale_occurrence_ids(
    *, session: Session, from_at: datetime, to_at: datetime, now: datetime
) -> list[int]:
    """Ended, held occurrences starting in [from_at, to_at) whose stored attendance is missing
    or out of date (events received since, or the occurrence was moved)."""
    query = _stale_query(now).where(Occurrence.start_at >= from_at, Occurrence.start_at < to_at)
    return list(session.scalars(query.order_by(Occurrence.id)))


def _latest_corrections(
    session: Session, occurrence_ids: Sequence[int]
) -> dict[tuple[int, int], str]:
    query = (
        select(
            AttendanceCorrection.occurrence_id,
            AttendanceCorrection.site_id,
            AttendanceCorrection.status,
        )
        .where(AttendanceCorrection.occurrence_id.in_(occurrence_ids))
        .order_by(AttendanceCorrection.id)
    )
    return {(o, s): status for o, s, status in session.execute(query)}


def store(
    *, session: Session, occurrence_ids: Sequence[int], rule: AttendanceRule, now: datetime
) -> int:
    """Compute and store the attendance of these (ended) occurrences; returns rows written."""
    written = 0
    for start in range(0, len(occurrence_ids), ID_CHUNK):
        ids = sorted(occurrence_ids[start : start + ID_CHUNK])
        # Lock the occurrences (PostgreSQL) so that two refreshes of one occurrence take turns;
        # the pending marks go first, so events stored meanwhile mark it again.
        windows = [
            OccurrenceWindow(i, s, e)
            for i, s, e in session.execute(
                select(Occurrence.id, Occurrence.start_at, Occurrence.end_at)
                .where(Occurrence.id.in_(ids))
                .order_by(Occurrence.id)
                .with_for_update()
            )
        ]
        session.execute(delete(AttendancePending).where(AttendancePending.occurrence_id.in_(ids)))
        figures = compute(session=session, occurrences=windows, rule=rule, now=now)
        corrections = _latest_corrections(session, ids)
        session.execute(delete(Attendance).where(Attendance.occurrence_id.in_(ids)))
        session.execute(delete(AttendanceRun).where(AttendanceRun.occurrence_id.in_(ids)))
        rows = [
            f.row(occurrence_id, corrections.get((occurrence_id, f.site_id)))
            for occurrence_id, site_figures in figures.items()
            for f in site_figures
        ]
        if rows:
            session.execute(Attendance.__table__.insert(), rows)
        session.execute(
            AttendanceRun.__table__.insert(),
            [
                {
                    "occurrence_id": w.id,
                    "start_at": w.start_at,
                    "end_at": w.end_at,
                    "computed_at": now,
                    "records": len(figures[w.id]),
                }
                for w in windows
            ],
        )
        written += len(rows)
    return written


@dataclass(frozen=True)
class Folded:
    """What one `fold_stale` call stored."""

    occurrences: int
    records: int


def fold_stale(*, session: Session, rule: AttendanceRule, now: datetime, limit: int) -> Folded:
    """Store the attendance of up to `limit` ended occurrences whose stored rows are missing or
    out of date, however long ago they ended, the latest first.

    This is what keeps reports from computing on read: the server's loop calls it as meetings
    end and as late events arrive, so a report finds its rows stored. On PostgreSQL the
    occurrences are locked as they are picked, skipping those another process is folding
    (`serve --processes N` runs a loop per process), so the work is shared, not repeated.
    """
    query = _stale_query(now).order_by(Occurrence.end_at.desc(), Occurrence.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Occurrence, skip_locked=True)
    ids = list(session.scalars(query))
    if not ids:
        return Folded(0, 0)
    return Folded(len(ids), store(session=session, occurrence_ids=ids, rule=rule, now=now))


def refresh(
    *,
    session: Session,
    from_at: datetime,
    to_at: datetime,
    rule: AttendanceRule,
    now: datetime,
) -> int:
    """Bring stored attendance up to date for occurrences starting in [from_at, to_at)."""
    stale = stale_occurrence_ids(session=session, from_at=from_at, to_at=to_at, now=now)
    if stale:
        stale = _still_stale(session, stale, now)
    return store(session=session, occurrence_ids=stale, rule=rule, now=now) if stale else 0


def _still_stale(session: Session, occurrence_ids: Sequence[int], now: datetime) -> list[int]:
    """Of these stale occurrences, those still stale once any fold of them in progress (the
    server's loop, in another transaction) has committed: a read waits for it rather than
    computing the same meeting a second time."""
    still: list[int] = []
    for start in range(0, len(occurrence_ids), ID_CHUNK):
        chunk = occurrence_ids[start : start + ID_CHUNK]
        lock = select(Occurrence.id).where(Occurrence.id.in_(chunk)).with_for_update()
        session.execute(lock).all()
        still += session.scalars(_stale_query(now).where(Occurrence.id.in_(chunk)))
    return sorted(still)


# --- one occurrence ------------------------------------------------------------------------------


@dataclass
class SiteAttendance:
    """A site's attendance with its site, its chair flag and its latest correction."""

    figures: SiteFigures
    site_name: str
    unit_id: int
    unit_name: str
    is_chair: bool
    correction: AttendanceCorrection | None
    # A SIP caller that was not invited (no booking): shown, never counted as invited.
    is_guest: bool = False

    @property
    def status(self) -> AttendanceStatus:
        if self.correction is not None:
            return AttendanceStatus(self.correction.status)
        return self.figures.status


def _figures_of(row: Attendance) -> SiteFigures:
    return SiteFigures(
        site_id=row.site_id,
        status=AttendanceStatus(row.status),
        connected_s=row.connected_s,
        media_s=row.media_s,
        first_join_at=row.first_join_at,
        last_leave_at=row.last_leave_at,
        last_leave_reason=row.last_leave_reason,
        reconnects=row.reconnects,
        joined_late=row.joined_late,
        left_early=row.left_early,
        rtt_median_ms=row.rtt_median_ms,
        loss_max=row.loss_max,
    )


def occurrence_figures(
    *, session: Session, occurrence: Occurrence, rule: AttendanceRule, now: datetime
) -> list[SiteFigures]:
    """Stored figures of an ended occurrence (refreshed first if stale); live ones otherwise."""
    window = OccurrenceWindow(occurrence.id, occurrence.start_at, occurrence.end_at)
    ended = occurrence.end_at <= now and occurrence.status == OccurrenceStatus.scheduled.value
    if not ended:
        return compute(session=session, occurrences=[window], rule=rule, now=now)[occurrence.id]
    stale = stale_occurrence_ids(
        session=session, from_at=occurrence.start_at, to_at=occurrence.start_at + _TICK, now=now
    )
    if occurrence.id in stale and _still_stale(session, [occurrence.id], now):
        store(session=session, occurrence_ids=[occurrence.id], rule=rule, now=now)
    rows = session.scalars(select(Attendance).where(Attendance.occurrence_id == occurrence.id))
    return [_figures_of(r) for r in rows]


def for_occurrence(
    *, session: Session, occurrence_id: int, rule: AttendanceRule, now: datetime
) -> tuple[Occurrence, list[SiteAttendance]]:
    """Every invited site's attendance at one occurrence, chair first, then by site name."""
    occurrence = occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
    figures = {
        f.site_id: f
        for f in occurrence_figures(session=session, occurrence=occurrence, rule=rule, now=now)
    }
    latest: dict[int, AttendanceCorrection] = {}
    corrections = select(AttendanceCorrection).where(
        AttendanceCorrection.occurrence_id == occurrence_id
    )
    for correction in session.scalars(corrections.order_by(AttendanceCorrection.id)):
        latest[correction.site_id] = correction
    query = (
        select(Booking.site_id, Booking.is_chair, Site.name, Unit.id, Unit.name)
        .join(Site, Site.id == Booking.site_id)
        .join(Unit, Unit.id == Site.unit_id)
        .where(Booking.occurrence_id == occurrence_id)
    )
    rows = sorted(session.execute(query), key=lambda r: (not r[1], vietnamese_key(r[2]), r[0]))
    result = [
        SiteAttendance(
            figures=figures.get(site_id) or SiteFigures(site_id=site_id),
            site_name=site_name,
            unit_id=unit_id,
            unit_name=unit_name,
            is_chair=is_chair,
            correction=latest.get(site_id),
        )
        for site_id, is_chair, site_name, unit_id, unit_name in rows
    ]
    result.extend(_guest_attendance(session, figures, {item.figures.site_id for item in result}))
    return occurrence, result


@dataclass
class PresentationSpan:
    """One content session of a site: from its `content_started` to its `content_stopped`."""

    site_id: int
    site_name: str | None
    started_at: datetime
    ended_at: datetime | None = None
    end_reason: str | None = None


def presentations(*, session: Session, occurrence_id: int) -> list[PresentationSpan]:
    """Who presented content in the occurrence and when, oldest first (one span per content
    session, so a hall that presented twice has two)."""
    kinds = (EventType.content_started.value, EventType.content_stopped.value)
    query = (
        select(SfuEventRecord, Site.name)
        .outerjoin(Site, Site.id == SfuEventRecord.site_id)
        .where(SfuEventRecord.occurrence_id == occurrence_id, SfuEventRecord.type.in_(kinds))
        .order_by(SfuEventRecord.at, SfuEventRecord.id)
    )
    spans: list[PresentationSpan] = []
    open_spans: dict[str | None, PresentationSpan] = {}
    for event, site_name in session.execute(query):
        if event.site_id is None:
            continue
        if event.type == EventType.content_started.value:
            span = PresentationSpan(event.site_id, site_name, started_at=event.at)
            spans.append(span)
            open_spans[event.peer_id] = span
        elif (span := open_spans.pop(event.peer_id, None)) is not None:
            span.ended_at = event.at
            span.end_reason = (event.payload.get("detail") or {}).get("reason")
    return spans


def _guest_attendance(
    session: Session, figures: dict[int, SiteFigures], invited: set[int]
) -> list[SiteAttendance]:
    """The guests among `figures` (sites without a booking), by name."""
    others = sorted(set(figures) - invited)
    if not others:
        return []
    query = (
        select(Site.id, Site.name, Unit.id, Unit.name)
        .join(Unit, Unit.id == Site.unit_id)
        .where(Site.id.in_(others), Site.guest_uri.is_not(None))
    )
    rows = sorted(session.execute(query), key=lambda r: (vietnamese_key(r[1]), r[0]))
    return [
        SiteAttendance(
            figures=figures[site_id],
            site_name=site_name,
            unit_id=unit_id,
            unit_name=unit_name,
            is_chair=False,
            correction=None,
            is_guest=True,
        )
        for site_id, site_name, unit_id, unit_name in rows
    ]


# --- corrections ---------------------------------------------------------------------------------


def correct(
    *,
    session: Session,
    occurrence_id: int,
    site_id: int,
    status: AttendanceStatus,
    reason: str,
    actor: str,
    rule: AttendanceRule,
    now: datetime,
) -> AttendanceCorrection:
    """Record a correction beside the computed attendance (which stays as it was)."""
    occurrence = occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
    if occurrence.status == OccurrenceStatus.cancelled.value:
        raise Conflict(f"occurrence {occurrence_id} was cancelled; it has no attendance")
    if occurrence.end_at > now:
        raise Conflict(f"occurrence {occurrence_id} has not ended yet; correct it afterwards")
    booking = session.scalar(
        select(Booking.id).where(Booking.occurrence_id == occurrence_id, Booking.site_id == site_id)
    )
    if booking is None:
        raise Invalid(f"site {site_id} was not invited to occurrence {occurrence_id}")
    reason = reason.strip()
    if not reason:
        raise Invalid("reason: say why the attendance is corrected")
    occurrence_figures(session=session, occurrence=occurrence, rule=rule, now=now)
    correction = AttendanceCorrection(
        occurrence_id=occurrence_id,
        site_id=site_id,
        status=status.value,
        reason=reason,
        created_by=actor,
        created_at=now,
    )
    session.add(correction)
    row = session.get(Attendance, (occurrence_id, site_id))
    if row is not None:
        row.corrected_status = status.value
    session.flush()
    return correction


def list_corrections(
    *, session: Session, occurrence_id: int, site_id: int | None = None
) -> list[AttendanceCorrection]:
    """Corrections of an occurrence (one site's, if given), oldest first."""
    occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
    conditions = [AttendanceCorrection.occurrence_id == occurrence_id]
    if site_id is not None:
        conditions.append(AttendanceCorrection.site_id == site_id)
    query = select(AttendanceCorrection).where(and_(*conditions))
    return list(session.scalars(query.order_by(AttendanceCorrection.id)))
