"""Starting, stopping and listing recordings; the worker that holds the room writes the file."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.service import Principal
from confbridge.bridge import service as bridge_service
from confbridge.errors import Conflict, DomainError, Forbidden, NotFound, Unavailable
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.models import Occurrence, RecordPolicy
from confbridge.nodes.models import SfuNode
from confbridge.nodes.worker_client import RecordingDownload, WorkerClient
from confbridge.object_store import ObjectStore, StoredObject
from confbridge.recordings import chapters as recording_chapters
from confbridge.recordings.models import Recording
from confbridge.signing import GrantSigner
from confbridge_kernel.contracts import room_name
from confbridge_kernel.recordings import RecordingCommand, RecordingInfo

log = logging.getLogger(__name__)

FileStream = RecordingDownload | StoredObject
"""A recording's bytes on their way: `status_code`, `headers` and `chunks()`."""

ALWAYS_ACTOR = "system:record-always"
"""Who started a recording of a series set to `record: always` (audit, `started_by`)."""


def _authorize(session: Session, principal: Principal, occurrence_id: int) -> None:
    """Recording is the chair's call: an admin or secretariat user, or the chair site's
    terminal."""
    occurrence = occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
    if principal.user is not None:
        if principal.user.role not in bridge_service.FLOOR_ROLES:
            raise Forbidden(
                f"your role '{principal.user.role}' may not record a meeting "
                "(needs admin or secretariat)"
            )
        return
    terminal = principal.terminal
    assert terminal is not None
    if terminal.site_id != bridge_service.chair_site_id(session=session, occurrence=occurrence):
        raise Forbidden("only the chair site's terminal may start or stop recording")


def command(
    *,
    session: Session,
    occurrence_id: int,
    principal: Principal,
    action: str,
    signer: GrantSigner,
) -> Recording:
    """Start or stop the occurrence's recording on the worker holding its room; 409 (from
    the worker) when it is already recording, or not recording."""
    _authorize(session, principal, occurrence_id)
    if action == "start":
        row = _start(session, occurrence_id, actor=principal.actor, signer=signer)
    else:
        row = _stop(session, occurrence_id, signer=signer)
    auth_service.record(
        session=session,
        actor=principal.actor,
        action=f"recording_{action}",
        entity="occurrence",
        entity_id=occurrence_id,
        detail={"recording_id": row.id, "node_id": row.node_id},
    )
    session.flush()
    return row


def _start(session: Session, occurrence_id: int, *, actor: str, signer: GrantSigner) -> Recording:
    occurrence = occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
    if occurrence.series.record == RecordPolicy.never.value:
        raise Conflict(
            f"the meetings of series {occurrence.series_id} are not to be recorded "
            "(its setting 'record' is 'never')"
        )
    client = bridge_service.room_client(session=session, occurrence_id=occurrence_id, signer=signer)
    info = client.send_recording(
        room=room_name(occurrence_id),
        command=RecordingCommand(action="start", recording_id=uuid.uuid4().hex),
    )
    row = Recording(
        id=info.recording_id,
        occurrence_id=occurrence_id,
        node_id=client.node_id,
        started_at=info.started_at,
        started_by=actor,
    )
    session.add(row)
    return row


def _stop(session: Session, occurrence_id: int, *, signer: GrantSigner) -> Recording:
    client = bridge_service.room_client(session=session, occurrence_id=occurrence_id, signer=signer)
    info = client.send_recording(
        room=room_name(occurrence_id), command=RecordingCommand(action="stop")
    )
    row = session.get(Recording, info.recording_id)
    if row is None:
        # started before this database knew of it (restored backup): keep it anyway
        row = Recording(
            id=info.recording_id,
            occurrence_id=occurrence_id,
            node_id=client.node_id,
            started_at=info.started_at,
            started_by="",
        )
        session.add(row)
    apply_info(row, info)
    return row


def apply_info(row: Recording, info: RecordingInfo) -> None:
    """The worker's final word on a recording: its end, size, checksum, failure, chapters."""
    row.ended_at = info.ended_at
    row.bytes = info.bytes
    row.sha256 = info.sha256
    row.failure = info.failure[:500] if info.failure else None
    recording_chapters.take_worker_chapters(row, info.chapters)


def _client(session: Session, node_id: str, signer: GrantSigner) -> WorkerClient:
    node = session.get(SfuNode, node_id)
    if node is None:
        raise NotFound(f"the media server {node_id} holding this recording is no longer known")
    return WorkerClient(node.internal_url, node_id=node.id, signer=signer)


def list_recordings(
    *, session: Session, occurrence_id: int, signer: GrantSigner
) -> Sequence[Recording]:
    """The occurrence's recordings, oldest first. One the list has not seen end (its room
    closed while recording, or its worker died) is asked of its worker, which settles it."""
    occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
    rows = session.scalars(
        select(Recording)
        .where(Recording.occurrence_id == occurrence_id)
        .order_by(Recording.started_at, Recording.id)
    ).all()
    for row in rows:
        if row.ended_at is not None:
            continue
        try:
            info = _client(session, row.node_id, signer).get_recording(row.id)
        except DomainError as exc:
            log.info("recording %s: its worker could not say whether it ended: %s", row.id, exc)
            continue
        if info.ended_at is not None:
            apply_info(row, info)
    return rows


def get_recording(*, session: Session, occurrence_id: int, recording_id: str) -> Recording:
    row = session.get(Recording, recording_id)
    if row is None or row.occurrence_id != occurrence_id:
        raise NotFound(f"occurrence {occurrence_id} has no recording {recording_id}")
    return row


def open_file(
    *,
    session: Session,
    occurrence_id: int,
    recording_id: str,
    signer: GrantSigner,
    objects: ObjectStore | None,
    byte_range: str | None = None,
) -> tuple[Recording, FileStream]:
    """The recording and its file (or the `Range` asked for), streamed from the object store
    it was moved to, or from the node that wrote it (read `chunks()` to the end). Only a
    finished recording downloads."""
    row = get_recording(session=session, occurrence_id=occurrence_id, recording_id=recording_id)
    if row.ended_at is None:
        raise Conflict(f"recording {recording_id} is still being written; stop it first")
    if row.storage_key is not None:
        if objects is None:
            raise Unavailable(
                f"recording {recording_id} is in the object store, and none is configured"
            )
        return row, objects.get(row.storage_key, byte_range)
    client = _client(session, row.node_id, signer)
    return row, client.open_recording_file(recording_id, byte_range)


def client_of(*, session: Session, row: Recording, signer: GrantSigner) -> WorkerClient:
    """The admin client of the node holding the recording's file; NotFound if it is gone."""
    return _client(session, row.node_id, signer)


def start_where_always(
    *, session: Session, occurrence_ids: Iterable[int], signer: GrantSigner
) -> list[Recording]:
    """Start recording the rooms of series set to `record: always` that are not recording
    (called when halls join). Best effort: a worker that refuses is logged, the next join
    tries again."""
    started = []
    for occurrence_id in sorted(set(occurrence_ids)):
        occurrence = session.get(Occurrence, occurrence_id)
        if occurrence is None or occurrence.series.record != RecordPolicy.always.value:
            continue
        open_row = session.scalar(
            select(Recording.id).where(
                Recording.occurrence_id == occurrence_id, Recording.ended_at.is_(None)
            )
        )
        if open_row is not None:
            continue
        try:
            row = _start(session, occurrence_id, actor=ALWAYS_ACTOR, signer=signer)
        except DomainError as exc:
            log.warning("occurrence %s: recording did not start by itself: %s", occurrence_id, exc)
            continue
        auth_service.record(
            session=session,
            actor=ALWAYS_ACTOR,
            action="recording_start",
            entity="occurrence",
            entity_id=occurrence_id,
            detail={"recording_id": row.id, "node_id": row.node_id},
        )
        started.append(row)
    return started
