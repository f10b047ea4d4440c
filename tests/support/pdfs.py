"""Real PDF files for the meeting record's tests, made with fpdf2, and the size in pixels
a page of them has once drawn for a hall's screen."""

from __future__ import annotations

import math

from fpdf import FPDF

from confbridge.records import pdf_pages

MM_PER_INCH = 25.4
A4_MM = (210.0, 297.0)


def multi_page_pdf(pages: int = 3, *, landscape: frozenset[int] = frozenset({2})) -> bytes:
    """An A4 PDF of `pages` pages, each with its number in large letters; the pages numbered
    in `landscape` (1-based) are turned sideways."""
    pdf = FPDF(unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    for number in range(1, pages + 1):
        pdf.add_page(orientation="L" if number in landscape else "P")
        pdf.set_font("Helvetica", style="B", size=96)
        pdf.set_xy(20, 40)
        pdf.cell(text=f"Trang {number}")
        pdf.set_fill_color(0, 0, 0)
        pdf.rect(20, 120, 100, 20, style="F")  # a black bar: something to find in the image
    return bytes(pdf.output())


def sized_pdf(width_mm: float, height_mm: float) -> bytes:
    """A one-page PDF of the given page size (a poster, a strip...)."""
    pdf = FPDF(unit="mm", format=(width_mm, height_mm))
    pdf.add_page()
    return bytes(pdf.output())


def drawn_size(width_mm: float, height_mm: float) -> tuple[int, int]:
    """The size in pixels of a page of this size drawn for a hall's screen (150 dpi, the
    longer side at most 2000 px)."""
    width_in, height_in = width_mm / MM_PER_INCH, height_mm / MM_PER_INCH
    dpi = min(pdf_pages.DPI, pdf_pages.MAX_SIDE_PX / max(width_in, height_in))
    return math.ceil(width_in * dpi - 1e-6), math.ceil(height_in * dpi - 1e-6)
