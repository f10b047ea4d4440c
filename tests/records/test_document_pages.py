"""A PDF document's pages drawn as PNG images for the invited halls' screens: their count and
sizes, bounded, cached beside the document, and hidden from everyone else."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from confbridge.db import Database
from confbridge.records import pdf_pages
from confbridge.scheduler import Scheduler
from confbridge.settings import Settings
from tests.records.test_documents import PDF as EMPTY_PDF
from tests.records.test_documents import _docx
from tests.support.pdfs import A4_MM, drawn_size, multi_page_pdf, sized_pdf
from tests.support.records import Meeting, end_past_retention

Headers = dict[str, str]


def _upload(client: TestClient, secretariat: Headers, meeting: Meeting, content: bytes) -> int:
    response = client.post(
        f"/api/v1/occurrences/{meeting.occurrence_id}/documents",
        files={"file": ("tai-lieu.pdf", content, "application/pdf")},
        headers=secretariat,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _image(response: Any) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def _close(actual: tuple[int, int], expected: tuple[int, int]) -> bool:
    return all(abs(a - e) <= 1 for a, e in zip(actual, expected, strict=True))


def test_document_pages_of_a_pdf_for_an_invited_hall(
    client: TestClient, secretariat: Headers, meeting: Meeting, settings: Settings
) -> None:
    document_id = _upload(client, secretariat, meeting, multi_page_pdf(3))
    index = client.get(f"/api/v1/documents/{document_id}/pages", headers=meeting.p1)
    assert index.status_code == 200, index.text
    body = index.json()
    assert (body["total_pages"], body["page_count"]) == (3, 3)
    portrait, landscape = drawn_size(*A4_MM), drawn_size(*reversed(A4_MM))
    sizes = [(p["width"], p["height"]) for p in body["pages"]]
    assert _close(sizes[0], portrait) and _close(sizes[1], landscape), sizes
    for number in (1, 2):
        url = f"/api/v1/documents/{document_id}/pages/{number}.png"
        image = _image(client.get(url, headers=meeting.p1))
        assert image.size == sizes[number - 1]
        # the page is drawn: white paper with the black bar and the number on it
        gray = image.convert("L")
        assert gray.getpixel((image.width - 5, image.height - 5)) > 240
        assert gray.getextrema()[0] < 30
    cached = list((settings.data_dir / "documents" / "pages").rglob("*.png"))
    assert len(cached) == 2
    # the second time the page comes from the cache, the same bytes
    again = client.get(f"/api/v1/documents/{document_id}/pages/1.png", headers=meeting.p1)
    assert again.content == next(p for p in cached if "page-1-" in p.name).read_bytes()


def test_document_pages_refuse_everyone_but_invited_halls(
    client: TestClient, secretariat: Headers, meeting: Meeting
) -> None:
    document_id = _upload(client, secretariat, meeting, multi_page_pdf(2))
    for headers in (meeting.outsider, secretariat, {}):
        index = client.get(f"/api/v1/documents/{document_id}/pages", headers=headers)
        page = client.get(f"/api/v1/documents/{document_id}/pages/1.png", headers=headers)
        expected = 401 if not headers else 404
        assert (index.status_code, page.status_code) == (expected, expected), headers
    assert (
        client.get(f"/api/v1/documents/{document_id}/pages", headers=meeting.hq).status_code == 200
    )


def test_document_pages_beyond_the_last_or_not_a_pdf_are_not_found(
    client: TestClient, secretariat: Headers, meeting: Meeting
) -> None:
    document_id = _upload(client, secretariat, meeting, multi_page_pdf(2))
    beyond = client.get(f"/api/v1/documents/{document_id}/pages/3.png", headers=meeting.p1)
    assert beyond.status_code == 404
    assert "no page 3" in beyond.json()["detail"]
    zero = client.get(f"/api/v1/documents/{document_id}/pages/0.png", headers=meeting.p1)
    assert zero.status_code == 422
    docx_id = client.post(
        f"/api/v1/occurrences/{meeting.occurrence_id}/documents",
        files={"file": ("bao-cao.docx", _docx())},
        headers=secretariat,
    ).json()["id"]
    not_pdf = client.get(f"/api/v1/documents/{docx_id}/pages", headers=meeting.p1)
    assert not_pdf.status_code == 404
    assert "only PDF documents" in not_pdf.json()["detail"]
    # a PDF without pages has none to show; a damaged one is refused, not a server error
    empty = _upload(client, secretariat, meeting, EMPTY_PDF)
    answer = client.get(f"/api/v1/documents/{empty}/pages", headers=meeting.p1)
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 200:
        assert answer.json()["page_count"] == 0
    damaged = _upload(client, secretariat, meeting, multi_page_pdf(2)[:400])
    answer = client.get(f"/api/v1/documents/{damaged}/pages/1.png", headers=meeting.p1)
    assert answer.status_code in (404, 422), answer.text


def test_document_pages_are_bounded_in_size_and_count(
    client: TestClient, secretariat: Headers, meeting: Meeting, monkeypatch: pytest.MonkeyPatch
) -> None:
    poster = _upload(client, secretariat, meeting, sized_pdf(1189, 841))  # A0, sideways
    image = _image(client.get(f"/api/v1/documents/{poster}/pages/1.png", headers=meeting.p1))
    assert max(image.size) <= pdf_pages.MAX_SIDE_PX
    assert _close(image.size, drawn_size(1189, 841))
    monkeypatch.setattr(pdf_pages, "MAX_PAGES", 2)
    long_one = _upload(client, secretariat, meeting, multi_page_pdf(3))
    body = client.get(f"/api/v1/documents/{long_one}/pages", headers=meeting.p1).json()
    assert (body["total_pages"], body["page_count"], len(body["pages"])) == (3, 2, 2)
    third = client.get(f"/api/v1/documents/{long_one}/pages/3.png", headers=meeting.p1)
    assert third.status_code == 404


def test_document_pages_go_with_their_document(
    client: TestClient,
    secretariat: Headers,
    meeting: Meeting,
    settings: Settings,
    database: Database,
) -> None:
    """Deleted or past the retention period: its pages are refused, then removed from disk."""
    pages_dir = settings.data_dir / "documents" / "pages"
    deleted = _upload(client, secretariat, meeting, multi_page_pdf(1))
    _image(client.get(f"/api/v1/documents/{deleted}/pages/1.png", headers=meeting.p1))
    assert len(list(pages_dir.iterdir())) == 1
    assert client.delete(f"/api/v1/documents/{deleted}", headers=secretariat).status_code == 204
    assert list(pages_dir.iterdir()) == []
    kept = _upload(client, secretariat, meeting, multi_page_pdf(1))
    _image(client.get(f"/api/v1/documents/{kept}/pages/1.png", headers=meeting.p1))
    end_past_retention(database, meeting.occurrence_id, settings.records.document_retention_days)
    for path in (f"/api/v1/documents/{kept}/pages", f"/api/v1/documents/{kept}/pages/1.png"):
        assert client.get(path, headers=meeting.p1).status_code == 404
    assert Scheduler(database, settings).purge_documents() == 1
    assert list(pages_dir.iterdir()) == []
