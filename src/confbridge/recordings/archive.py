"""The archive of recordings: who downloaded or played each (the audit log), deletion past a
series' retention, and the figures the metrics show."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.models import AuditEntry
from confbridge.errors import DomainError, NotFound
from confbridge.meetings.models import Occurrence, Series
from confbridge.recordings import service as recording_service
from confbridge.recordings.models import Recording
from confbridge.signing import GrantSigner

log = logging.getLogger(__name__)

DOWNLOADED = "recording_download"
PLAYED = "recording_play"
DELETED = "recording_deleted"
RETENTION_ACTOR = "system:recording-retention"


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


def purge_expired(*, session: Session, signer: GrantSigner, now: datetime) -> list[str]:
    """Delete the expired recordings: the file on the node that wrote it, then the row, each
    audited. A node that cannot be reached keeps its recording until the next round; one no
    longer registered took its files with it."""
    deleted = []
    for row, days in expired(session=session, now=now):
        try:
            client = recording_service.client_of(session=session, row=row, signer=signer)
        except NotFound:  # the node was removed for good, and its files with it
            client = None
        try:
            had_file = client.delete_recording(row.id) if client is not None else False
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
