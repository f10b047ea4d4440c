"""Reports over HTTP: JSON, CSV or XLSX."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from confbridge.auth.dependencies import ReadScope
from confbridge.deps import SessionDep, SettingsDep
from confbridge.exports import (
    FILE_RESPONSES,
    ExportFormat,
    FormatQuery,
    file_response,
    parse_format,
    render,
)
from confbridge.pagination import MAX_ID
from confbridge.reports import export, site_attendance
from confbridge.reports import service as report_service
from confbridge.reports.schemas import AttendanceReport, OnlineRatioReport
from confbridge.timeutil import utcnow, zone

router = APIRouter(prefix="/reports", tags=["reports"])
DateQuery = Annotated[
    str | None, Query(max_length=10, description="a local date, e.g. 2026-01-31 (included)")
]
FromQuery = Annotated[
    str | None,
    Query(alias="from", max_length=10, description="a local date (default: 1 January)"),
]
UnitQuery = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="a unit; its descendants are included")
]


@router.get("/online-ratio", response_model=OnlineRatioReport, responses=FILE_RESPONSES)
def online_ratio(
    reader: ReadScope,
    session: SessionDep,
    settings: SettingsDep,
    from_: FromQuery = None,
    to: DateQuery = None,
    unit_id: UnitQuery = None,
    group_by: Annotated[str, Query(max_length=20, description="month, quarter, unit or kind")] = (
        "month"
    ),
    format_: FormatQuery = "json",
) -> OnlineRatioReport | Response:
    """Meetings held online (or hybrid) / all held, and communes connected, beside targets.

    For a unit of yours (by default: your unit, when you have one scope)."""
    export_format = parse_format(format_)
    grouping = report_service.parse_group_by(group_by)
    tz = settings.meetings.default_tz
    now = utcnow()
    period = report_service.parse_period(from_, to, tz=tz, today=now.astimezone(zone(tz)).date())
    unit = report_service.resolve_unit(session=session, unit_id=unit_id, scope=reader.scope)
    report = report_service.online_ratio(
        session=session,
        period=period,
        unit=unit,
        group_by=grouping,
        settings=settings.reports,
        now=now,
    )
    session.commit()  # attendance computed for the report is kept
    if export_format is ExportFormat.json:
        return report
    document = export.online_ratio_document(report, tz=tz)
    return file_response(*render(document, export_format.value))


@router.get("/attendance", response_model=AttendanceReport, responses=FILE_RESPONSES)
def attendance(
    reader: ReadScope,
    session: SessionDep,
    settings: SettingsDep,
    from_: FromQuery = None,
    to: DateQuery = None,
    unit_id: UnitQuery = None,
    format_: FormatQuery = "json",
) -> AttendanceReport | Response:
    """Attendance per site: invited, present, partial, absent, late, left early, rate; of a
    unit of yours (by default: your unit, when you have one scope)."""
    export_format = parse_format(format_)
    tz = settings.meetings.default_tz
    now = utcnow()
    period = report_service.parse_period(from_, to, tz=tz, today=now.astimezone(zone(tz)).date())
    unit = report_service.resolve_unit(session=session, unit_id=unit_id, scope=reader.scope)
    report = site_attendance.attendance(
        session=session, period=period, unit=unit, settings=settings.reports, now=now
    )
    session.commit()
    if export_format is ExportFormat.json:
        return report
    document = export.attendance_document(report, tz=tz)
    return file_response(*render(document, export_format.value))
