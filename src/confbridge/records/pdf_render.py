"""PDFium in a process of its own: the control plane asks it for a PDF's page sizes or one page
drawn as PNG (`confbridge.records.pdf_pages`), so a PDF that crashes PDFium, hangs it or eats
memory costs that process only.

    python -m confbridge.records.pdf_render sizes <pdf> <max pages> <memory MB>
        → JSON {"total_pages": n, "sizes": [[width_pt, height_pt], ...]} on stdout
    python -m confbridge.records.pdf_render page <pdf> <number> <dpi> <max side px> <png> \
        <memory MB>

Exit status 0, or `UNREADABLE` when the PDF is damaged or protected by a password.
"""

from __future__ import annotations

import json
import resource
import sys

UNREADABLE = 3
POINTS_PER_INCH = 72


def scale_for(width_pt: float, height_pt: float, dpi: int, max_side_px: int) -> float:
    """Pixels per point for a page drawn at `dpi`, its longer side within `max_side_px`."""
    # a hair under the bound: the renderer rounds up, and 2000.0000001 px would be 2001
    cap = (max_side_px - 0.01) / max(width_pt, height_pt, 1.0)
    return min(dpi / POINTS_PER_INCH, cap)


def _limit_memory(megabytes: int) -> None:
    limit = megabytes << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str]) -> int:
    command, pdf_path = argv[0], argv[1]
    _limit_memory(int(argv[-1]))
    import pypdfium2 as pdfium  # after the limit: PDFium's allocations count

    try:
        pdf = pdfium.PdfDocument(pdf_path)
    except pdfium.PdfiumError:
        return UNREADABLE
    try:
        if command == "sizes":
            count = min(len(pdf), int(argv[2]))
            sizes = [list(pdf[index].get_size()) for index in range(count)]
            json.dump({"total_pages": len(pdf), "sizes": sizes}, sys.stdout)
            return 0
        number, dpi, max_side_px, target = int(argv[2]), int(argv[3]), int(argv[4]), argv[5]
        page = pdf[number - 1]
        scale = scale_for(*page.get_size(), dpi, max_side_px)
        page.render(scale=scale).to_pil().save(target, format="PNG")
        return 0
    finally:
        pdf.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
