"""`POST /occurrences/{id}/recording`, `GET /occurrences/{id}/recordings` and each file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import StreamingResponse

from confbridge import signing
from confbridge.auth import service as auth_service
from confbridge.auth.dependencies import PrincipalDep, ReadScope, SecretariatScope
from confbridge.auth.models import Role, User
from confbridge.auth.scope import scope_of
from confbridge.deps import SessionDep, SettingsDep
from confbridge.meetings import access as meeting_access
from confbridge.pagination import IdPath
from confbridge.recordings import service
from confbridge.recordings.models import Recording
from confbridge.recordings.schemas import RecordingRead, RecordingRequest
from confbridge_kernel.recordings import RECORDING_ID_PATTERN

router = APIRouter(tags=["recordings"])
API_PREFIX = "/api/v1"
RecordingIdPath = Annotated[str, Path(pattern=RECORDING_ID_PATTERN)]


def recording_read(row: Recording) -> RecordingRead:
    url = (
        f"{API_PREFIX}/occurrences/{row.occurrence_id}/recordings/{row.id}/file"
        if row.ended_at is not None
        else None
    )
    return RecordingRead(
        id=row.id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        bytes=row.bytes,
        sha256=row.sha256,
        download_url=url,
    )


@router.post("/occurrences/{occurrence_id}/recording", response_model=RecordingRead)
def recording(
    occurrence_id: IdPath,
    body: RecordingRequest,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> RecordingRead:
    """Start or stop recording the programme (409 if it already is, or is not, recording): the
    chair site's terminal, or the secretariat of the unit chairing the meeting."""
    if principal.user is not None and principal.user.has_role(Role.secretariat):
        # 404 outside the user's scope, 403 when another unit chairs it; a user without the
        # role is refused by the service, saying so
        user = principal.user
        meeting_access.editable_occurrence(
            session=session,
            occurrence_id=occurrence_id,
            read=scope_of(session=session, user=user),
            write=scope_of(session=session, user=user, roles=[Role.secretariat]),
        )
    row = service.command(
        session=session,
        occurrence_id=occurrence_id,
        principal=principal,
        action=body.action,
        signer=signing.signer_for(settings.grant_key_path),
    )
    session.commit()
    return recording_read(row)


@dataclass(frozen=True)
class Reading:
    """A secretariat user and the occurrence it may read the recordings of."""

    occurrence_id: int
    user: User


def recordings_reader(
    occurrence_id: IdPath, secretariat: SecretariatScope, reader: ReadScope, session: SessionDep
) -> Reading:
    """The secretariat (403 for other roles), for a meeting its scope sees (404 otherwise)."""
    meeting_access.visible_occurrence(
        session=session, occurrence_id=occurrence_id, scope=reader.scope
    )
    return Reading(occurrence_id=occurrence_id, user=secretariat.user)


Reader = Annotated[Reading, Depends(recordings_reader)]


@router.get("/occurrences/{occurrence_id}/recordings", response_model=list[RecordingRead])
def list_recordings(
    occurrence_id: IdPath, _reading: Reader, session: SessionDep, settings: SettingsDep
) -> list[RecordingRead]:
    """The occurrence's recordings, oldest first (the secretariat of units that see it)."""
    rows = service.list_recordings(
        session=session,
        occurrence_id=occurrence_id,
        signer=signing.signer_for(settings.grant_key_path),
    )
    session.commit()  # recordings settled by their worker
    return [recording_read(row) for row in rows]


@router.get(
    "/occurrences/{occurrence_id}/recordings/{recording_id}/file",
    response_class=StreamingResponse,
    responses={200: {"content": {"video/webm": {}, "video/x-matroska": {}}}},
)
def download(
    occurrence_id: IdPath,
    recording_id: RecordingIdPath,
    reading: Reader,
    session: SessionDep,
    settings: SettingsDep,
) -> StreamingResponse:
    """The recording's file (WebM, or Matroska for H.264 rooms), streamed from the media
    server that wrote it."""
    row, download = service.open_file(
        session=session,
        occurrence_id=occurrence_id,
        recording_id=recording_id,
        signer=signing.signer_for(settings.grant_key_path),
    )
    auth_service.record(
        session=session,
        actor=f"user:{reading.user.username}",
        action="recording_download",
        entity="occurrence",
        entity_id=occurrence_id,
        detail={"recording_id": row.id},
    )
    session.commit()
    # WebM for VP8 rooms, Matroska for H.264 ones: as the worker that wrote it says
    media_type = download.response.headers.get("content-type", "video/webm").split(";")[0]
    suffix = ".mkv" if media_type == "video/x-matroska" else ".webm"
    headers = {"Content-Disposition": f'attachment; filename="recording-{row.id}{suffix}"'}
    if row.bytes is not None:
        headers["Content-Length"] = str(row.bytes)
    return StreamingResponse(download.chunks(), media_type=media_type, headers=headers)
