"""A PDF document's pages as PNG images for the halls' screens, drawn with PDFium (pypdfium2)
and kept beside the document's bytes, so each page is drawn once.

Bounded work: at most `MAX_PAGES` pages of a document are shown, each drawn at `DPI` but never
more than `MAX_SIDE_PX` on its longer side (a poster-sized page is scaled down).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import pypdfium2 as pdfium

from confbridge.errors import Invalid, NotFound
from confbridge.records.models import Document
from confbridge.records.storage import DocumentStore

DPI = 150  # an A4 page: 1241 × 1755 px, sharp on a 1080p screen with room to zoom
MAX_SIDE_PX = 2000
MAX_PAGES = 300
POINTS_PER_INCH = 72
# Drawing parameters are part of the cached files' names: changing them draws pages anew.
RENDER_TAG = f"{DPI}dpi-{MAX_SIDE_PX}px"
# PDFium is not thread-safe: one document is opened or drawn at a time in this process.
_PDFIUM = threading.Lock()


@dataclass(frozen=True)
class PageSize:
    width: int
    height: int


@dataclass(frozen=True)
class PageIndex:
    """How many pages a document has, how many are shown, and their sizes in pixels."""

    total_pages: int
    pages: list[PageSize]


def _scale(width_pt: float, height_pt: float) -> float:
    # a hair under the bound: the renderer rounds up, and 2000.0000001 px would be 2001
    cap = (MAX_SIDE_PX - 0.01) / max(width_pt, height_pt, 1.0)
    return min(DPI / POINTS_PER_INCH, cap)


def _pixels(width_pt: float, height_pt: float) -> PageSize:
    # PDFium's renderer rounds a page's size in pixels up, as here
    scale = _scale(width_pt, height_pt)
    return PageSize(max(1, math.ceil(width_pt * scale)), max(1, math.ceil(height_pt * scale)))


def _open(path: Path, document_id: int) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError:
        raise Invalid(
            f"document {document_id} cannot be shown page by page: "
            "the PDF is damaged or protected by a password"
        ) from None


def _write_atomically(target: Path, data: bytes) -> None:
    part = target.with_name(f".{secrets.token_hex(8)}.part")
    part.write_bytes(data)
    os.replace(part, target)


def _pdf_path(store: DocumentStore, document: Document) -> Path:
    if document.kind != "pdf":
        raise NotFound(
            f"document {document.id} has no pages to show: "
            "only PDF documents are shown page by page"
        )
    path = store.path(document.storage_key)
    if not path.is_file():
        raise NotFound(f"document {document.id} is missing from the store")
    return path


def page_index(store: DocumentStore, document: Document) -> PageIndex:
    """The document's pages (the first `MAX_PAGES`) and their sizes once drawn."""
    path = _pdf_path(store, document)
    cache = store.pages_dir(document.storage_key) / f"index-{RENDER_TAG}-{MAX_PAGES}.json"
    if cache.is_file():
        stored = json.loads(cache.read_text())
        return PageIndex(stored["total_pages"], [PageSize(**p) for p in stored["pages"]])
    with _PDFIUM:
        pdf = _open(path, document.id)
        try:
            total = len(pdf)
            sizes = [_pixels(*pdf[i].get_size()) for i in range(min(total, MAX_PAGES))]
        finally:
            pdf.close()
    index = PageIndex(total, sizes)
    cache.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(cache, json.dumps(asdict(index)).encode())
    return index


def page_png(store: DocumentStore, document: Document, number: int) -> Path:
    """The PNG file of page `number` (1-based) of the document, drawn if not drawn yet."""
    index = page_index(store, document)
    if not 1 <= number <= len(index.pages):
        shown = len(index.pages)
        raise NotFound(f"document {document.id} has no page {number} to show (1 to {shown})")
    target = store.pages_dir(document.storage_key) / f"page-{number}-{RENDER_TAG}.png"
    if target.is_file():
        return target
    with _PDFIUM:
        if target.is_file():  # drawn meanwhile by another request
            return target
        pdf = _open(_pdf_path(store, document), document.id)
        try:
            page = pdf[number - 1]
            bitmap = page.render(scale=_scale(*page.get_size()))
            image = bitmap.to_pil()
        finally:
            pdf.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{secrets.token_hex(8)}.part")
    image.save(part, format="PNG")
    os.replace(part, target)
    return target
