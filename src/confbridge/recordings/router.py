"""The recordings API: start and stop, the list, each file (byte ranges), its chapters (WebVTT)
and who downloaded or played it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlalchemy.orm import Session

from confbridge import signing
from confbridge.auth.dependencies import PrincipalDep, ReadScope, SecretariatScope
from confbridge.auth.models import User
from confbridge.deps import SessionDep, SettingsDep
from confbridge.meetings import access as meeting_access
from confbridge.object_store import store_of
from confbridge.pagination import IdPath
from confbridge.recordings import archive, service
from confbridge.recordings import chapters as recording_chapters
from confbridge.recordings.models import Recording
from confbridge.recordings.schemas import RecordingAccessRead, RecordingRead, RecordingRequest
from confbridge.settings import Settings
from confbridge_kernel.recordings import RECORDING_ID_PATTERN

router = APIRouter(tags=["recordings"])
API_PREFIX = "/api/v1"
RecordingIdPath = Annotated[str, Path(pattern=RECORDING_ID_PATTERN)]


def recording_read(row: Recording) -> RecordingRead:
    base = f"{API_PREFIX}/occurrences/{row.occurrence_id}/recordings/{row.id}"
    ended = row.ended_at is not None
    return RecordingRead(
        id=row.id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        bytes=row.bytes,
        sha256=row.sha256,
        download_url=f"{base}/file" if ended else None,
        chapters_url=f"{base}/chapters.vtt" if ended else None,
        failure=row.failure,
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
    meeting_access.check_secretariat_edit(
        session=session, user=principal.user, occurrence_id=occurrence_id
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
    """A user and the occurrence it may read the recordings of."""

    occurrence_id: int
    user: User


def recordings_reader(occurrence_id: IdPath, reader: ReadScope, session: SessionDep) -> Reading:
    """A user whose scope sees the meeting (the chair's or an invited site's unit, or above):
    its secretariat and the invited sites' users; 404 otherwise, 403 for terminals."""
    meeting_access.visible_occurrence(
        session=session, occurrence_id=occurrence_id, scope=reader.scope
    )
    return Reading(occurrence_id=occurrence_id, user=reader.user)


def recordings_secretariat(
    occurrence_id: IdPath, secretariat: SecretariatScope, reader: ReadScope, session: SessionDep
) -> Reading:
    """The secretariat (403 for other roles), for a meeting its scope sees (404 otherwise)."""
    meeting_access.visible_occurrence(
        session=session, occurrence_id=occurrence_id, scope=reader.scope
    )
    return Reading(occurrence_id=occurrence_id, user=secretariat.user)


Reader = Annotated[Reading, Depends(recordings_reader)]
SecretariatReader = Annotated[Reading, Depends(recordings_secretariat)]


@router.get("/occurrences/{occurrence_id}/recordings", response_model=list[RecordingRead])
def list_recordings(
    occurrence_id: IdPath, _reading: Reader, session: SessionDep, settings: SettingsDep
) -> list[RecordingRead]:
    """The occurrence's recordings, oldest first (the users whose scope sees the meeting)."""
    rows = service.list_recordings(
        session=session,
        occurrence_id=occurrence_id,
        signer=signing.signer_for(settings.grant_key_path),
    )
    session.commit()  # recordings settled by their worker
    return [recording_read(row) for row in rows]


def first_request(byte_range: str | None) -> bool:
    """Whether a request for the file starts it (no range, or one from its first byte): one
    audit entry per download or playback, not one per range a player asks for."""
    return byte_range is None or byte_range.replace(" ", "").startswith("bytes=0-")


def file_response(
    *,
    session: Session,
    settings: Settings,
    occurrence_id: int,
    recording_id: str,
    request: Request,
    actor: str,
    action: str,
) -> StreamingResponse:
    """The recording's file (WebM, or Matroska for H.264 rooms; or the byte range asked for),
    streamed from the media server that wrote it; its first request audited as `action`."""
    byte_range = request.headers.get("range")
    row, download = service.open_file(
        session=session,
        occurrence_id=occurrence_id,
        recording_id=recording_id,
        signer=signing.signer_for(settings.grant_key_path),
        objects=store_of(settings),
        byte_range=byte_range,
    )
    if first_request(byte_range):
        archive.record_access(session=session, actor=actor, row=row, action=action)
    session.commit()
    how = "attachment" if action == archive.DOWNLOADED else "inline"
    # WebM for VP8 rooms, Matroska for H.264 ones: as the worker that wrote it says
    media_type = download.headers.get("content-type", "video/webm").split(";")[0]
    suffix = ".mkv" if media_type == "video/x-matroska" else ".webm"
    headers = {"Content-Disposition": f'{how}; filename="recording-{row.id}{suffix}"'}
    for name in ("content-length", "content-range", "accept-ranges"):
        if name in download.headers:
            headers[name] = download.headers[name]
    return StreamingResponse(
        download.chunks(),
        status_code=download.status_code,
        media_type=media_type,
        headers=headers,
    )


@router.get(
    "/occurrences/{occurrence_id}/recordings/{recording_id}/file",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"video/webm": {}, "video/x-matroska": {}}},
        206: {"description": "a byte range"},
    },
)
def download(
    occurrence_id: IdPath,
    recording_id: RecordingIdPath,
    reading: Reader,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> StreamingResponse:
    """The recording's WebM file (`Range` for a part), streamed from the media server that
    wrote it; each download is audited."""
    return file_response(
        session=session,
        settings=settings,
        occurrence_id=occurrence_id,
        recording_id=recording_id,
        request=request,
        actor=f"user:{reading.user.username}",
        action=archive.DOWNLOADED,
    )


@router.get(
    "/occurrences/{occurrence_id}/recordings/{recording_id}/chapters.vtt",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/vtt": {}}}},
)
def chapters(
    occurrence_id: IdPath, recording_id: RecordingIdPath, _reading: Reader, session: SessionDep
) -> PlainTextResponse:
    """The recording's chapters as WebVTT: floor changes and content shown (named by site),
    and the agenda items the chair marked current."""
    row = service.get_recording(
        session=session, occurrence_id=occurrence_id, recording_id=recording_id
    )
    names = recording_chapters.site_names(session=session, row=row)
    body = recording_chapters.webvtt(row, names, {})
    return PlainTextResponse(body, media_type="text/vtt")


@router.get(
    "/occurrences/{occurrence_id}/recordings/{recording_id}/downloads",
    response_model=list[RecordingAccessRead],
)
def downloads(
    occurrence_id: IdPath,
    recording_id: RecordingIdPath,
    _reading: SecretariatReader,
    session: SessionDep,
) -> list[RecordingAccessRead]:
    """Who downloaded or played the recording, newest first (the secretariat)."""
    service.get_recording(session=session, occurrence_id=occurrence_id, recording_id=recording_id)
    entries = archive.accesses(session=session, occurrence_id=occurrence_id).get(recording_id, [])
    return [
        RecordingAccessRead(at=e.at, actor=e.actor, action=e.action, address=e.address)
        for e in entries
    ]
