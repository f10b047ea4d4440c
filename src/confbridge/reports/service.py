"""Reports against the targets: online-meeting ratio, communes connected, attendance rates.

What counts:
- an occurrence is *held* once it has ended and was not cancelled; it belongs to the period of
  its start's date in its series' time zone, and to the unit of its chair site (a unit
  includes its descendants);
- an online or hybrid occurrence is *booked* online; it is *verified* (held on the bridge) when
  its chair site and at least one other invited site had media flowing (attendance `media_s`)
  for `reports.verified_min_ratio` of its scheduled time. Rows give both figures; targets
  are judged on the verified ones;
- a commune (commune, ward or special zone) is *connected* in a period when one of its sites
  had media flowing for `verified_min_ratio` of a verified meeting held in it, whoever
  chaired it;
- a site's attendance rate is present / invited over the online and hybrid occurrences held
  that it was invited to, corrections included (in-person meetings have no SFU events).

Attendance rows are read from the materialised `attendance` table (refreshed first for the
period), grouped by the database; occurrences, a few hundred a year, are grouped in Python.
"""

from __future__ import annotations

import math
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal_column, select
from sqlalchemy.orm import Session

from confbridge.attendance import service as attendance_service
from confbridge.attendance.models import Attendance
from confbridge.auth.scope import Scope
from confbridge.errors import Invalid
from confbridge.meetings.models import (
    Booking,
    MeetingKind,
    MeetingMode,
    Occurrence,
    OccurrenceStatus,
    Series,
)
from confbridge.reports.schemas import (
    GroupBy,
    OnlineRatioReport,
    OnlineRatioRow,
    TargetResult,
    UnitRef,
)
from confbridge.settings import ReportSettings, Target
from confbridge.sites.models import Site, Unit, UnitKind
from confbridge.text import vietnamese_key
from confbridge.timeutil import check_year, zone

COMMUNE_KINDS = frozenset({UnitKind.commune.value, UnitKind.ward.value, UnitKind.special_zone})
ONLINE_MODES = frozenset({MeetingMode.online.value, MeetingMode.hybrid.value})
# Occurrence ids per query: well under the oldest SQLite limit of 999 parameters.
ID_CHUNK = 500
# Series may use other zones than the default: the SQL window is widened by a day on each side,
# and each occurrence is then placed by its own local date.
ZONE_MARGIN = timedelta(days=1)
MAX_PERIOD_DAYS = 3 * 366 + 1
KIND_LABELS = {
    MeetingKind.giao_ban.value: "Giao ban",
    MeetingKind.so_ket.value: "Sơ kết",
    MeetingKind.tong_ket.value: "Tổng kết",
    MeetingKind.tap_huan.value: "Tập huấn",
    MeetingKind.chuyen_de.value: "Chuyên đề",
    MeetingKind.khac.value: "Khác",
}
QUARTER_NUMERALS = ("I", "II", "III", "IV")
PROVINCE_PREFIXES = ("tinh ", "thanh pho ")


# --- input ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole local days [from_date, to_date] in `tz`, and the UTC instants that bound them."""

    from_date: date
    to_date: date
    tz: str

    @property
    def from_at(self) -> datetime:
        return datetime.combine(self.from_date, time(), tzinfo=zone(self.tz)).astimezone(UTC)

    @property
    def to_at(self) -> datetime:
        end = datetime.combine(self.to_date + timedelta(days=1), time(), tzinfo=zone(self.tz))
        return end.astimezone(UTC)

    def contains(self, day: date) -> bool:
        return self.from_date <= day <= self.to_date


def _parse_date(value: str, name: str) -> date:
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(f"{name}: {value!r} is not a date like 2026-01-31") from None
    check_year(day, name)
    return day


def parse_period(from_: str | None, to: str | None, *, tz: str, today: date) -> Period:
    """`from`/`to` as local dates, both included; by default the current year up to today."""
    from_date = _parse_date(from_, "from") if from_ else date(today.year, 1, 1)
    to_date = _parse_date(to, "to") if to else max(today, from_date)
    if from_date > to_date:
        raise Invalid(f"from: {from_date} is after to: {to_date}")
    if (to_date - from_date).days > MAX_PERIOD_DAYS:
        raise Invalid("the period may span at most three years")
    return Period(from_date, to_date, tz)


def parse_group_by(value: str) -> GroupBy:
    try:
        return GroupBy(value.strip().lower())
    except ValueError:
        names = ", ".join(g.value for g in GroupBy)
        raise Invalid(f"group_by: unknown value {value!r} (one of {names})") from None


def resolve_unit(
    *, session: Session, unit_id: int | None, scope: Scope | None = None
) -> Unit | None:
    """The unit a report is for; an unknown id is bad input (422), not a missing page.

    With a `scope` that is not the whole installation, the unit must be in it (a unit outside
    gets the same answer as one that does not exist), and without `unit_id` the scope's own
    unit is taken, if it has only one.
    """
    partial = scope is not None and not scope.whole
    if unit_id is None and partial:
        assert scope is not None
        tops = sorted(scope.top_unit_ids)
        if len(tops) != 1:
            shown = ", ".join(map(str, tops[:20])) or "none"
            raise Invalid(f"unit_id: choose one of your units ({shown})")
        unit_id = tops[0]
    if unit_id is None:
        return None
    unit = session.get(Unit, unit_id)
    if unit is None or (partial and scope is not None and not scope.covers(unit.id)):
        raise Invalid(f"unit_id: unit {unit_id} does not exist")
    return unit


def _fold(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text.casefold().strip())
    return " ".join("".join(c for c in decomposed if unicodedata.category(c) != "Mn").split())


def _bare(name: str) -> str:
    folded = _fold(name)
    for prefix in PROVINCE_PREFIXES:
        if folded.startswith(prefix):
            return folded[len(prefix) :]
    return folded


def find_unit(*, session: Session, query: str) -> Unit:
    """A unit by code ('22'), id or name (case, accents, 'Tỉnh'/'Thành phố' optional)."""
    text = query.strip()
    by_code = session.scalar(select(Unit).where(Unit.code == text))
    if by_code is not None:
        return by_code
    if text.isdigit():
        unit = session.get(Unit, int(text))
        if unit is not None:
            return unit
    wanted = _bare(text)
    matches = [
        unit
        for unit in session.scalars(select(Unit).order_by(Unit.id))
        if _bare(unit.name) == wanted
    ]
    if not matches:
        raise Invalid(f"no unit named {query!r}")
    top = [u for u in matches if u.parent_id is None]
    if len(matches) > 1 and len(top) == 1:
        return top[0]
    if len(matches) > 1:
        ids = ", ".join(str(u.id) for u in matches[:10])
        raise Invalid(f"{len(matches)} units are named {query!r} (ids {ids}); give an id")
    return matches[0]


# --- the unit tree -------------------------------------------------------------------------------


class UnitTree:
    """Every unit's parent, kind and name, loaded once per report (a few thousand rows)."""

    def __init__(self, rows: Iterable[tuple[int, int | None, str, str]]) -> None:
        self.parent: dict[int, int | None] = {}
        self.kind: dict[int, str] = {}
        self.name: dict[int, str] = {}
        self.children: dict[int | None, list[int]] = defaultdict(list)
        for unit_id, parent_id, kind, name in rows:
            self.parent[unit_id], self.kind[unit_id], self.name[unit_id] = parent_id, kind, name
            self.children[parent_id].append(unit_id)
        for ids in self.children.values():
            ids.sort(key=lambda i: (vietnamese_key(self.name[i]), i))

    @classmethod
    def load(cls, session: Session) -> UnitTree:
        return cls(session.execute(select(Unit.id, Unit.parent_id, Unit.kind, Unit.name)).all())

    def subtree(self, unit_id: int) -> set[int]:
        found, todo = set(), [unit_id]
        while todo:
            current = todo.pop()
            found.add(current)
            todo.extend(self.children.get(current, ()))
        return found

    def branch_of(self, unit_id: int, top: int | None) -> int | None:
        """The child of `top` (a root when `top` is None) that `unit_id` lies under; `top`
        itself for its own units; None when outside."""
        current: int | None = unit_id
        while current is not None:
            parent = self.parent.get(current)
            if parent == top:
                return current
            if current == top:
                return top
            current = parent
        return None

    def communes(self, unit_ids: Iterable[int]) -> set[int]:
        return {u for u in unit_ids if self.kind.get(u) in COMMUNE_KINDS}


# --- held occurrences ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldOccurrence:
    id: int
    local_date: date
    kind: str
    mode: str
    chair_unit_id: int
    duration_s: float = 0.0

    @property
    def online(self) -> bool:
        return self.mode in ONLINE_MODES

    def media_needed_s(self, min_ratio: float) -> int:
        """Seconds of media a site needs for the meeting to count as held on the bridge."""
        return max(1, math.ceil(min_ratio * self.duration_s - 1e-6))


def held_occurrences(*, session: Session, period: Period, now: datetime) -> list[HeldOccurrence]:
    """Occurrences held (ended, not cancelled) on a local date of the period."""
    chair_booking = (
        select(Booking.site_id)
        .where(Booking.occurrence_id == Occurrence.id, Booking.is_chair.is_(True))
        .correlate(Occurrence)
        .limit(1)
        .scalar_subquery()
    )
    chair_site = func.coalesce(chair_booking, Series.chair_site_id)
    query = (
        select(
            Occurrence.id,
            Occurrence.start_at,
            Occurrence.end_at,
            Series.tz,
            Series.kind,
            Series.mode,
            select(Site.unit_id).where(Site.id == chair_site).scalar_subquery(),
        )
        .join(Series, Series.id == Occurrence.series_id)
        .where(
            Occurrence.status == OccurrenceStatus.scheduled.value,
            Occurrence.end_at <= now,
            Occurrence.start_at >= period.from_at - ZONE_MARGIN,
            Occurrence.start_at < period.to_at + ZONE_MARGIN,
        )
        .order_by(Occurrence.start_at, Occurrence.id)
    )
    held = []
    for occurrence_id, start_at, end_at, tz, kind, mode, chair_unit_id in session.execute(query):
        local_date = start_at.astimezone(zone(tz)).date()
        if period.contains(local_date):
            duration_s = (end_at - start_at).total_seconds()
            held.append(
                HeldOccurrence(occurrence_id, local_date, kind, mode, chair_unit_id, duration_s)
            )
    return held


def verified_occurrence_ids(
    *, session: Session, occurrences: Sequence[HeldOccurrence], min_ratio: float
) -> set[int]:
    """The online and hybrid occurrences held on the bridge: their chair site and at least one
    other invited site had media flowing for `min_ratio` of the scheduled time (computed
    attendance, not corrections: a hall on the phone is not the bridge)."""
    online = {o.id: o for o in occurrences if o.online}
    best: dict[int, dict[bool, int]] = defaultdict(dict)  # the most media, chair and others
    for chunk in id_chunks(sorted(online)):
        query = (
            select(Attendance.occurrence_id, Booking.is_chair, func.max(Attendance.media_s))
            .join(
                Booking,
                and_(
                    Booking.occurrence_id == Attendance.occurrence_id,
                    Booking.site_id == Attendance.site_id,
                ),
            )
            .where(Attendance.occurrence_id.in_(chunk))
            .group_by(Attendance.occurrence_id, Booking.is_chair)
        )
        for occurrence_id, is_chair, media_s in session.execute(query):
            best[occurrence_id][bool(is_chair)] = int(media_s or 0)
    verified = set()
    for occurrence in online.values():
        needed = occurrence.media_needed_s(min_ratio)
        media = best.get(occurrence.id, {})
        if media.get(True, 0) >= needed and media.get(False, 0) >= needed:
            verified.add(occurrence.id)
    return verified


def refresh_attendance(
    session: Session, period: Period, settings: ReportSettings, now: datetime
) -> None:
    attendance_service.refresh(
        session=session,
        from_at=period.from_at - ZONE_MARGIN,
        to_at=period.to_at + ZONE_MARGIN,
        rule=settings.attendance,
        now=now,
    )


def id_chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), ID_CHUNK):
        yield values[start : start + ID_CHUNK]


def _int_case(column: Any, mapping: dict[int, int]) -> Any:
    """CASE column WHEN id THEN n ...: integers inlined, so no parameter limit applies."""
    return case(
        {literal_column(str(int(k))): literal_column(str(int(v))) for k, v in mapping.items()},
        value=column,
    )


def connected_communes(
    *,
    session: Session,
    occurrence_groups: dict[int, int],
    media_needed_s: dict[int, int],
    site_ids: Sequence[int] | None = None,
) -> dict[int, set[int]]:
    """Group number → units of sites that had media in one of the group's occurrences.

    `occurrence_groups` maps verified online occurrences to a group number, `media_needed_s`
    gives each the seconds of media a site needs in it; `site_ids`, when given, limits the sites
    looked at (a province's communes: read through the site index). Computed figures, not a
    correction: a correction may say a hall joined by phone, which is not the video bridge.
    """
    result: dict[int, set[int]] = defaultdict(set)
    ids = sorted(occurrence_groups)
    if site_ids is not None and not site_ids:
        return result
    for chunk in id_chunks(ids):
        group = _int_case(Attendance.occurrence_id, {i: occurrence_groups[i] for i in chunk})
        needed = _int_case(Attendance.occurrence_id, {i: media_needed_s[i] for i in chunk})
        query = (
            select(group, Site.unit_id)
            .join(Site, Site.id == Attendance.site_id)
            .where(Attendance.occurrence_id.in_(chunk), Attendance.media_s >= needed)
            .group_by(group, Site.unit_id)
        )
        if site_ids is not None:
            query = query.where(Attendance.site_id.in_(site_ids))
        for group_number, unit_id in session.execute(query):
            result[group_number].add(unit_id)
    return result


# --- online ratio --------------------------------------------------------------------------------


def _month_key(day: date) -> tuple[str, str]:
    return f"{day:%Y-%m}", f"Tháng {day:%m/%Y}"


def _quarter_key(day: date) -> tuple[str, str]:
    quarter = (day.month - 1) // 3
    return f"{day.year}-Q{quarter + 1}", f"Quý {QUARTER_NUMERALS[quarter]}/{day.year}"


def _period_keys(period: Period, key: Callable[[date], tuple[str, str]]) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    day = period.from_date.replace(day=1)
    while day <= period.to_date:
        item = key(day)
        if item not in keys:
            keys.append(item)
        day = (day + timedelta(days=32)).replace(day=1)
    return keys


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _target_results(
    targets: dict[str, Target],
    occurrences: Sequence[HeldOccurrence],
    verified: set[int],
    communes: int,
    connected: int,
) -> list[TargetResult]:
    results = []
    for key, target in targets.items():
        if target.metric == "online_ratio":
            # judged on the meetings verified on the bridge, not on those booked online
            counted = [o for o in occurrences if o.kind in target.kinds]
            numerator, denominator = sum(o.id in verified for o in counted), len(counted)
        else:
            numerator, denominator = connected, communes
        actual = ratio(numerator, denominator)
        results.append(
            TargetResult(
                key=key,
                metric=target.metric,
                label_vi=target.label_vi,
                label_en=target.label_en,
                kinds=list(target.kinds),
                target=target.min_ratio,
                numerator=numerator,
                denominator=denominator,
                actual=actual,
                # Rounded first: 4/5 must meet 0.8 whatever the float error.
                met=None if actual is None else round(actual, 9) >= target.min_ratio,
            )
        )
    return results


def _row(
    group: str,
    label: str,
    occurrences: Sequence[HeldOccurrence],
    verified: set[int],
    communes: set[int],
    connected: set[int],
    targets: dict[str, Target],
) -> OnlineRatioRow:
    modes: dict[str, int] = defaultdict(int)
    checked: dict[str, int] = defaultdict(int)
    for occurrence in occurrences:
        modes[occurrence.mode] += 1
        if occurrence.id in verified:
            checked[occurrence.mode] += 1
    online, hybrid = modes[MeetingMode.online.value], modes[MeetingMode.hybrid.value]
    online_verified = checked[MeetingMode.online.value]
    hybrid_verified = checked[MeetingMode.hybrid.value]
    reached = len(communes & connected)
    return OnlineRatioRow(
        group=group,
        label=label,
        held=len(occurrences),
        online=online,
        hybrid=hybrid,
        in_person=modes[MeetingMode.in_person.value],
        ratio=ratio(online + hybrid, len(occurrences)),
        online_verified=online_verified,
        hybrid_verified=hybrid_verified,
        ratio_verified=ratio(online_verified + hybrid_verified, len(occurrences)),
        communes=len(communes),
        communes_connected=reached,
        targets=_target_results(targets, occurrences, verified, len(communes), reached),
    )


def online_ratio(
    *,
    session: Session,
    period: Period,
    unit: Unit | None,
    group_by: GroupBy,
    settings: ReportSettings,
    now: datetime,
) -> OnlineRatioReport:
    """The online-meeting ratio and communes connected, by period, unit or kind."""
    refresh_attendance(session, period, settings, now)
    tree = UnitTree.load(session)
    settings = _province_settings(session, settings, unit, tree)
    scope = tree.subtree(unit.id) if unit else set(tree.parent)
    held = held_occurrences(session=session, period=period, now=now)
    in_scope = [o for o in held if o.chair_unit_id in scope]
    scope_communes = tree.communes(scope)
    top = unit.id if unit else None

    labels, key_of = _report_groups(group_by, period, in_scope, settings, tree, top)

    # Communes connected: by the same groups, except for `unit`, where a commune is in its
    # branch and is connected by any verified online meeting of the period.
    min_ratio = settings.verified_min_ratio
    verified = verified_occurrence_ids(session=session, occurrences=held, min_ratio=min_ratio)
    online = [o for o in held if o.id in verified]
    needed = {o.id: o.media_needed_s(min_ratio) for o in online}
    # For one unit, only its communes' sites are read (through the site index).
    commune_sites = site_ids_of_units(session, scope_communes) if unit is not None else None
    if group_by is GroupBy.unit:
        per_group = connected_communes(
            session=session,
            occurrence_groups={o.id: 0 for o in online},
            media_needed_s=needed,
            site_ids=commune_sites,
        )
        connected_all = per_group.get(0, set())
    else:
        numbers = {key: n for n, key in enumerate(labels)}
        occurrence_groups = {o.id: numbers[_group_key(o, group_by)] for o in online}
        per_group = connected_communes(
            session=session,
            occurrence_groups=occurrence_groups,
            media_needed_s=needed,
            site_ids=commune_sites,
        )
        connected_all = set().union(*per_group.values()) if per_group else set()

    by_group: dict[str, list[HeldOccurrence]] = defaultdict(list)
    for occurrence in in_scope:
        by_group[key_of[occurrence.id]].append(occurrence)
    targets = settings.targets
    rows = []
    for n, (key, label) in enumerate(labels.items()):
        if group_by is GroupBy.unit:
            branch = int(key)
            communes = tree.communes(tree.subtree(branch)) if branch != top else set()
            if branch == top and tree.kind.get(branch) in COMMUNE_KINDS:
                communes = {branch}
            connected = connected_all
        else:
            communes, connected = scope_communes, per_group.get(n, set())
        rows.append(_row(key, label, by_group.get(key, []), verified, communes, connected, targets))
    total = _row("total", "Tổng cộng", in_scope, verified, scope_communes, connected_all, targets)
    return OnlineRatioReport(
        from_date=period.from_date,
        to_date=period.to_date,
        unit=UnitRef(id=unit.id, name=unit.name) if unit else None,
        group_by=group_by,
        generated_at=now,
        rows=rows,
        total=total,
    )


def _province_settings(
    session: Session, settings: ReportSettings, unit: Unit | None, tree: UnitTree
) -> ReportSettings:
    """The settings with the targets of the report's province, when it has its own
    (`reports.province_targets`, by the province's unit code)."""
    if unit is None or not settings.province_targets:
        return settings
    top = unit.id
    while tree.parent.get(top) is not None:
        top = tree.parent[top]  # type: ignore[assignment]
    province = session.get(Unit, top)
    own = settings.province_targets.get(province.code or "") if province else None
    return settings.model_copy(update={"targets": own}) if own is not None else settings


def _report_groups(
    group_by: GroupBy,
    period: Period,
    in_scope: list[HeldOccurrence],
    settings: ReportSettings,
    tree: UnitTree,
    top: int | None,
) -> tuple[dict[str, str], dict[int, str]]:
    """The report's rows (key → label, in order) and each occurrence's row key: its month,
    quarter or kind; for `unit`, its chair's branch."""
    labels: dict[str, str] = {}
    if group_by is GroupBy.month:
        labels = dict(_period_keys(period, _month_key))
        key_of = {o.id: _month_key(o.local_date)[0] for o in in_scope}
    elif group_by is GroupBy.quarter:
        labels = dict(_period_keys(period, _quarter_key))
        key_of = {o.id: _quarter_key(o.local_date)[0] for o in in_scope}
    elif group_by is GroupBy.kind:
        kinds = {o.kind for o in in_scope} | {k for t in settings.targets.values() for k in t.kinds}
        labels = {k.value: KIND_LABELS[k.value] for k in MeetingKind if k.value in kinds}
        key_of = {o.id: o.kind for o in in_scope}
    else:
        branches = list(tree.children.get(top, []))
        if top is not None:
            branches.insert(0, top)
        labels = {str(b): tree.name[b] for b in branches}
        key_of = {o.id: str(tree.branch_of(o.chair_unit_id, top)) for o in in_scope}
    return labels, key_of


def _group_key(occurrence: HeldOccurrence, group_by: GroupBy) -> str:
    if group_by is GroupBy.month:
        return _month_key(occurrence.local_date)[0]
    if group_by is GroupBy.quarter:
        return _quarter_key(occurrence.local_date)[0]
    return occurrence.kind


def site_ids_of_units(session: Session, unit_ids: Iterable[int]) -> list[int]:
    """The sites of these units (not their subunits), in id order."""
    units = sorted(unit_ids)
    found: list[int] = []
    for chunk in id_chunks(units):
        found.extend(session.scalars(select(Site.id).where(Site.unit_id.in_(chunk))))
    return sorted(found)
