"""Report pages: the online-meeting ratio against its targets, attendance per site and per
meeting, with CSV/XLSX downloads of the same figures."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_date
from fastapi import APIRouter
from fastapi.responses import Response

from confbridge.attendance import export as attendance_export
from confbridge.attendance.router import occurrence_attendance
from confbridge.errors import DomainError, Invalid
from confbridge.exports import EXCEL_VI_CSV, file_response, render
from confbridge.meetings import access as meeting_access
from confbridge.reports import export, site_attendance
from confbridge.reports import service as report_service
from confbridge.reports.schemas import GroupBy, OnlineRatioReport, OnlineRatioRow
from confbridge.timeutil import utcnow, zone
from confbridge.web import labels, queries
from confbridge.web.charts import Bar, ratio_bars
from confbridge.web.context import Page, UserPage
from confbridge.web.domain_messages import explain

router = APIRouter(include_in_schema=False)
DOWNLOAD_FORMATS = ("csv", "xlsx")
ATTENDANCE_STATUSES = {
    "present": labels.N_("Present"),
    "partial": labels.N_("Partly present"),
    "absent": labels.N_("Absent"),
}
GROUPINGS = {
    "month": labels.N_("By month"),
    "quarter": labels.N_("By quarter"),
    "unit": labels.N_("By unit"),
    "kind": labels.N_("By kind of meeting"),
}


def _query_value(text: str | None, limit: int = 20) -> str | None:
    return text.strip()[:limit] if text and text.strip() else None


def _unit_id(text: str | None) -> int | None:
    value = _query_value(text)
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 2**63 - 1:
        raise Invalid(f"unit_id: {value!r} is not a unit")
    return int(value)


def _filters(page: Page, from_: str | None, to: str | None, unit_id: str | None) -> Any:
    tz = page.settings.meetings.default_tz
    today = utcnow().astimezone(zone(tz)).date()
    period = report_service.parse_period(_query_value(from_), _query_value(to), tz=tz, today=today)
    assert page.user is not None
    unit = report_service.resolve_unit(
        session=page.session, unit_id=_unit_id(unit_id), scope=page.user.scope
    )
    return period, unit


def _group_label(page: Page, row: OnlineRatioRow, group_by: GroupBy) -> str:
    if group_by is GroupBy.kind and row.group in labels.KINDS:
        return page._(labels.KINDS[row.group])
    if page.language == "vi" or group_by is GroupBy.unit:
        return row.label
    year, _, part = row.group.partition("-")
    if group_by is GroupBy.month and part.isdigit():
        return format_date(date(int(year), int(part), 1), "MMM y", locale=page.language)
    if group_by is GroupBy.quarter:
        return f"{part} {year}"
    return row.label


def _charts(page: Page, report: OnlineRatioReport) -> list[dict[str, Any]]:
    charts = []
    for index, total in enumerate(report.total.targets):
        label = total.label_vi if page.language == "vi" else total.label_en
        bars = []
        for row in report.rows:
            found = next((t for t in row.targets if t.key == total.key), None)
            bars.append(
                Bar(_group_label(page, row, report.group_by), found.actual if found else None)
            )
        charts.append(
            {
                "label": label,
                "target": total,
                "svg": ratio_bars(
                    bars,
                    title=label,
                    target=total.target,
                    target_label=page._("Target %(value)s", value=page.fmt.percent(total.target)),
                    percent=page.fmt.percent,
                    no_data=page._("no meeting"),
                    chart_id=f"chart-{index}",
                ),
            }
        )
    return charts


def _download_links(page: Page, path: str) -> dict[str, str]:
    query = {k: v for k, v in page.request.query_params.items() if v}
    suffix = f"?{urlencode(query)}" if query else ""
    return {fmt: f"{path}.{fmt}{suffix}" for fmt in DOWNLOAD_FORMATS}


def _units(page: Page) -> list[queries.UnitNode]:
    assert page.user is not None
    return queries.flatten(queries.unit_tree(page.session, page.user.scope))


def _online_report(
    page: Page,
    from_date: str | None,
    to_date: str | None,
    unit_id: str | None,
    group_by: str | None,
) -> tuple[OnlineRatioReport, GroupBy]:
    period, unit = _filters(page, from_date, to_date, unit_id)
    grouping = report_service.parse_group_by(_query_value(group_by) or "month")
    report = report_service.online_ratio(
        session=page.session,
        period=period,
        unit=unit,
        group_by=grouping,
        settings=page.settings.reports,
        now=utcnow(),
    )
    page.session.commit()  # attendance computed for the report is kept
    return report, grouping


@router.get("/reports")
def online_ratio_page(
    page: UserPage,
    from_date: str | None = None,
    to_date: str | None = None,
    unit_id: str | None = None,
    group_by: str | None = None,
) -> Response:
    values: dict[str, Any] = {
        "units": _units(page),
        "groupings": GROUPINGS,
        "form": {
            "from_date": from_date or "",
            "to_date": to_date or "",
            "unit_id": unit_id or "",
            "group_by": group_by or "month",
        },
        "report": None,
        "message": None,
    }
    try:
        report, grouping = _online_report(page, from_date, to_date, unit_id, group_by)
    except DomainError as exc:
        page.session.rollback()
        values["message"] = page._(
            "The report cannot be made: %(reason)s", reason=explain(page, exc)
        )
        return page.render("report_online.html", 422, **values)
    values["form"].update(
        from_date=report.from_date.isoformat(),
        to_date=report.to_date.isoformat(),
        group_by=grouping.value,
    )
    values.update(
        report=report,
        verified_min_ratio=page.settings.reports.verified_min_ratio,
        rows=[(row, _group_label(page, row, grouping)) for row in report.rows],
        charts=_charts(page, report),
        downloads=_download_links(page, "/reports/online-ratio"),
    )
    return page.render("report_online.html", **values)


@router.get("/reports/online-ratio.{fmt}")
def online_ratio_file(
    page: UserPage,
    fmt: str,
    from_date: str | None = None,
    to_date: str | None = None,
    unit_id: str | None = None,
    group_by: str | None = None,
) -> Response:
    if fmt not in DOWNLOAD_FORMATS:
        return page.render("error.html", 404, message=page._("This page does not exist."))
    try:
        report, _grouping = _online_report(page, from_date, to_date, unit_id, group_by)
    except DomainError as exc:
        page.session.rollback()
        message = page._("The report cannot be made: %(reason)s", reason=explain(page, exc))
        return page.render("error.html", 422, message=message)
    document = export.online_ratio_document(report, tz=page.settings.meetings.default_tz)
    return file_response(*render(document, fmt, EXCEL_VI_CSV))


def _attendance_report(
    page: Page, from_date: str | None, to_date: str | None, unit_id: str | None
) -> Any:
    period, unit = _filters(page, from_date, to_date, unit_id)
    report = site_attendance.attendance(
        session=page.session,
        period=period,
        unit=unit,
        settings=page.settings.reports,
        now=utcnow(),
    )
    page.session.commit()
    return report


@router.get("/reports/attendance")
def attendance_page(
    page: UserPage,
    from_date: str | None = None,
    to_date: str | None = None,
    unit_id: str | None = None,
) -> Response:
    values: dict[str, Any] = {
        "units": _units(page),
        "form": {"from_date": from_date or "", "to_date": to_date or "", "unit_id": unit_id or ""},
        "report": None,
        "message": None,
    }
    try:
        report = _attendance_report(page, from_date, to_date, unit_id)
    except DomainError as exc:
        page.session.rollback()
        values["message"] = page._(
            "The report cannot be made: %(reason)s", reason=explain(page, exc)
        )
        return page.render("report_attendance.html", 422, **values)
    values["form"].update(
        from_date=report.from_date.isoformat(), to_date=report.to_date.isoformat()
    )
    values.update(report=report, downloads=_download_links(page, "/reports/attendance"))
    return page.render("report_attendance.html", **values)


@router.get("/reports/attendance.{fmt}")
def attendance_file(
    page: UserPage,
    fmt: str,
    from_date: str | None = None,
    to_date: str | None = None,
    unit_id: str | None = None,
) -> Response:
    if fmt not in DOWNLOAD_FORMATS:
        return page.render("error.html", 404, message=page._("This page does not exist."))
    try:
        report = _attendance_report(page, from_date, to_date, unit_id)
    except DomainError as exc:
        page.session.rollback()
        message = page._("The report cannot be made: %(reason)s", reason=explain(page, exc))
        return page.render("error.html", 422, message=message)
    document = export.attendance_document(report, tz=page.settings.meetings.default_tz)
    return file_response(*render(document, fmt, EXCEL_VI_CSV))


def occurrence_attendance_or_none(page: Page, occurrence_id: int) -> Any:
    """The attendance of a meeting that has started (figures so far while it runs)."""
    assert page.user is not None
    try:
        meeting_access.visible_occurrence(
            session=page.session, occurrence_id=occurrence_id, scope=page.user.scope
        )
        attendance = occurrence_attendance(
            session=page.session,
            occurrence_id=occurrence_id,
            settings=page.settings,
            now=utcnow(),
            scope=page.user.scope,
        )
    except DomainError:
        page.session.rollback()
        return None
    page.session.commit()
    return attendance


@router.get("/occurrences/{occurrence_id}/attendance.{fmt}")
def occurrence_attendance_file(page: UserPage, occurrence_id: str, fmt: str) -> Response:
    parsed = int(occurrence_id) if occurrence_id.isdigit() else 0
    attendance = (
        occurrence_attendance_or_none(page, parsed)
        if fmt in DOWNLOAD_FORMATS and 1 <= parsed <= 2**63 - 1
        else None
    )
    if attendance is None:
        return page.render("error.html", 404, message=page._("This page does not exist."))
    document = attendance_export.occurrence_attendance_document(
        attendance, tz=page.settings.meetings.default_tz, generated_at=utcnow()
    )
    return file_response(*render(document, fmt, EXCEL_VI_CSV))
