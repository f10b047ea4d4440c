"""Documents of occurrences: stored checksummed, listed, served within the retention period."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from pathlib import PurePosixPath, PureWindowsPath
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.errors import NotFound
from confbridge.meetings.models import Occurrence
from confbridge.records import filetypes
from confbridge.records import service as record_service
from confbridge.records.models import Document
from confbridge.records.storage import DocumentStore
from confbridge.text import one_line

MAX_NAME = 255


def clean_name(given: str | None, kind: str) -> str:
    """The name a document is listed and downloaded under: the uploaded file's base name,
    composed, on one line, ending in its real kind's extension."""
    base = PureWindowsPath(PurePosixPath(given or "").name).name  # C:\\x\\a.pdf from old browsers
    name = one_line(unicodedata.normalize("NFC", base)).strip() or f"tai-lieu.{kind}"
    if not name.lower().endswith(f".{kind}"):
        name += f".{kind}"
    return name[-MAX_NAME:]


def expired(occurrence: Occurrence, *, now: datetime, retention_days: int) -> bool:
    """Whether the retention period after the occurrence's end has passed."""
    return occurrence.end_at + timedelta(days=retention_days) <= now


def create(
    *,
    session: Session,
    store: DocumentStore,
    occurrence: Occurrence,
    source: BinaryIO,
    filename: str | None,
    agenda_item_id: int | None,
    max_bytes: int,
    actor: str,
) -> Document:
    """Store an uploaded file (its kind told by content) as a document of the occurrence."""
    if agenda_item_id is not None:
        record_service.item_of(session=session, occurrence=occurrence, item_id=agenda_item_id)
    received = store.receive(source, max_bytes=max_bytes)
    try:
        kind = filetypes.sniff(received.path)
    except BaseException:
        store.discard(received)
        raise
    key = store.place(received)
    document = Document(
        occurrence_id=occurrence.id,
        agenda_item_id=agenda_item_id,
        name=clean_name(filename, kind),
        kind=kind,
        size=received.size,
        sha256=received.sha256,
        storage_key=key,
        uploaded_by=actor[:150],
    )
    session.add(document)
    try:
        session.flush()
    except BaseException:
        store.delete(key)
        raise
    return document


def list_(*, session: Session, occurrence_id: int) -> list[Document]:
    query = select(Document).where(Document.occurrence_id == occurrence_id).order_by(Document.id)
    return list(session.scalars(query))


def get(*, session: Session, document_id: int) -> Document:
    document = session.get(Document, document_id)
    if document is None:
        raise NotFound(f"document {document_id} does not exist")
    return document


def delete(*, session: Session, document: Document) -> None:
    """Remove the row; the caller removes the bytes once the deletion is committed."""
    session.delete(document)
    session.flush()


def purge_expired(*, session: Session, now: datetime, retention_days: int) -> list[str]:
    """Delete the rows of documents whose occurrence ended before the retention period;
    returns their storage keys, whose files the caller removes once this is committed."""
    cutoff = now - timedelta(days=retention_days)
    old = list(
        session.scalars(
            select(Document)
            .join(Occurrence, Occurrence.id == Document.occurrence_id)
            .where(Occurrence.end_at <= cutoff)
        )
    )
    for document in old:
        session.delete(document)
    session.flush()
    return [document.storage_key for document in old]


def sweep(*, session: Session, store: DocumentStore) -> int:
    """Remove files of the store that no committed row refers to (and stale uploads)."""
    keys = session.scalars(select(Document.storage_key))
    return store.sweep(known_keys=keys)
