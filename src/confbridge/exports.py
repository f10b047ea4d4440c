"""Files people download: CSV and XLSX documents, and the `?format=` that asks for one.

A report becomes one or more `Table`s; `to_csv` writes the first, `to_xlsx` a sheet each (plus
a sheet saying what the report covers): Vietnamese headers, dates as dates, ratios as
percentages, instants as local wall-clock time. The API's attendance and reports, the web
console and the CLI all export through here.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Query, Response
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from confbridge.errors import Invalid
from confbridge.timeutil import zone

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DATE_FORMAT = "dd/mm/yyyy"
DATETIME_FORMAT = "dd/mm/yyyy hh:mm"
RATIO_FORMAT = "0.0%"
NUMBER_FORMAT = "0.0"
SHEET_TITLE_MAX = 31  # Excel's limit
YES, NO = "Có", "Không"
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
# What an exporting route answers besides JSON, for its OpenAPI description.
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {CSV_MEDIA_TYPE: {}, XLSX_MEDIA_TYPE: {}}}
}
FormatQuery = Annotated[str, Query(alias="format", max_length=10, description="json, csv or xlsx")]


class ExportFormat(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


def parse_format(value: str) -> ExportFormat:
    try:
        return ExportFormat(value.strip().lower())
    except ValueError:
        names = ", ".join(f.value for f in ExportFormat)
        raise Invalid(f"format: unknown value {value!r} (one of {names})") from None


def file_response(body: bytes, media_type: str, filename: str) -> Response:
    """A download: `render`'s bytes, media type and file name."""
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


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


@dataclass(frozen=True)
class CsvDialect:
    """What separates cells and what marks decimals in a CSV file."""

    delimiter: str
    decimal: str


# RFC 4180 for programs reading the API's `format=csv`.
PLAIN_CSV = CsvDialect(delimiter=",", decimal=".")
# Excel in a Vietnamese locale splits cells on its list separator, ';' (',' is its decimal
# mark): a ',' file opens in one column there. The pages' downloads are made for it.
EXCEL_VI_CSV = CsvDialect(delimiter=";", decimal=",")


def _csv_value(value: Any, kind: Kind, tz: str, dialect: CsvDialect) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return _inert(value)
    if kind is Kind.ratio:
        return f"{value * 100:.2f}".replace(".", dialect.decimal)
    if isinstance(value, float):
        return str(value).replace(".", dialect.decimal)
    if kind is Kind.datetime:
        return f"{_local(value, tz):%Y-%m-%d %H:%M}"
    if isinstance(value, date):
        return value.isoformat()
    return value


def to_csv(document: Document, dialect: CsvDialect = PLAIN_CSV) -> bytes:
    """The first table as CSV (UTF-8 with a byte-order mark, so spreadsheets see UTF-8)."""
    table = document.tables[0]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=dialect.delimiter, lineterminator="\r\n")
    writer.writerow(
        [_inert(c.header + (" (%)" if c.kind is Kind.ratio else "")) for c in table.columns]
    )
    for row in table.rows:
        writer.writerow(
            [
                _csv_value(v, c.kind, document.tz, dialect)
                for v, c in zip(row, table.columns, strict=True)
            ]
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
        # rows counted here and cells taken one by one: `sheet.max_row` and `sheet[n]` scan
        # every cell of the sheet, which made big sheets quadratic
        width = len(table.columns)
        for row_number, row in enumerate(table.rows, start=2):
            sheet.append(
                [
                    _xlsx_value(v, c.kind, document.tz)
                    for v, c in zip(row, table.columns, strict=True)
                ]
            )
            _as_text(sheet.cell(row_number, column) for column in range(1, width + 1))
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
    for row_number, (label, value) in enumerate(document.info, start=1):
        cover.append([label, value])
        _as_text(cover.cell(row_number, column) for column in (1, 2))
        cover.cell(row_number, 1).font = bold
        if isinstance(value, date) and not isinstance(value, datetime):
            cover.cell(row_number, 2).number_format = DATE_FORMAT
        elif isinstance(value, datetime):
            cover.cell(row_number, 2).value = _local(value, document.tz)
            cover.cell(row_number, 2).number_format = DATETIME_FORMAT
    cover.column_dimensions["A"].width = 22
    cover.column_dimensions["B"].width = 40
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def yes(value: bool) -> str:
    return YES if value else NO


def render(
    document: Document, export_format: str, csv_dialect: CsvDialect = PLAIN_CSV
) -> tuple[bytes, str, str]:
    """Bytes, media type and file name of a document as CSV or XLSX."""
    if export_format == "csv":
        return to_csv(document, csv_dialect), CSV_MEDIA_TYPE, f"{document.name}.csv"
    return to_xlsx(document), XLSX_MEDIA_TYPE, f"{document.name}.xlsx"
