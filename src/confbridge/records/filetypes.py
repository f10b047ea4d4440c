"""What a document is, told by its content (magic bytes, the OOXML package), never its name."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from confbridge.errors import Invalid

PDF_MAGIC = b"%PDF-"
ZIP_MAGIC = b"PK\x03\x04"
# The main part's content type in [Content_Types].xml (ECMA-376 Part 2) names the kind.
OOXML_MAIN_TYPES = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": "pptx",
}
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
# [Content_Types].xml is a few kilobytes; reading more of a crafted package is refused.
MAX_CONTENT_TYPES_BYTES = 1 << 20
_CONTENT_TYPE = re.compile(rb'ContentType="([^"]+)"')
ALLOWED = "PDF, DOCX, XLSX or PPTX"


def sniff(path: Path) -> str:
    """The kind of the file at `path` (pdf, docx, xlsx, pptx), or Invalid."""
    with path.open("rb") as file:
        head = file.read(8)
    if head.startswith(PDF_MAGIC):
        return "pdf"
    if head.startswith(ZIP_MAGIC):
        return _ooxml_kind(path)
    raise Invalid(f"file: not a {ALLOWED} document (its content says otherwise)")


def _ooxml_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as package:
            info = package.getinfo("[Content_Types].xml")
            if info.file_size > MAX_CONTENT_TYPES_BYTES:
                raise Invalid("file: the document's package is malformed")
            with package.open(info) as part:
                types = part.read(MAX_CONTENT_TYPES_BYTES + 1)
    except (zipfile.BadZipFile, KeyError, OSError, RuntimeError, NotImplementedError):
        raise Invalid(f"file: a ZIP archive, not a {ALLOWED} document") from None
    kinds = {
        OOXML_MAIN_TYPES[t.decode()]
        for t in _CONTENT_TYPE.findall(types)
        if t.decode(errors="replace") in OOXML_MAIN_TYPES
    }
    if len(kinds) != 1:
        raise Invalid(
            f"file: an Office package that is not a {ALLOWED} document "
            "(macro-enabled or other kinds are refused)"
        )
    return kinds.pop()
