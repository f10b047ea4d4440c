"""A PDF document's pages as PNG images for the halls' screens, drawn with PDFium (pypdfium2)
and kept beside the document's bytes, so each page is drawn once.

Bounded work: at most `MAX_PAGES` pages of a document are shown, each drawn at `DPI` but never
more than `MAX_SIDE_PX` on its longer side (a poster-sized page is scaled down). PDFium runs in
a process of its own for each call (`pdf_render`), with `RENDER_MEMORY_MB` of address space
and `RENDER_TIMEOUT_S`, at most `MAX_RENDERS` at a time: an uploaded PDF that crashes or hangs
PDFium is refused (422) without touching the control plane.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from confbridge.errors import Invalid, NotFound
from confbridge.records.models import Document
from confbridge.records.pdf_render import UNREADABLE, scale_for
from confbridge.records.storage import DocumentStore

log = logging.getLogger(__name__)

DPI = 150  # an A4 page: 1241 × 1755 px, sharp on a 1080p screen with room to zoom
MAX_SIDE_PX = 2000
MAX_PAGES = 300
# Drawing parameters are part of the cached files' names: changing them draws pages anew.
RENDER_TAG = f"{DPI}dpi-{MAX_SIDE_PX}px"
RENDER_TIMEOUT_S = 30.0
RENDER_MEMORY_MB = 1024
MAX_RENDERS = 2  # processes drawing at once (each takes a core while it runs)
_RENDERS = threading.BoundedSemaphore(MAX_RENDERS)


@dataclass(frozen=True)
class PageSize:
    width: int
    height: int


@dataclass(frozen=True)
class PageIndex:
    """How many pages a document has, how many are shown, and their sizes in pixels."""

    total_pages: int
    pages: list[PageSize]


def _pixels(width_pt: float, height_pt: float) -> PageSize:
    # PDFium's renderer rounds a page's size in pixels up, as here
    scale = scale_for(width_pt, height_pt, DPI, MAX_SIDE_PX)
    return PageSize(max(1, math.ceil(width_pt * scale)), max(1, math.ceil(height_pt * scale)))


def _render(document_id: int, command: str, *arguments: str) -> str:
    """Run PDFium in its own process (`pdf_render`); its stdout, or a 422 saying why not."""
    call = [sys.executable, "-m", "confbridge.records.pdf_render", command, *arguments]
    try:
        done = subprocess.run(
            [*call, str(RENDER_MEMORY_MB)],
            capture_output=True,
            text=True,
            timeout=RENDER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        log.warning("document %s: PDFium took over %s s, stopped", document_id, RENDER_TIMEOUT_S)
        raise Invalid(
            f"document {document_id} cannot be shown page by page: drawing it took longer "
            f"than {RENDER_TIMEOUT_S:.0f} s"
        ) from None
    if done.returncode == UNREADABLE:
        raise Invalid(
            f"document {document_id} cannot be shown page by page: "
            "the PDF is damaged or protected by a password"
        )
    if done.returncode != 0:
        log.warning(
            "document %s: PDFium failed (exit %s): %s",
            document_id, done.returncode, done.stderr.strip()[-500:],
        )  # fmt: skip
        raise Invalid(
            f"document {document_id} cannot be shown page by page: the PDF could not be drawn"
        )
    return done.stdout


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
        return _cached_index(cache)
    with _RENDERS:
        if cache.is_file():  # measured meanwhile by another request
            return _cached_index(cache)
        measured = json.loads(_render(document.id, "sizes", str(path), str(MAX_PAGES)))
    sizes = [_pixels(width, height) for width, height in measured["sizes"]]
    index = PageIndex(measured["total_pages"], sizes)
    cache.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(cache, json.dumps(asdict(index)).encode())
    return index


def _cached_index(cache: Path) -> PageIndex:
    stored = json.loads(cache.read_text())
    return PageIndex(stored["total_pages"], [PageSize(**p) for p in stored["pages"]])


def page_png(store: DocumentStore, document: Document, number: int) -> Path:
    """The PNG file of page `number` (1-based) of the document, drawn if not drawn yet."""
    index = page_index(store, document)
    if not 1 <= number <= len(index.pages):
        shown = len(index.pages)
        raise NotFound(f"document {document.id} has no page {number} to show (1 to {shown})")
    target = store.pages_dir(document.storage_key) / f"page-{number}-{RENDER_TAG}.png"
    if target.is_file():
        return target
    path = _pdf_path(store, document)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{secrets.token_hex(8)}.part")
    # many halls open the same page at once: those that waited find it drawn
    with _RENDERS:
        if target.is_file():
            return target
        try:
            arguments = (str(path), str(number), str(DPI), str(MAX_SIDE_PX), str(part))
            _render(document.id, "page", *arguments)
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
    return target
