"""Documents of a meeting: uploaded with their type told by content, listed and downloaded by
the invited halls, hidden from others and after the retention period, never half-stored."""

from __future__ import annotations

import hashlib
import io
import socket
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docx
import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from confbridge.db import Database
from confbridge.records.models import Document
from confbridge.records.storage import STALE_PART_S, DocumentStore
from confbridge.scheduler import Scheduler
from confbridge.settings import Settings
from tests.support.records import Meeting, end_past_retention

Headers = dict[str, str]
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def _docx() -> bytes:
    document = docx.Document()
    document.add_paragraph("Báo cáo tình hình kinh tế - xã hội")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _xlsx() -> bytes:
    book = openpyxl.Workbook()
    book.active["A1"] = "Chỉ tiêu"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _package(main_type: str) -> bytes:
    """An OOXML package whose [Content_Types].xml names `main_type` as its main part."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'content-types"><Override PartName="/main.xml" ContentType="{main_type}"/></Types>',
        )
        package.writestr("main.xml", "<x/>")
    return buffer.getvalue()


PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"
DOCM = "application/vnd.ms-word.document.macroEnabled.main+xml"


def _store(settings: Settings) -> Path:
    return settings.data_dir / "documents"


def _stored_files(settings: Settings) -> list[Path]:
    root = _store(settings)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def upload(client: TestClient, secretariat: Headers, meeting: Meeting) -> Callable[..., Any]:
    def post(name: str, content: bytes, **fields: Any) -> Any:
        return client.post(
            f"/api/v1/occurrences/{meeting.occurrence_id}/documents",
            files={"file": (name, content, "application/octet-stream")},
            data={key: str(value) for key, value in fields.items()},
            headers=secretariat,
        )

    return post


def test_documents_upload_each_kind_told_by_content(upload: Callable[..., Any]) -> None:
    for name, content, kind in (
        ("Báo cáo.pdf", PDF, "pdf"),
        ("du-thao.docx", _docx(), "docx"),
        ("so-lieu.xlsx", _xlsx(), "xlsx"),
        ("trinh-chieu.pptx", _package(PPTX), "pptx"),
    ):
        response = upload(name, content)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["size"] == len(content)
        assert body["sha256"] == hashlib.sha256(content).hexdigest()
        assert body["name"].endswith(f".{kind}")
    # a DOCX named .pdf is a DOCX: listed under its real kind
    renamed = upload("khong-phai-pdf.pdf", _docx())
    assert renamed.status_code == 201
    assert renamed.json()["name"] == "khong-phai-pdf.pdf.docx"


def test_documents_refuse_wrong_types_by_content(
    upload: Callable[..., Any], settings: Settings, database: Database
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("a.txt", "x")
    for name, content in (
        ("anh.pdf", png),
        ("nen.docx", plain_zip.getvalue()),
        ("macro.docx", _package(DOCM)),
        ("hong.docx", b"PK\x03\x04 not really a zip"),
        ("rong.pdf", b""),
    ):
        response = upload(name, content)
        assert response.status_code == 422, (name, response.text)
        assert "file:" in response.json()["detail"]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 0
    assert _stored_files(settings) == []


def test_documents_refuse_a_file_over_the_limit_and_keep_nothing(
    upload: Callable[..., Any], settings: Settings
) -> None:
    settings.records.max_document_mb = 1
    response = upload("lon.pdf", PDF + b"0" * (1 << 20))
    assert response.status_code == 413, response.text
    assert "1 MB" in response.json()["detail"]
    assert _stored_files(settings) == []
    assert upload("vua.pdf", PDF + b"0" * ((1 << 20) - len(PDF))).status_code == 201


def test_documents_are_listed_and_downloaded_by_invited_halls_only(
    client: TestClient, upload: Callable[..., Any], meeting: Meeting
) -> None:
    created = upload("tai-lieu.pdf", PDF).json()
    listing = f"/api/v1/occurrences/{meeting.occurrence_id}/documents"
    seen = client.get(listing, headers=meeting.p1)
    assert seen.status_code == 200
    assert [d["id"] for d in seen.json()] == [created["id"]]
    download = client.get(f"/api/v1/documents/{created['id']}", headers=meeting.p1)
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["x-content-sha256"] == created["sha256"]
    assert client.get(listing, headers=meeting.outsider).status_code == 404
    assert (
        client.get(f"/api/v1/documents/{created['id']}", headers=meeting.outsider).status_code
        == 404
    )
    assert client.get("/api/v1/documents/999999", headers=meeting.p1).status_code == 404


def test_documents_upload_is_for_the_secretariat(
    client: TestClient, meeting: Meeting, make_user: Callable[..., Headers]
) -> None:
    url = f"/api/v1/occurrences/{meeting.occurrence_id}/documents"
    files = {"file": ("a.pdf", PDF, "application/pdf")}
    assert client.post(url, files=files, headers=meeting.hq).status_code == 403
    assert client.post(url, files=files, headers=make_user("viewer")).status_code == 403
    assert client.post(url, files=files).status_code == 401


def test_documents_attach_to_an_agenda_item_of_the_meeting(
    client: TestClient, secretariat: Headers, upload: Callable[..., Any], meeting: Meeting
) -> None:
    invitation = client.patch(
        f"/api/v1/occurrences/{meeting.occurrence_id}/invitation",
        json={"agenda": [{"title": "Báo cáo ngân sách"}]},
        headers=secretariat,
    ).json()
    item_id = invitation["agenda"][0]["id"]
    attached = upload("ngan-sach.pdf", PDF, agenda_item_id=item_id)
    assert attached.status_code == 201, attached.text
    listed = client.get(
        f"/api/v1/occurrences/{meeting.occurrence_id}/documents", headers=meeting.p1
    ).json()
    assert listed[0]["agenda_item_id"] == item_id
    assert upload("x.pdf", PDF, agenda_item_id=999_999).status_code == 422
    assert upload("x.pdf", PDF, agenda_item_id="abc").status_code == 422


def test_documents_are_gone_after_the_retention_period(
    client: TestClient,
    secretariat: Headers,
    upload: Callable[..., Any],
    meeting: Meeting,
    database: Database,
    settings: Settings,
) -> None:
    created = upload("cu.pdf", PDF).json()
    end_past_retention(database, meeting.occurrence_id, settings.records.document_retention_days)
    for headers in (secretariat, meeting.p1):
        listing = client.get(
            f"/api/v1/occurrences/{meeting.occurrence_id}/documents", headers=headers
        )
        assert listing.status_code == 404
        assert client.get(f"/api/v1/documents/{created['id']}", headers=headers).status_code == 404
    assert len(_stored_files(settings)) == 1
    assert Scheduler(database, settings).purge_documents() == 1
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 0
    assert _stored_files(settings) == []


def test_documents_delete_removes_row_and_bytes(
    client: TestClient, secretariat: Headers, upload: Callable[..., Any], settings: Settings
) -> None:
    created = upload("xoa.pdf", PDF).json()
    assert len(_stored_files(settings)) == 1
    assert (
        client.delete(f"/api/v1/documents/{created['id']}", headers=secretariat).status_code == 204
    )
    assert _stored_files(settings) == []
    assert (
        client.delete(f"/api/v1/documents/{created['id']}", headers=secretariat).status_code == 404
    )


@pytest.mark.integration
def test_documents_interrupted_upload_stores_nothing(
    app: Any,
    serve: Callable[..., Any],
    meeting: Meeting,
    secretariat: Headers,
    settings: Settings,
    database: Database,
) -> None:
    """A client that sends half of a large upload and hangs up leaves no row and no file."""
    server = serve(app)
    boundary = "cbboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    total = len(head) + (4 << 20)
    request = (
        f"POST /api/v1/occurrences/{meeting.occurrence_id}/documents HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: {secretariat['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {total}\r\n\r\n"
    ).encode()
    with socket.create_connection((server.host, server.port), timeout=10) as connection:
        connection.sendall(request + head + PDF + b"0" * (1 << 20))
        time.sleep(0.5)
    time.sleep(1.0)  # the server notices the disconnect
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 0
    assert [p for p in _stored_files(settings) if p.suffix != ".part"] == []
    # whatever a crash could leave behind is swept
    store = DocumentStore(_store(settings))
    store.incoming.mkdir(parents=True, exist_ok=True)
    (store.incoming / "left.part").write_bytes(b"x")
    (store.root / "orphan.bin").write_bytes(b"y")
    assert store.sweep(known_keys=[], now_s=time.time() + STALE_PART_S + 1) == 2
    assert _stored_files(settings) == []
