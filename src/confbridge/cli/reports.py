"""`confbridge report`: the online-meeting ratio and attendance, as a table or a file."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from confbridge.cli.common import clean_errors, current_settings, fail, migrated_session
from confbridge.settings import Settings
from confbridge.timeutil import utcnow

R = TypeVar("R")

app = typer.Typer(
    help="Reports (báo cáo): online-meeting ratio and attendance.", no_args_is_help=True
)

FromOption = Annotated[
    str | None, typer.Option("--from", help="first local date, e.g. 2026-01-01 (default: 1 Jan)")
]
ToOption = Annotated[
    str | None, typer.Option("--to", help="last local date, included (default: today)")
]
UnitOption = Annotated[
    str | None,
    typer.Option("--unit", help="a unit's name ('Quảng Ninh'), code or id; default: all"),
]
FormatOption = Annotated[
    str, typer.Option("--format", help="table (printed), json, csv or xlsx (needs -o)")
]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="write to this file instead of stdout")
]


# Reports are wide; piped or redirected output is not cut at 80 columns.
REPORT_MIN_WIDTH = 160


def _report_console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=REPORT_MIN_WIDTH)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _report_output(output_format: str, output: Path | None, model: Any, document: Any) -> bool:
    """Write `model` as JSON or `document` as CSV/XLSX; False when a table is to be printed."""

    if output_format == "table":
        return False
    if output_format not in ("json", "csv", "xlsx"):
        fail(f"--format: unknown value {output_format!r} (table, json, csv or xlsx)")
    if output_format == "xlsx" and output is None:
        fail("--format xlsx needs --output FILE")
    if output_format == "json":
        body = model.model_dump_json(indent=2).encode()
    else:
        # imported here: workers start through this package, and need no spreadsheet code
        from confbridge import exports

        body = exports.render(document, output_format)[0]
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        output.write_bytes(body)
        typer.echo(f"written to {output}", err=True)
    return True


def _run_report(
    from_: str | None, to: str | None, unit: str | None, make: Callable[..., R]
) -> tuple[Settings, R, str]:
    """Migrate, then `make(session=, period=, unit=, settings=, now=)` for the period and
    unit asked for; returns the settings, the report and the words for the table's title."""
    from confbridge.reports import service as report_service
    from confbridge.timeutil import zone

    settings = current_settings()
    tz = settings.meetings.default_tz
    today = utcnow().astimezone(zone(tz)).date()
    period = report_service.parse_period(from_, to, tz=tz, today=today)
    with migrated_session(settings) as session:
        unit_obj = report_service.find_unit(session=session, query=unit) if unit else None
        report = make(
            session=session, period=period, unit=unit_obj, settings=settings.reports, now=utcnow()
        )
        session.commit()  # attendance computed for the report is kept
        scope = unit_obj.name if unit_obj else "toàn bộ"
    return settings, report, f"{scope} — {period.from_date:%d/%m/%Y}–{period.to_date:%d/%m/%Y}"


@app.command("online-ratio")
@clean_errors
def report_online_ratio(
    from_: FromOption = None,
    to: ToOption = None,
    unit: UnitOption = None,
    group_by: Annotated[str, typer.Option(help="month, quarter, unit or kind")] = "month",
    output_format: FormatOption = "table",
    output: OutputOption = None,
) -> None:
    """Meetings held online / all held, and communes connected, beside the targets."""
    from rich.table import Table

    from confbridge.reports import export
    from confbridge.reports import service as report_service

    grouping = report_service.parse_group_by(group_by)
    settings, report, scope = _run_report(
        from_, to, unit, partial(report_service.online_ratio, group_by=grouping)
    )
    document = export.online_ratio_document(report, tz=settings.meetings.default_tz)
    if _report_output(output_format, output, report, document):
        return
    table = Table(title=f"Tỷ lệ cuộc họp trực tuyến — {scope}")
    table.add_column("", no_wrap=True)
    # booked figures, then those verified on the bridge (media flowed), which targets judge
    headers = (
        "đã họp",
        "trực\ntuyến",
        "kết\nhợp",
        "trực\ntiếp",
        "tỷ lệ",
        "xác minh:\ntrực tuyến",
        "xác minh:\nkết hợp",
        "xác minh:\ntỷ lệ",
        "xã kết\nnối",
    )
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for target in report.total.targets:
        table.add_column(f"{target.key}\n≥ {target.target:.0%}", justify="right", no_wrap=True)
    for row in [*report.rows, report.total]:
        cells = [
            row.label,
            str(row.held),
            str(row.online),
            str(row.hybrid),
            str(row.in_person),
            _percent(row.ratio),
            str(row.online_verified),
            str(row.hybrid_verified),
            _percent(row.ratio_verified),
            f"{row.communes_connected}/{row.communes}",
        ]
        for target in row.targets:
            mark = "" if target.met is None else " ✓" if target.met else " ✗"
            cells.append(_percent(target.actual) + mark)
        table.add_row(*cells, end_section=row is report.rows[-1] if report.rows else False)
    console = _report_console()
    console.print(table)
    for target in report.total.targets:
        verdict = "—" if target.met is None else "đạt" if target.met else "không đạt"
        console.print(
            f"{target.label_vi} / {target.label_en}: {_percent(target.actual)} "
            f"({target.numerator}/{target.denominator}), chỉ tiêu ≥ {target.target:.0%}: {verdict}",
            soft_wrap=True,
        )


@app.command("attendance")
@clean_errors
def report_attendance(
    from_: FromOption = None,
    to: ToOption = None,
    unit: UnitOption = None,
    output_format: FormatOption = "table",
    output: OutputOption = None,
) -> None:
    """Attendance per site: invited, present, partial, absent, late, left early, rate."""
    from rich.table import Table

    from confbridge.reports import export, site_attendance

    settings, report, scope = _run_report(from_, to, unit, site_attendance.attendance)
    document = export.attendance_document(report, tz=settings.meetings.default_tz)
    if _report_output(output_format, output, report, document):
        return
    table = Table(title=f"Tỷ lệ tham dự — {scope}")
    table.add_column("điểm cầu", no_wrap=True)
    for header in ("mời", "có mặt", "một phần", "vắng", "điều chỉnh", "muộn", "về sớm", "tỷ lệ"):
        table.add_column(header, justify="right")
    for row in report.rows:
        table.add_row(
            row.site_name,
            str(row.invited),
            str(row.present),
            str(row.partial),
            str(row.absent),
            str(row.corrected),
            str(row.joined_late),
            str(row.left_early),
            _percent(row.rate),
        )
    console = _report_console()
    console.print(table)
    console.print(
        f"{report.occurrences} cuộc họp; {report.present}/{report.invited} lượt có mặt "
        f"({_percent(report.rate)}), {report.partial} một phần, {report.absent} vắng"
    )
