"""Meeting documents over HTTP: upload, list, download, delete."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from confbridge.auth import service as auth_service
from confbridge.auth.dependencies import PrincipalDep, ReadScope, SecretariatScope
from confbridge.db import Database
from confbridge.deps import SessionDep, SettingsDep
from confbridge.errors import Invalid, NotFound
from confbridge.meetings import access as meeting_access
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.models import Occurrence
from confbridge.pagination import IdPath
from confbridge.records import documents as document_service
from confbridge.records import filetypes
from confbridge.records.models import Document
from confbridge.records.router import (
    EditableOccurrence,
    ReadableOccurrence,
    actor,
    document_store,
    occurrence_reader,
)
from confbridge.records.schemas import DocumentCreated, DocumentRead
from confbridge.records.storage import TooLarge
from confbridge.settings import Settings
from confbridge.timeutil import utcnow

router = APIRouter(tags=["meeting record"])


# --- documents -----------------------------------------------------------------------------------

# Multipart framing around the file: boundaries, part headers and the agenda item's field.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "agenda_item_id": {"type": "integer", "minimum": 1},
                },
            }
        }
    },
}
TOO_LARGE = {413: {"description": "the file is larger than records.max_document_mb"}}


def _readable(occurrence: Occurrence, settings: Settings) -> None:
    """After the retention period, a meeting's documents are gone for everyone."""
    if document_service.expired(
        occurrence, now=utcnow(), retention_days=settings.records.document_retention_days
    ):
        raise NotFound("the meeting's documents are past their retention period")


def document_read(document: Document) -> DocumentRead:
    return DocumentRead(
        id=document.id,
        name=document.name,
        kind=document.kind,
        size=document.size,
        sha256=document.sha256,
        agenda_item_id=document.agenda_item_id,
        uploaded_at=document.uploaded_at,
        uploaded_by=document.uploaded_by,
    )


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request body, refused as soon as it passes `limit` bytes."""
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"file: larger than the limit of {limit >> 20} MB")
        yield chunk


def agenda_item_id(value: object) -> int | None:
    if value in (None, ""):
        return None
    try:
        parsed = int(str(value))
    except ValueError:
        raise Invalid("agenda_item_id: give the id of an agenda item") from None
    if not 1 <= parsed < 2**63:
        raise Invalid("agenda_item_id: give the id of an agenda item")
    return parsed


async def parse_upload(request: Request, max_bytes: int, *, max_fields: int = 2) -> FormData:
    """The multipart body of an upload of one file of at most `max_bytes` (and `max_fields`
    other fields), refused as soon as it is known to be larger; the caller closes it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD_BYTES:
        raise TooLarge(f"file: larger than the limit of {max_bytes >> 20} MB")
    parser = MultiPartParser(
        request.headers,
        _limited(request, max_bytes + MULTIPART_OVERHEAD_BYTES),
        max_files=1,
        max_fields=max_fields,
    )
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise Invalid(
            f"the body must be multipart/form-data with a 'file' part: {exc.message}"
        ) from None
    except ClientDisconnect:
        # the client went away mid-upload: nothing was stored, and no one reads the answer
        raise Invalid("file: the upload was interrupted") from None


def uploaded_file(form: FormData) -> UploadFile:
    """The form's `file` part; a browser sends one without a name when no file was chosen."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or (upload.filename == "" and not upload.size):
        raise Invalid("file: send the document as the multipart field 'file'")
    return upload


@router.post(
    "/occurrences/{occurrence_id}/documents",
    response_model=DocumentCreated,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses=TOO_LARGE,
)
async def upload_document(request: Request, editing: EditableOccurrence) -> DocumentCreated:
    """Add a document (PDF, DOCX, XLSX, PPTX: told by its content, not its name) to the
    occurrence, or to one of its agenda items (`agenda_item_id`)."""
    occurrence_id, user = editing.occurrence.id, editing.user
    settings: Settings = request.app.state.settings
    max_bytes = settings.records.max_document_mb << 20
    form = await parse_upload(request, max_bytes)
    try:
        upload = uploaded_file(form)
        item_id = agenda_item_id(form.get("agenda_item_id"))
        return await run_in_threadpool(
            store_upload,
            request.app.state.db,
            settings,
            occurrence_id,
            upload,
            item_id,
            actor(user),
            max_bytes,
        )
    finally:
        await form.close()


def store_upload(
    database: Database,
    settings: Settings,
    occurrence_id: int,
    upload: UploadFile,
    item_id: int | None,
    who: str,
    max_bytes: int,
) -> DocumentCreated:
    store = document_store(settings)
    with database.session() as session:
        occurrence = occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
        upload.file.seek(0)
        document = document_service.create(
            session=session,
            store=store,
            occurrence=occurrence,
            source=upload.file,
            filename=upload.filename,
            agenda_item_id=item_id,
            max_bytes=max_bytes,
            actor=who,
        )
        auth_service.record(
            session=session,
            actor=who,
            action="document_uploaded",
            entity="occurrence",
            entity_id=occurrence.id,
            detail={"document_id": document.id, "name": document.name, "sha256": document.sha256},
        )
        try:
            session.commit()
        except BaseException:
            store.delete(document.storage_key)
            raise
        return DocumentCreated(
            id=document.id, name=document.name, size=document.size, sha256=document.sha256
        )


@router.get("/occurrences/{occurrence_id}/documents", response_model=list[DocumentRead])
def list_documents(
    occurrence: ReadableOccurrence, session: SessionDep, settings: SettingsDep
) -> list[DocumentRead]:
    """The occurrence's documents; for users and the invited sites' terminals."""
    _readable(occurrence, settings)
    return [
        document_read(d)
        for d in document_service.list_(session=session, occurrence_id=occurrence.id)
    ]


def readable_document(
    document_id: IdPath, principal: PrincipalDep, session: SessionDep, settings: SettingsDep
) -> Document:
    """The document, for a user whose scope sees its meeting or an invited site's terminal,
    within the retention period; 404 to anyone else."""
    document = document_service.get(session=session, document_id=document_id)
    try:
        occurrence = occurrence_reader(document.occurrence_id, principal, session)
        _readable(occurrence, settings)
    except NotFound:
        raise NotFound(f"document {document_id} does not exist") from None
    return document


@router.get(
    "/documents/{document_id}",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in filetypes.MEDIA_TYPES.values()}}},
)
def download_document(
    document: Annotated[Document, Depends(readable_document)], settings: SettingsDep
) -> FileResponse:
    """The document's bytes, with its SHA-256 in `X-Content-SHA256`."""
    path = document_store(settings).path(document.storage_key)
    if not path.is_file():
        raise NotFound(f"document {document.id} is missing from the store")
    return FileResponse(
        path,
        media_type=filetypes.MEDIA_TYPES[document.kind],
        filename=document.name,
        headers={"X-Content-SHA256": document.sha256},
    )


@router.delete("/documents/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_document(
    document_id: IdPath,
    editor: SecretariatScope,
    reader: ReadScope,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """Delete a document: the secretariat of the unit chairing its meeting (404 when the
    meeting is outside the user's scope, 403 when another unit chairs it)."""
    user = editor.user
    document = document_service.get(session=session, document_id=document_id)
    try:
        occurrence = meeting_access.visible_occurrence(
            session=session, occurrence_id=document.occurrence_id, scope=reader.scope
        )
    except NotFound:
        raise NotFound(f"document {document_id} does not exist") from None
    meeting_access.check_chair(session=session, series=occurrence.series, scope=editor.scope)
    key, occurrence_id = document.storage_key, document.occurrence_id
    document_service.delete(session=session, document=document)
    auth_service.record(
        session=session,
        actor=actor(user),
        action="document_deleted",
        entity="occurrence",
        entity_id=occurrence_id,
        detail={"document_id": document_id},
    )
    session.commit()
    document_store(settings).delete(key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
