"""Draw an `AdminDocument` as PDF (A4) with an embedded serif font that has Vietnamese glyphs.

The font is DejaVu Serif Condensed, shipped in `fonts/` (Bitstream Vera licence, see
fonts/LICENSE): fpdf2 embeds the subset a document uses, so any reader shows the diacritics.
Sizes and margins follow NĐ 30/2020 (13-14 pt body text; margins 20-25 mm top and bottom,
30-35 mm left, 15-20 mm right).
"""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from confbridge.records.layout import MOTTO, NATIONAL_NAME, AdminDocument

FONT_DIR = Path(__file__).parent / "fonts"
FONT = "DejaVuSerifCondensed"
FONT_FILES = {"": "", "B": "-Bold", "I": "-Italic", "BI": "-BoldItalic"}
MARGIN_TOP_MM, MARGIN_LEFT_MM, MARGIN_RIGHT_MM, MARGIN_BOTTOM_MM = 20, 30, 15, 20
LEFT_COLUMN_MM = 70  # issuing body and number; the motto takes the rest of the line
BODY_PT, HEADER_PT = 13, 12
LINE_MM = 6.5


class _Pdf(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_margins(MARGIN_LEFT_MM, MARGIN_TOP_MM, MARGIN_RIGHT_MM)
        self.set_auto_page_break(auto=True, margin=MARGIN_BOTTOM_MM)
        for style, suffix in FONT_FILES.items():
            self.add_font(FONT, style, str(FONT_DIR / f"{FONT}{suffix}.ttf"))

    def text_block(
        self, x: float, width: float, text: str, style: str = "", size: float = BODY_PT
    ) -> None:
        self.set_xy(x, self.get_y())
        self.set_font(FONT, style, size)
        self.multi_cell(width, LINE_MM, text, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def rule(self, x_centre: float, length: float) -> None:
        y = self.get_y() + 0.5
        self.line(x_centre - length / 2, y, x_centre + length / 2, y)
        self.set_y(y + 1.5)


def render(document: AdminDocument) -> bytes:
    """The PDF bytes of `document`."""
    pdf = _Pdf()
    pdf.set_title(document.file_title)
    pdf.set_creator("ConfBridge")
    pdf.add_page()
    _header(pdf, document)
    _title(pdf, document)
    _body(pdf, document)
    _footer(pdf, document)
    return bytes(pdf.output())


def _header(pdf: _Pdf, document: AdminDocument) -> None:
    left, top = pdf.l_margin, pdf.get_y()
    right_x = left + LEFT_COLUMN_MM
    right_width = pdf.w - pdf.r_margin - right_x
    if document.parent_body:
        pdf.text_block(left, LEFT_COLUMN_MM, document.parent_body.upper(), "", HEADER_PT)
    pdf.text_block(left, LEFT_COLUMN_MM, document.issuing_body.upper(), "B", HEADER_PT)
    pdf.rule(left + LEFT_COLUMN_MM / 2, 20)
    pdf.text_block(left, LEFT_COLUMN_MM, document.number_line, "", BODY_PT)
    left_end = pdf.get_y()
    pdf.set_y(top)
    pdf.text_block(right_x, right_width, NATIONAL_NAME, "B", HEADER_PT)
    pdf.text_block(right_x, right_width, MOTTO, "B", BODY_PT)
    pdf.rule(right_x + right_width / 2, pdf.get_string_width(MOTTO))
    pdf.set_y(pdf.get_y() + 2)
    pdf.text_block(right_x, right_width, document.place_date, "I", BODY_PT)
    pdf.set_y(max(left_end, pdf.get_y()) + 6)


def _title(pdf: _Pdf, document: AdminDocument) -> None:
    width = pdf.epw
    pdf.text_block(pdf.l_margin, width, document.kind, "B", 14)
    if document.summary:
        pdf.text_block(pdf.l_margin, width, document.summary, "B", BODY_PT)
    pdf.set_y(pdf.get_y() + 4)
    if document.recipients:
        pdf.set_font(FONT, "", BODY_PT)
        label = "Kính gửi: "
        indent = pdf.get_string_width(label)
        pdf.set_x(pdf.l_margin + 20)
        pdf.cell(indent, LINE_MM, label)
        for recipient in document.recipients:
            pdf.set_x(pdf.l_margin + 20 + indent)
            pdf.multi_cell(
                pdf.epw - 20 - indent, LINE_MM, recipient, new_x=XPos.LMARGIN, new_y=YPos.NEXT
            )
        pdf.set_y(pdf.get_y() + 3)


def _body(pdf: _Pdf, document: AdminDocument) -> None:
    for paragraph in document.body:
        indent = 10 if paragraph.indented else 0
        # write() flows text from the current position: the left margin sets the indent.
        pdf.set_left_margin(MARGIN_LEFT_MM + indent)
        pdf.set_x(pdf.l_margin)
        if paragraph.bullet:
            pdf.set_font(FONT, "", BODY_PT)
            pdf.write(LINE_MM, "- ")
        if paragraph.label:
            pdf.set_font(FONT, "B", BODY_PT)
            pdf.write(LINE_MM, paragraph.label + " ")
        pdf.set_font(FONT, "", BODY_PT)
        pdf.write(LINE_MM, paragraph.text)
        pdf.ln(LINE_MM + 1.5)
    pdf.set_left_margin(MARGIN_LEFT_MM)


def _footer(pdf: _Pdf, document: AdminDocument) -> None:
    pdf.set_y(pdf.get_y() + 4)
    if pdf.get_y() > pdf.h - MARGIN_BOTTOM_MM - 50:
        pdf.add_page()  # the signature block is never split from "Nơi nhận"
    top = pdf.get_y()
    left = pdf.l_margin
    half = pdf.epw / 2
    pdf.set_xy(left, top)
    pdf.set_font(FONT, "BI", HEADER_PT)
    pdf.cell(half, 5.5, "Nơi nhận:", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 11)
    for line in document.copies_to:
        pdf.set_x(left)
        pdf.multi_cell(half, 5, f"- {line}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    left_end = pdf.get_y()
    pdf.set_y(top)
    for line in document.signer_title:
        pdf.text_block(left + half, half, line, "B", BODY_PT)
    pdf.set_y(pdf.get_y() + 22)  # room for the signature and the seal
    pdf.text_block(left + half, half, document.signer_name, "B", BODY_PT)
    pdf.set_y(max(left_end, pdf.get_y()))
