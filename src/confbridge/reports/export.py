"""Reports as CSV and XLSX: Vietnamese headers, dates as dates, ratios as percentages.

A report becomes one or more `Table`s; `to_csv` writes the first, `to_xlsx` a sheet each (plus
a sheet saying what the report covers). Instants are shown as local wall-clock time.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from confbridge.attendance.schemas import OccurrenceAttendance
from confbridge.meetings.recurrence import zone
from confbridge.reports.schemas import AttendanceReport, OnlineRatioReport, UnitRef

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DATE_FORMAT = "dd/mm/yyyy"
DATETIME_FORMAT = "dd/mm/yyyy hh:mm"
RATIO_FORMAT = "0.0%"
NUMBER_FORMAT = "0.0"
SHEET_TITLE_MAX = 31  # Excel's limit
YES, NO = "Có", "Không"
MET, NOT_MET, NO_DATA = "Đạt", "Không đạt", "—"
STATUS_LABELS = {"present": "Có mặt", "partial": "Tham dự một phần", "absent": "Vắng mặt"}
MODE_LABELS = {"online": "Trực tuyến", "in_person": "Trực tiếp", "hybrid": "Kết hợp"}
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
# A cell starting with one of these is read as a formula by spreadsheets (OWASP, CSV injection):
# a site named "=HYPERLINK(...)" must stay a name.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class Kind(StrEnum):
    text = "text"
    integer = "integer"
    number = "number"
    ratio = "ratio"  # 0..1, shown as a percentage
    date = "date"
    datetime = "datetime"  # an aware instant, shown in the report's zone


@dataclass(frozen=True)
class Column:
    header: str
    kind: Kind = Kind.text
    width: int = 14


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class Document:
    """Tables plus what they cover (period, unit, when made), in the report's zone."""

    name: str
    tables: list[Table]
    info: list[tuple[str, Any]]
    tz: str


def _local(value: datetime, tz: str) -> datetime:
    return value.astimezone(zone(tz)).replace(tzinfo=None)


def _inert(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula, with a leading apostrophe (OWASP): the
    apostrophe tells the spreadsheet that what follows is text."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _csv_value(value: Any, kind: Kind, tz: str) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return _inert(value)
    if kind is Kind.ratio:
        return f"{value * 100:.2f}"
    if kind is Kind.datetime:
        return f"{_local(value, tz):%Y-%m-%d %H:%M}"
    if isinstance(value, date):
        return value.isoformat()
    return value


def to_csv(document: Document) -> bytes:
    """The first table as CSV (UTF-8 with a byte-order mark, so spreadsheets see UTF-8)."""
    table = document.tables[0]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(
        [_inert(c.header + (" (%)" if c.kind is Kind.ratio else "")) for c in table.columns]
    )
    for row in table.rows:
        writer.writerow(
            [_csv_value(v, c.kind, document.tz) for v, c in zip(row, table.columns, strict=True)]
        )
    return buffer.getvalue().encode("utf-8-sig")


def _xlsx_value(value: Any, kind: Kind, tz: str) -> Any:
    if kind is Kind.datetime and value is not None:
        return _local(value, tz)
    return value


def _as_text(cells: Any) -> None:
    """Store text cells as text: openpyxl takes a string starting with '=' for a formula, and a
    spreadsheet re-reads a typed '+', '-' or '@' as one when the cell is edited."""
    for cell in cells:
        if isinstance(cell.value, str) and cell.value.startswith(FORMULA_PREFIXES):
            cell.data_type = "s"
            cell.quotePrefix = True


def to_xlsx(document: Document) -> bytes:
    """A workbook: a sheet per table, typed cells, a frozen header row, then the cover sheet."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    bold = Font(bold=True)
    for table in document.tables:
        sheet = workbook.create_sheet(table.title[:SHEET_TITLE_MAX])
        sheet.append([c.header for c in table.columns])
        _as_text(sheet[1])
        for cell in sheet[1]:
            cell.font, cell.fill = bold, HEADER_FILL
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for row in table.rows:
            sheet.append(
                [
                    _xlsx_value(v, c.kind, document.tz)
                    for v, c in zip(row, table.columns, strict=True)
                ]
            )
            _as_text(sheet[sheet.max_row])
        for index, column in enumerate(table.columns, start=1):
            letter = get_column_letter(index)
            sheet.column_dimensions[letter].width = column.width
            number_format = {
                Kind.ratio: RATIO_FORMAT,
                Kind.date: DATE_FORMAT,
                Kind.datetime: DATETIME_FORMAT,
                Kind.number: NUMBER_FORMAT,
            }.get(column.kind)
            if number_format is None:
                continue
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = number_format
        sheet.freeze_panes = "A2"
        if table.rows:
            sheet.auto_filter.ref = sheet.dimensions
    cover = workbook.create_sheet("Thông tin")
    for label, value in document.info:
        cover.append([label, value])
        _as_text(cover[cover.max_row])
        cover.cell(cover.max_row, 1).font = bold
        if isinstance(value, date) and not isinstance(value, datetime):
            cover.cell(cover.max_row, 2).number_format = DATE_FORMAT
        elif isinstance(value, datetime):
            cover.cell(cover.max_row, 2).value = _local(value, document.tz)
            cover.cell(cover.max_row, 2).number_format = DATETIME_FORMAT
    cover.column_dimensions["A"].width = 22
    cover.column_dimensions["B"].width = 40
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _met(value: bool | None) -> str:
    return NO_DATA if value is None else MET if value else NOT_MET


def _yes(value: bool) -> str:
    return YES if value else NO


def _unit_label(unit: UnitRef | None) -> str:
    return unit.name if unit else "Toàn quốc"


# --- the reports as tables -----------------------------------------------------------------------


def online_ratio_document(report: OnlineRatioReport, *, tz: str) -> Document:
    group_header = {
        "month": "Tháng",
        "quarter": "Quý",
        "unit": "Đơn vị",
        "kind": "Loại cuộc họp",
    }[report.group_by.value]
    columns = [
        Column(group_header, width=24),
        Column("Số cuộc họp đã tổ chức", Kind.integer),
        Column("Trực tuyến (theo lịch)", Kind.integer, 11),
        Column("Kết hợp (theo lịch)", Kind.integer, 10),
        Column("Trực tiếp", Kind.integer, 10),
        Column("Tỷ lệ trực tuyến (theo lịch)", Kind.ratio, 12),
        Column("Trực tuyến (đã xác minh)", Kind.integer, 11),
        Column("Kết hợp (đã xác minh)", Kind.integer, 10),
        Column("Tỷ lệ trực tuyến (đã xác minh)", Kind.ratio, 12),
        Column("Số xã, phường", Kind.integer, 11),
        Column("Số xã, phường đã kết nối", Kind.integer),
    ]
    for target in report.total.targets:
        columns += [
            Column(f"{target.label_vi}: thực tế", Kind.ratio, 18),
            Column(f"{target.label_vi}: chỉ tiêu", Kind.ratio, 18),
            Column(f"{target.label_vi}: đánh giá", width=18),
        ]
    main = Table("Tỷ lệ họp trực tuyến", columns)
    for row in [*report.rows, report.total]:
        cells: list[Any] = [
            row.label,
            row.held,
            row.online,
            row.hybrid,
            row.in_person,
            row.ratio,
            row.online_verified,
            row.hybrid_verified,
            row.ratio_verified,
            row.communes,
            row.communes_connected,
        ]
        for target in row.targets:
            cells += [target.actual, target.target, _met(target.met)]
        main.rows.append(cells)
    targets = _targets_table(report)
    info = [
        ("Báo cáo", "Tỷ lệ cuộc họp trực tuyến"),
        ("Từ ngày", report.from_date),
        ("Đến ngày", report.to_date),
        ("Đơn vị", _unit_label(report.unit)),
        ("Nhóm theo", group_header),
        (
            "Đã xác minh",
            "cuộc họp trực tuyến hoặc kết hợp có điểm cầu chủ trì và ít nhất một điểm cầu "
            "khác có tín hiệu hình, tiếng trong đủ thời gian quy định; chỉ tiêu tính theo "
            "số đã xác minh",
        ),
        ("Lập lúc", report.generated_at),
    ]
    name = f"ty-le-truc-tuyen_{report.from_date}_{report.to_date}"
    return Document(name, [main, targets], info, tz)


def _targets_table(report: OnlineRatioReport) -> Table:
    """The targets of the whole report (its total row): how each is reckoned and whether it
    is met."""
    targets = Table(
        "Chỉ tiêu",
        [
            Column("Chỉ tiêu", width=48),
            Column("Target (English)", width=40),
            Column("Loại cuộc họp", width=24),
            Column("Tử số", Kind.integer, 10),
            Column("Mẫu số", Kind.integer, 10),
            Column("Thực tế", Kind.ratio, 10),
            Column("Chỉ tiêu tối thiểu", Kind.ratio, 12),
            Column("Đánh giá", width=12),
        ],
    )
    for target in report.total.targets:
        targets.rows.append(
            [
                target.label_vi,
                target.label_en,
                ", ".join(target.kinds) or "xã, phường, đặc khu",
                target.numerator,
                target.denominator,
                target.actual,
                target.target,
                _met(target.met),
            ]
        )
    return targets


def attendance_document(report: AttendanceReport, *, tz: str) -> Document:
    table = Table(
        "Tỷ lệ tham dự",
        [
            Column("Điểm cầu", width=40),
            Column("Đơn vị", width=28),
            Column("Số cuộc họp được mời", Kind.integer),
            Column("Có mặt", Kind.integer, 10),
            Column("Tham dự một phần", Kind.integer),
            Column("Vắng mặt", Kind.integer, 10),
            Column("Đã điều chỉnh", Kind.integer, 12),
            Column("Đến muộn", Kind.integer, 10),
            Column("Về sớm", Kind.integer, 10),
            Column("Số phút kết nối", Kind.number),
            Column("Tỷ lệ có mặt", Kind.ratio, 12),
        ],
    )
    for row in report.rows:
        table.rows.append(
            [
                row.site_name,
                row.unit_name,
                row.invited,
                row.present,
                row.partial,
                row.absent,
                row.corrected,
                row.joined_late,
                row.left_early,
                row.connected_min,
                row.rate,
            ]
        )
    info = [
        ("Báo cáo", "Tỷ lệ tham dự theo điểm cầu"),
        ("Từ ngày", report.from_date),
        ("Đến ngày", report.to_date),
        ("Đơn vị", _unit_label(report.unit)),
        ("Số cuộc họp đã tổ chức", report.occurrences),
        ("Tỷ lệ có mặt chung", f"{report.rate:.1%}" if report.rate is not None else NO_DATA),
        ("Lập lúc", report.generated_at),
    ]
    name = f"tham-du_{report.from_date}_{report.to_date}"
    return Document(name, [table], info, tz)


def occurrence_attendance_document(
    attendance: OccurrenceAttendance, *, tz: str, generated_at: datetime
) -> Document:
    table = Table(
        "Điểm danh",
        [
            Column("Điểm cầu", width=40),
            Column("Đơn vị", width=28),
            Column("Chủ trì", width=9),
            Column("Trạng thái", width=18),
            Column("Trạng thái theo kết nối", width=18),
            Column("Số phút kết nối", Kind.number),
            Column("Tỷ lệ thời gian kết nối", Kind.ratio),
            Column("Số phút có tín hiệu", Kind.number),
            Column("Tỷ lệ thời gian có tín hiệu", Kind.ratio),
            Column("Vào lúc", Kind.datetime, 17),
            Column("Rời lúc", Kind.datetime, 17),
            Column("Lý do rời", width=20),
            Column("Số lần kết nối lại", Kind.integer),
            Column("Đến muộn", width=10),
            Column("Về sớm", width=10),
            Column("RTT trung vị (ms)", Kind.number),
            Column("Mất gói lớn nhất", Kind.ratio),
            Column("Lý do điều chỉnh", width=36),
        ],
    )
    for record in attendance.records:
        table.rows.append(
            [
                record.site_name,
                record.unit_name,
                _yes(record.is_chair),
                STATUS_LABELS[record.status.value],
                STATUS_LABELS[record.computed_status.value],
                record.connected_min,
                record.connected_ratio,
                record.media_min,
                record.media_ratio,
                record.first_join_at,
                record.last_leave_at,
                record.last_leave_reason,
                record.reconnects,
                _yes(record.joined_late),
                _yes(record.left_early),
                record.rtt_median_ms,
                record.loss_max,
                record.correction.reason if record.correction else None,
            ]
        )
    summary = attendance.summary
    info: list[tuple[str, Any]] = [
        ("Cuộc họp", attendance.title),
        ("Ngày", attendance.local_date),
        ("Bắt đầu", attendance.start_at),
        ("Kết thúc", attendance.end_at),
        ("Hình thức", MODE_LABELS[attendance.mode.value]),
        ("Số điểm cầu được mời", summary.invited),
        ("Có mặt", summary.present),
        ("Tham dự một phần", summary.partial),
        ("Vắng mặt", summary.absent),
        ("Lập lúc", generated_at),
    ]
    name = f"diem-danh_{attendance.occurrence_id}_{attendance.local_date}"
    return Document(name, [table], info, tz)


def render(document: Document, export_format: str) -> tuple[bytes, str, str]:
    """Bytes, media type and file name of a document as CSV or XLSX."""
    if export_format == "csv":
        return to_csv(document), CSV_MEDIA_TYPE, f"{document.name}.csv"
    return to_xlsx(document), XLSX_MEDIA_TYPE, f"{document.name}.xlsx"
