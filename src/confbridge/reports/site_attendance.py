"""Attendance per site over the meetings held on the bridge in a period."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from confbridge.attendance.models import Attendance, AttendanceStatus
from confbridge.reports.schemas import (
    AttendanceReport,
    SiteAttendanceRow,
    UnitRef,
)
from confbridge.reports.service import (
    Period,
    UnitTree,
    held_occurrences,
    id_chunks,
    ratio,
    refresh_attendance,
    site_ids_of_units,
)
from confbridge.settings import ReportSettings
from confbridge.sites.models import Site, Unit
from confbridge.text import vietnamese_key

# SIP guests joined without an invitation: their attendance rows are not part of the rates.
NOT_A_GUEST = Attendance.site_id.not_in(select(Site.id).where(Site.guest_uri.is_not(None)))


def attendance(
    *,
    session: Session,
    period: Period,
    unit: Unit | None,
    settings: ReportSettings,
    now: datetime,
) -> AttendanceReport:
    """Attendance per site over the online and hybrid occurrences held in the period.

    In-person meetings are left out: the bridge cannot see who sat in the room.
    """
    refresh_attendance(session, period, settings, now)
    held = [o for o in held_occurrences(session=session, period=period, now=now) if o.online]
    site_ids: list[int] | None = None
    if unit is not None:
        site_ids = site_ids_of_units(session, UnitTree.load(session).subtree(unit.id))
    totals = _attendance_totals(session, [o.id for o in held], site_ids)
    rows = _site_rows(session, totals)
    invited = sum(r.invited for r in rows)
    present = sum(r.present for r in rows)
    partial = sum(r.partial for r in rows)
    return AttendanceReport(
        from_date=period.from_date,
        to_date=period.to_date,
        unit=UnitRef(id=unit.id, name=unit.name) if unit else None,
        generated_at=now,
        occurrences=len(held),
        invited=invited,
        present=present,
        partial=partial,
        absent=invited - present - partial,
        rate=ratio(present, invited),
        rows=rows,
    )


def _attendance_totals(
    session: Session, occurrence_ids: list[int], site_ids: list[int] | None
) -> dict[int, list[int]]:
    """Per site: invited, present, partial, corrected, late, early, connected seconds."""
    status = func.coalesce(Attendance.corrected_status, Attendance.status)

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    columns = (
        Attendance.site_id,
        func.count(),
        count(status == AttendanceStatus.present.value),
        count(status == AttendanceStatus.partial.value),
        count(Attendance.corrected_status.is_not(None)),
        count(Attendance.joined_late.is_(True)),
        count(Attendance.left_early.is_(True)),
        func.sum(Attendance.connected_s),
    )
    totals: dict[int, list[int]] = defaultdict(lambda: [0] * 7)
    for chunk in id_chunks(occurrence_ids):
        query = select(*columns).where(Attendance.occurrence_id.in_(chunk), NOT_A_GUEST)
        if site_ids is not None:
            # Sites of one province: a few hundred ids, read through the site index.
            query = query.where(Attendance.site_id.in_(site_ids))
        for site_id, *figures in session.execute(query.group_by(Attendance.site_id)):
            sums = totals[site_id]
            for i, value in enumerate(figures):
                sums[i] += int(value or 0)
    return totals


def _site_rows(session: Session, totals: dict[int, list[int]]) -> list[SiteAttendanceRow]:
    """One row per site, ordered by unit then site name as Vietnamese readers sort them."""
    names = _site_names(session, sorted(totals))
    rows = []
    by_name = {s: (vietnamese_key(names[s][2]), vietnamese_key(names[s][0]), s) for s in totals}
    for site_id in sorted(totals, key=by_name.__getitem__):
        invited, present, partial, corrected, late, early, connected_s = totals[site_id]
        site_name, unit_id, unit_name = names[site_id]
        rows.append(
            SiteAttendanceRow(
                site_id=site_id,
                site_name=site_name,
                unit_id=unit_id,
                unit_name=unit_name,
                invited=invited,
                present=present,
                partial=partial,
                absent=invited - present - partial,
                corrected=corrected,
                joined_late=late,
                left_early=early,
                connected_min=round(connected_s / 60, 1),
                rate=ratio(present, invited),
            )
        )
    return rows


def _site_names(session: Session, site_ids: Sequence[int]) -> dict[int, tuple[str, int, str]]:
    names: dict[int, tuple[str, int, str]] = {}
    for chunk in id_chunks(site_ids):
        query = (
            select(Site.id, Site.name, Unit.id, Unit.name)
            .join(Unit, Unit.id == Site.unit_id)
            .where(Site.id.in_(chunk))
        )
        for site_id, site_name, unit_id, unit_name in session.execute(query):
            names[site_id] = (site_name, unit_id, unit_name)
    return names
