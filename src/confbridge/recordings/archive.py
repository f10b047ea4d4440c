"""The archive of recordings: who downloaded or played each (the audit log), finished
recordings moved to the object store, deletion past a series' retention, and the figures the
metrics show."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.models import AuditEntry
from confbridge.errors import DomainError, NotFound, Unavailable
from confbridge.meetings.models import Occurrence, Series
from confbridge.nodes.models import SfuNode
from confbridge.nodes.worker_client import WorkerUnavailable
from confbridge.object_store import ObjectStore
from confbridge.recordings import service as recording_service
from confbridge.recordings.models import Recording
from confbridge.signing import GrantSigner

log = logging.getLogger(__name__)

DOWNLOADED = "recording_download"
PLAYED = "recording_play"
DELETED = "recording_deleted"
RETENTION_ACTOR = "system:recording-retention"
OBJECTS_FOLDER = "recordings/"  # the recordings' names in the object store
MOVE_BATCH = 20  # recordings copied to the object store per round at most
MOVE_CANDIDATES = 500  # recordings looked at per round (some wait for their worker)


def record_access(*, session: Session, actor: str, row: Recording, action: str) -> None:
    """Audit one download or playback of a recording (under its occurrence)."""
    auth_service.record(
        session=session,
        actor=actor,
        action=action,
        entity="occurrence",
        entity_id=row.occurrence_id,
        detail={"recording_id": row.id},
    )


def accesses(*, session: Session, occurrence_id: int) -> dict[str, list[AuditEntry]]:
    """The audit entries of downloads and playbacks of the occurrence's recordings, by
    recording id, newest first."""
    entries = session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.entity == "occurrence",
            AuditEntry.entity_id == occurrence_id,
            AuditEntry.action.in_([DOWNLOADED, PLAYED]),
        )
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    ).all()
    found: dict[str, list[AuditEntry]] = defaultdict(list)
    for entry in entries:
        found[str((entry.detail or {}).get("recording_id", ""))].append(entry)
    return dict(found)


def expired(*, session: Session, now: datetime) -> list[tuple[Recording, int]]:
    """Finished recordings older than their series' retention, with that retention in days."""
    rows = session.execute(
        select(Recording, Series.recording_retention_days)
        .join(Occurrence, Occurrence.id == Recording.occurrence_id)
        .join(Series, Series.id == Occurrence.series_id)
        .where(Series.recording_retention_days.is_not(None), Recording.ended_at.is_not(None))
        .order_by(Recording.ended_at)
    ).all()
    return [
        (row, days)
        for row, days in rows
        if row.ended_at is not None and row.ended_at + timedelta(days=days) <= now
    ]


def purge_expired(
    *, session: Session, signer: GrantSigner, objects: ObjectStore | None, now: datetime
) -> list[str]:
    """Delete the expired recordings: the file (in the object store, or on the node that
    wrote it), then the row, each audited. A store or node that cannot be reached keeps its
    recording until the next round; a node no longer registered took its files with it."""
    deleted = []
    for row, days in expired(session=session, now=now):
        try:
            had_file = _delete_file(session, row, signer=signer, objects=objects)
        except DomainError as exc:
            log.warning("recording %s past its retention was not deleted: %s", row.id, exc)
            continue
        auth_service.record(
            session=session,
            actor=RETENTION_ACTOR,
            action=DELETED,
            entity="occurrence",
            entity_id=row.occurrence_id,
            detail={
                "recording_id": row.id,
                "node_id": row.node_id,
                "retention_days": days,
                "file_deleted": had_file,
            },
        )
        session.delete(row)
        session.flush()
        deleted.append(row.id)
    return deleted


def _delete_file(
    session: Session, row: Recording, *, signer: GrantSigner, objects: ObjectStore | None
) -> bool:
    """Remove the recording's file where it is kept; False if it was gone already."""
    if row.storage_key is not None:
        if objects is None:
            raise Unavailable("it is in the object store, and none is configured")
        objects.delete(row.storage_key)
        release(session=session, row=row, signer=signer)  # a copy its worker kept then
        return True
    try:
        client = recording_service.client_of(session=session, row=row, signer=signer)
    except NotFound:  # the node was removed for good, and its files with it
        return False
    return client.delete_recording(row.id)


def to_move(*, session: Session, limit: int = MOVE_CANDIDATES) -> list[Recording]:
    """Finished recordings still on a registered worker, oldest first."""
    return list(
        session.scalars(
            select(Recording)
            .join(SfuNode, SfuNode.id == Recording.node_id)
            .where(Recording.ended_at.is_not(None), Recording.storage_key.is_(None))
            .order_by(Recording.ended_at, Recording.id)
            .limit(limit)
        )
    )


def move_to_store(
    *, session: Session, row: Recording, signer: GrantSigner, objects: ObjectStore
) -> bool:
    """Copy a finished recording from its worker to the object store, checked against the
    size and SHA-256 the worker reported, and name it on the row (the caller commits, then
    `release`s the worker's copy). False, and nothing changed, when it cannot be done now;
    WorkerUnavailable when its worker cannot be reached (its other recordings wait too)."""
    try:
        client = recording_service.client_of(session=session, row=row, signer=signer)
        download = client.open_recording_file(row.id)
    except WorkerUnavailable:
        raise
    except DomainError as exc:
        log.info("recording %s stays on its worker for now: %s", row.id, exc)
        return False
    media_type = download.headers.get("content-type", "video/webm").split(";")[0]
    name = f"{OBJECTS_FOLDER}{row.id}{'.mkv' if media_type == 'video/x-matroska' else '.webm'}"
    reader = ChunkReader(download.chunks())
    try:
        objects.put(name, reader, content_type=media_type, sha256=row.sha256 or "")
    except DomainError as exc:
        log.warning("recording %s was not copied to the object store: %s", row.id, exc)
        return False
    finally:
        reader.close()
    expected = (row.bytes, row.sha256)
    if (reader.size, reader.sha256) != expected and row.sha256 is not None:
        log.warning(
            "recording %s: the copy (%s bytes, %s) differs from its worker's file (%s, %s); "
            "kept on the worker",
            row.id, reader.size, reader.sha256, *expected,
        )  # fmt: skip
        with contextlib.suppress(DomainError):  # a leftover object is overwritten next time
            objects.delete(name)
        return False
    row.storage_key = name
    session.flush()
    return True


def release(*, session: Session, row: Recording, signer: GrantSigner) -> None:
    """Remove the worker's copy of a recording now kept in the object store (its row
    committed first). A worker that cannot be reached keeps it until the retention round."""
    try:
        recording_service.client_of(session=session, row=row, signer=signer).delete_recording(
            row.id
        )
    except DomainError as exc:
        log.info("recording %s: its worker keeps a copy for now: %s", row.id, exc)


class ChunkReader:
    """A file-like `read(n)` over streamed chunks, counting and hashing what it hands on."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        cut = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        out = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        self.size += len(out)
        self._digest.update(out)
        return out

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


@dataclass(frozen=True)
class ArchiveFigures:
    """Recordings being written, bytes kept, and recordings that failed."""

    active: int
    bytes_stored: int
    failures: int


def figures(*, session: Session) -> ArchiveFigures:
    active, stored, failures = session.execute(
        select(
            func.count(Recording.id).filter(Recording.ended_at.is_(None)),
            func.coalesce(func.sum(Recording.bytes), 0),
            func.count(Recording.id).filter(Recording.failure.is_not(None)),
        )
    ).one()
    return ArchiveFigures(active=active or 0, bytes_stored=int(stored or 0), failures=failures or 0)
