"""PDFium in a process of its own: what it answers, and that a PDF which makes it fail or hang
is refused (422) while the control plane goes on serving."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from confbridge.records import pdf_pages
from confbridge.records.pdf_render import UNREADABLE
from tests.records.test_document_pages import _upload
from tests.support.pdfs import multi_page_pdf, sized_pdf
from tests.support.records import Meeting

Headers = dict[str, str]


def _child(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "confbridge.records.pdf_render", *arguments, "1024"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_pdf_render_measures_and_draws_in_its_own_process(tmp_path: Path) -> None:
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(multi_page_pdf(3))
    sizes = _child("sizes", str(pdf), "2")
    assert sizes.returncode == 0, sizes.stderr
    measured = json.loads(sizes.stdout)
    assert measured["total_pages"] == 3 and len(measured["sizes"]) == 2
    png = tmp_path / "page.png"
    drawn = _child("page", str(pdf), "2", "150", "2000", str(png))
    assert drawn.returncode == 0, drawn.stderr
    assert png.read_bytes().startswith(b"\x89PNG")
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes(b"%PDF-1.4 not really")
    assert _child("sizes", str(damaged), "2").returncode == UNREADABLE


def test_pdf_render_failing_or_hanging_is_refused_and_the_server_goes_on(
    client: TestClient, secretariat: Headers, meeting: Meeting, monkeypatch: pytest.MonkeyPatch
) -> None:
    document_id = _upload(client, secretariat, meeting, sized_pdf(297, 210))
    pages = f"/api/v1/documents/{document_id}/pages"

    # PDFium's process cannot even start within its memory: a clear refusal, nothing cached
    monkeypatch.setattr(pdf_pages, "RENDER_MEMORY_MB", 4)
    starved = client.get(pages, headers=meeting.p1)
    assert starved.status_code == 422, starved.text
    assert "could not be drawn" in starved.json()["detail"]

    # a drawing that takes too long is stopped
    monkeypatch.setattr(pdf_pages, "RENDER_MEMORY_MB", 1024)
    monkeypatch.setattr(pdf_pages, "RENDER_TIMEOUT_S", 0.001)
    slow = client.get(pages, headers=meeting.p1)
    assert slow.status_code == 422, slow.text
    assert "took longer than" in slow.json()["detail"]

    monkeypatch.setattr(pdf_pages, "RENDER_TIMEOUT_S", 30.0)
    assert client.get("/healthz").status_code == 200
    index = client.get(pages, headers=meeting.p1)
    assert index.status_code == 200 and index.json()["page_count"] == 1
    image = client.get(f"{pages}/1.png", headers=meeting.p1)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
