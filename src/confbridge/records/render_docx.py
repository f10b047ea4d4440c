"""Draw an `AdminDocument` as DOCX (A4), in Times New Roman as NĐ 30/2020 asks.

The header and the signature rows are tables without borders, as the secretariats' own
templates do it, so that the document stays editable in any word processor.
"""

from __future__ import annotations

import io

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Mm, Pt
from docx.table import _Cell
from docx.text.paragraph import Paragraph as DocxParagraph

from confbridge.records.layout import MOTTO, NATIONAL_NAME, AdminDocument

FONT = "Times New Roman"
BODY_PT, HEADER_PT = 13, 12


def render(document: AdminDocument) -> bytes:
    """The DOCX bytes of `document`."""
    doc = Document()
    section = doc.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    style = doc.styles["Normal"]
    style.font.name = FONT
    style.font.size = Pt(BODY_PT)
    # East Asian and complex-script runs take their own font attribute.
    style.element.rPr.rFonts.set(qn("w:eastAsia"), FONT)
    style.paragraph_format.space_after = Pt(0)
    doc.core_properties.title = document.file_title

    header = doc.add_table(rows=1, cols=2)
    header.alignment = WD_TABLE_ALIGNMENT.CENTER
    left, right = header.rows[0].cells
    left.width, right.width = Mm(70), Mm(95)
    first = True
    if document.parent_body:
        _centred(left, document.parent_body.upper(), size=HEADER_PT, first=first)
        first = False
    _centred(left, document.issuing_body.upper(), bold=True, size=HEADER_PT, first=first)
    _centred(left, "―――――", size=8)
    _centred(left, document.number_line)
    _centred(right, NATIONAL_NAME, bold=True, size=HEADER_PT, first=True)
    _centred(right, MOTTO, bold=True)
    _centred(right, "―――――――――――", size=8)
    _centred(right, document.place_date, italic=True)

    doc.add_paragraph()
    _paragraph(doc.add_paragraph(), document.kind, bold=True, size=14, centre=True)
    if document.summary:
        _paragraph(doc.add_paragraph(), document.summary, bold=True, centre=True)
    doc.add_paragraph()
    for index, recipient in enumerate(document.recipients):
        paragraph = doc.add_paragraph()
        paragraph.paragraph_format.left_indent = Mm(20)
        _paragraph(paragraph, ("Kính gửi: " if index == 0 else "              ") + recipient)
    for item in document.body:
        paragraph = doc.add_paragraph()
        paragraph.paragraph_format.space_after = Pt(4)
        paragraph.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
        if item.indented:
            paragraph.paragraph_format.left_indent = Mm(10)
        if item.bullet:
            _run(paragraph, "- ")
        if item.label:
            _run(paragraph, item.label + " ", bold=True)
        _run(paragraph, item.text)

    doc.add_paragraph()
    footer = doc.add_table(rows=1, cols=2)
    copies, signature = footer.rows[0].cells
    _paragraph(copies.paragraphs[0], "Nơi nhận:", bold=True, italic=True, size=HEADER_PT)
    for line in document.copies_to:
        _paragraph(copies.add_paragraph(), f"- {line}", size=11)
    first = True
    for line in document.signer_title:
        _centred(signature, line, bold=True, first=first)
        first = False
    for _ in range(4):  # room for the signature and the seal
        signature.add_paragraph()
    _centred(signature, document.signer_name, bold=True)

    buffer = io.BytesIO()
    doc.save(buffer)
    return buffer.getvalue()


def _run(paragraph: DocxParagraph, text: str, **style: object) -> None:
    run = paragraph.add_run(text)
    run.font.name = FONT
    run.bold = bool(style.get("bold"))
    run.italic = bool(style.get("italic"))
    size = style.get("size")
    if isinstance(size, int | float):
        run.font.size = Pt(size)


def _paragraph(
    paragraph: DocxParagraph,
    text: str,
    *,
    bold: bool = False,
    italic: bool = False,
    size: float = BODY_PT,
    centre: bool = False,
) -> None:
    if centre:
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _run(paragraph, text, bold=bold, italic=italic, size=size)


def _centred(
    cell: _Cell,
    text: str,
    *,
    bold: bool = False,
    italic: bool = False,
    size: float = BODY_PT,
    first: bool = False,
) -> None:
    """A centred line in a table cell; the cell's own empty first paragraph is used first."""
    paragraph = cell.paragraphs[0] if first else cell.add_paragraph()
    _paragraph(paragraph, text, bold=bold, italic=italic, size=size, centre=True)
