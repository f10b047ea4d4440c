"""Documents kept in an S3-compatible object store (SeaweedFS on loopback) instead of the data
dir: uploaded whole, downloaded and drawn by the invited halls from a local copy, deleted with
their row or their retention, orphans swept, and a store that cannot be reached refused
clearly without a row."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from confbridge.db import Database
from confbridge.records.models import Document
from confbridge.records.storage import STALE_PART_S, ObjectDocumentStore, store_for
from confbridge.scheduler import Scheduler
from confbridge.settings import Settings
from tests.support.factories import make_settings
from tests.support.object_store import SeaweedFs
from tests.support.pdfs import multi_page_pdf
from tests.support.records import Meeting, end_past_retention
from tests.support.servers import free_port

Headers = dict[str, str]


@pytest.fixture
def settings(database: Database, tmp_path: Path, seaweed: SeaweedFs) -> Settings:
    return make_settings(
        database.settings.database_url or "", tmp_path, object_store=seaweed.settings()
    )


def _objects(seaweed: SeaweedFs, settings: Settings) -> list[str]:
    assert settings.object_store is not None
    return seaweed.keys(settings.object_store.prefix + "documents/")


def _local_bins(settings: Settings) -> list[Path]:
    return sorted((settings.data_dir / "documents").glob("*.bin"))


@pytest.fixture
def upload(client: TestClient, secretariat: Headers, meeting: Meeting) -> Callable[..., Any]:
    def post(content: bytes) -> Any:
        return client.post(
            f"/api/v1/occurrences/{meeting.occurrence_id}/documents",
            files={"file": ("tai-lieu.pdf", content, "application/pdf")},
            headers=secretariat,
        )

    return post


def test_documents_in_the_object_store_are_served_drawn_and_deleted(
    client: TestClient,
    secretariat: Headers,
    meeting: Meeting,
    settings: Settings,
    seaweed: SeaweedFs,
    upload: Callable[..., Any],
) -> None:
    content = multi_page_pdf(2)
    created = upload(content)
    assert created.status_code == 201, created.text
    document_id = created.json()["id"]
    (key,) = _objects(seaweed, settings)
    stored = seaweed.client().get_object(Bucket="confbridge-test", Key=key)
    assert stored["Body"].read() == content  # another S3 client reads the same bytes
    assert stored["Metadata"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert _local_bins(settings) == []  # nothing kept in the data dir but the cache

    downloaded = client.get(f"/api/v1/documents/{document_id}", headers=meeting.p1)
    assert downloaded.status_code == 200 and downloaded.content == content
    assert downloaded.headers["x-content-sha256"] == hashlib.sha256(content).hexdigest()
    pages = client.get(f"/api/v1/documents/{document_id}/pages", headers=meeting.p1)
    assert pages.status_code == 200 and pages.json()["page_count"] == 2
    outsider = client.get(f"/api/v1/documents/{document_id}", headers=meeting.outsider)
    assert outsider.status_code == 404

    deleted = client.delete(f"/api/v1/documents/{document_id}", headers=secretariat)
    assert deleted.status_code == 204
    assert _objects(seaweed, settings) == []
    cache = settings.data_dir / "documents" / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_documents_in_the_object_store_go_with_their_retention(
    meeting: Meeting,
    settings: Settings,
    seaweed: SeaweedFs,
    database: Database,
    upload: Callable[..., Any],
) -> None:
    assert upload(multi_page_pdf(1)).status_code == 201
    end_past_retention(database, meeting.occurrence_id, settings.records.document_retention_days)
    assert len(_objects(seaweed, settings)) == 1
    assert Scheduler(database, settings).purge_documents() == 1
    assert _objects(seaweed, settings) == []


def test_documents_sweep_removes_objects_no_row_refers_to(
    settings: Settings, seaweed: SeaweedFs, upload: Callable[..., Any], database: Database
) -> None:
    assert upload(multi_page_pdf(1)).status_code == 201
    store = store_for(settings)
    assert isinstance(store, ObjectDocumentStore)
    # bytes placed by an upload whose row never committed (a crash between the two)
    store.objects.put("documents/orphan.bin", io.BytesIO(b"%PDF-"), content_type="x", sha256="")
    with database.session() as session:
        (kept,) = session.scalars(select(Document.storage_key))
    assert store.sweep(known_keys=[kept]) == 0  # too fresh: its commit may still come
    assert store.sweep(known_keys=[kept], now_s=time.time() + STALE_PART_S + 60) == 1
    assert [k.rsplit("/", 1)[1] for k in _objects(seaweed, settings)] == [kept]


def test_documents_upload_to_an_unreachable_store_is_refused_without_a_row(
    client: TestClient,
    secretariat: Headers,
    meeting: Meeting,
    database: Database,
    tmp_path: Path,
    seaweed: SeaweedFs,
) -> None:
    down = make_settings(
        database.settings.database_url or "",
        tmp_path,
        object_store=seaweed.settings(endpoint_url=f"http://127.0.0.1:{free_port()}", timeout_s=2),
    )
    client.app.state.settings = down
    refused = client.post(
        f"/api/v1/occurrences/{meeting.occurrence_id}/documents",
        files={"file": ("tai-lieu.pdf", multi_page_pdf(1), "application/pdf")},
        headers=secretariat,
    )
    assert refused.status_code == 503, refused.text
    assert "object store" in refused.json()["detail"]
    assert refused.headers["retry-after"]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 0
    incoming = tmp_path / "documents" / "incoming"
    assert not incoming.exists() or list(incoming.iterdir()) == []
