"""The meeting record over HTTP: invitations and agendas, the current item, conclusions, and
both as documents (documents_router: files; notices_router: contacts and e-mail notices)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Response, status
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.dependencies import PrincipalDep, ReadScope, SecretariatScope
from confbridge.auth.models import User
from confbridge.auth.scope import WHOLE, scope_of
from confbridge.auth.service import Principal
from confbridge.deps import SessionDep
from confbridge.errors import NotFound
from confbridge.meetings import access as meeting_access
from confbridge.meetings.models import Occurrence
from confbridge.pagination import IdPath
from confbridge.records import conclusions as conclusion_service
from confbridge.records import papers, render_docx, render_pdf
from confbridge.records import service as record_service
from confbridge.records.layout import AdminDocument
from confbridge.records.models import AgendaItem, Conclusion, Invitation
from confbridge.records.schemas import (
    AgendaItemRead,
    AttendeeGroup,
    AttendeeGroupRead,
    ConclusionRead,
    ConclusionWrite,
    CurrentItemWrite,
    InvitationRead,
    InvitationWrite,
    OccurrenceInvitationRead,
    TaskRead,
)
from confbridge.records.service import EffectiveInvitation
from confbridge.records.storage import DocumentStore, store_for
from confbridge.settings import Settings

router = APIRouter(tags=["meeting record"])


# --- who may read or change an occurrence's record ----------------------------------------------


def occurrence_reader(
    occurrence_id: IdPath, principal: PrincipalDep, session: SessionDep
) -> Occurrence:
    """The occurrence, for a user whose scope sees it or for a terminal of an invited site;
    404 to anyone else (a hall or unit outside learns nothing, not even that it exists)."""
    if principal.user is not None:
        auth_service.check_password_fresh(principal.user)
        scope = scope_of(session=session, user=principal.user)
        return meeting_access.visible_occurrence(
            session=session, occurrence_id=occurrence_id, scope=scope
        )
    terminal = principal.terminal
    assert terminal is not None
    if not record_service.is_invited(
        session=session, occurrence_id=occurrence_id, site_id=terminal.site_id
    ):
        raise NotFound(f"occurrence {occurrence_id} does not exist")
    return meeting_access.visible_occurrence(
        session=session, occurrence_id=occurrence_id, scope=WHOLE
    )


ReadableOccurrence = Annotated[Occurrence, Depends(occurrence_reader)]


@dataclass(frozen=True)
class Editing:
    """An occurrence whose record the user may change, and the user (for the audit)."""

    occurrence: Occurrence
    user: User


def occurrence_editor(
    occurrence_id: IdPath, editor: SecretariatScope, reader: ReadScope, session: SessionDep
) -> Editing:
    """The occurrence if its chair is in the user's secretariat scope: 404 when the user does
    not see it, 403 when it sees it but another unit chairs it. Checked before the body is
    read, so an upload from outside is refused before it is received."""
    occurrence = meeting_access.editable_occurrence(
        session=session, occurrence_id=occurrence_id, read=reader.scope, write=editor.scope
    )
    return Editing(occurrence=occurrence, user=editor.user)


EditableOccurrence = Annotated[Editing, Depends(occurrence_editor)]


def actor(principal: Principal | object) -> str:
    """How the record names who did something: `user:<name>` or `terminal:<id>`."""
    if isinstance(principal, Principal):
        return principal.actor
    return f"user:{getattr(principal, 'username', '?')}"


# --- shapes --------------------------------------------------------------------------------------


def _items_read(session: Session, items: list[AgendaItem]) -> list[AgendaItemRead]:
    names = record_service.site_names(
        session=session, site_ids=(i.presenter_site_id for i in items if i.presenter_site_id)
    )
    return [
        AgendaItemRead(
            id=item.id,
            position=item.position,
            title=item.title,
            presenter=item.presenter,
            presenter_site_id=item.presenter_site_id,
            presenter_site_name=names.get(item.presenter_site_id or 0),
            planned_min=item.planned_min,
        )
        for item in items
    ]


def _attendees_read(
    session: Session, stored: list[dict[str, object]] | None
) -> list[AttendeeGroupRead] | None:
    if stored is None:
        return None
    groups = [AttendeeGroup.model_validate(group) for group in stored]
    names = record_service.site_names(session=session, site_ids=(g.site_id or 0 for g in groups))
    return [
        AttendeeGroupRead(
            site_id=g.site_id, site_name=names.get(g.site_id or 0), text=g.text, roles=g.roles
        )
        for g in groups
    ]


def invitation_read(session: Session, invitation: Invitation | None) -> InvitationRead:
    """A stored invitation; all null when there is none."""
    if invitation is None:
        return InvitationRead(
            **dict.fromkeys(record_service.TEXT_FIELDS),
            attendees=None,
            agenda=None,
            updated_at=None,
        )
    return InvitationRead(
        **{name: getattr(invitation, name) for name in record_service.TEXT_FIELDS},
        attendees=_attendees_read(session, invitation.attendees),
        agenda=_items_read(session, invitation.items) if invitation.has_agenda else None,
        updated_at=invitation.updated_at,
    )


def effective_read(session: Session, found: EffectiveInvitation) -> OccurrenceInvitationRead:
    occurrence = found.occurrence
    return OccurrenceInvitationRead(
        **{name: getattr(found, name) for name in record_service.TEXT_FIELDS},
        attendees=_attendees_read(session, found.attendees),
        agenda=_items_read(session, found.items),
        updated_at=found.updated_at,
        occurrence_id=occurrence.id,
        series_id=occurrence.series_id,
        title=occurrence.series.title,
        start_at=occurrence.start_at,
        end_at=occurrence.end_at,
        tz=occurrence.series.tz,
        own_fields=found.own_fields,
        current_item_id=record_service.current_item_id(
            session=session, occurrence_id=occurrence.id
        ),
    )


# --- invitations and agendas ---------------------------------------------------------------------


@router.get("/series/{series_id}/invitation", response_model=InvitationRead)
def get_series_invitation(
    series_id: IdPath, reader: ReadScope, session: SessionDep
) -> InvitationRead:
    """The series' invitation and agenda: every occurrence's unless it sets its own."""
    meeting_access.visible_series(session=session, series_id=series_id, scope=reader.scope)
    return invitation_read(session, record_service.get(session=session, series_id=series_id))


@router.patch("/series/{series_id}/invitation", response_model=InvitationRead)
def write_series_invitation(
    series_id: IdPath,
    body: InvitationWrite,
    editor: SecretariatScope,
    reader: ReadScope,
    session: SessionDep,
) -> InvitationRead:
    """Set the series' invitation (giấy mời) and agenda; fields left out keep their value,
    `agenda` replaces the whole agenda (items given with their `id` keep it)."""
    user = editor.user
    series = meeting_access.editable_series(
        session=session, series_id=series_id, read=reader.scope, write=editor.scope
    )
    invitation = record_service.write(session=session, invitation_in=body, series=series)
    auth_service.record(
        session=session,
        actor=actor(user),
        action="invitation_updated",
        entity="series",
        entity_id=series.id,
        detail={"fields": sorted(body.model_fields_set)},
    )
    session.commit()
    session.refresh(invitation)
    return invitation_read(session, invitation)


@router.get("/occurrences/{occurrence_id}/invitation", response_model=OccurrenceInvitationRead)
def get_occurrence_invitation(
    occurrence: ReadableOccurrence, session: SessionDep
) -> OccurrenceInvitationRead:
    """What the occurrence's invitation says (its own fields over the series'), with the
    agenda item the chair marked current; for users and the invited sites' terminals."""
    return effective_read(session, record_service.effective(session=session, occurrence=occurrence))


@router.patch("/occurrences/{occurrence_id}/invitation", response_model=OccurrenceInvitationRead)
def write_occurrence_invitation(
    editing: EditableOccurrence, body: InvitationWrite, session: SessionDep
) -> OccurrenceInvitationRead:
    """Set this occurrence's own invitation fields (e.g. its document number and date); null
    gives a field back to the series, `agenda: null` the agenda."""
    occurrence, user = editing.occurrence, editing.user
    record_service.write(session=session, invitation_in=body, occurrence=occurrence)
    auth_service.record(
        session=session,
        actor=actor(user),
        action="invitation_updated",
        entity="occurrence",
        entity_id=occurrence.id,
        detail={"fields": sorted(body.model_fields_set)},
    )
    session.commit()
    return effective_read(session, record_service.effective(session=session, occurrence=occurrence))


@router.delete("/occurrences/{occurrence_id}/invitation", status_code=status.HTTP_204_NO_CONTENT)
def delete_occurrence_invitation(editing: EditableOccurrence, session: SessionDep) -> Response:
    """Drop the occurrence's own invitation: it says what the series' says again."""
    occurrence_id, user = editing.occurrence.id, editing.user
    if not record_service.delete(session=session, occurrence_id=occurrence_id):
        raise NotFound(f"occurrence {occurrence_id} has no invitation of its own")
    auth_service.record(
        session=session,
        actor=actor(user),
        action="invitation_deleted",
        entity="occurrence",
        entity_id=occurrence_id,
    )
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/occurrences/{occurrence_id}/current-item", response_model=OccurrenceInvitationRead)
def set_current_item(
    editing: EditableOccurrence, body: CurrentItemWrite, session: SessionDep
) -> OccurrenceInvitationRead:
    """Mark the agenda item the meeting is at; the halls show it."""
    occurrence, user = editing.occurrence, editing.user
    record_service.set_current_item(
        session=session, occurrence=occurrence, item_id=body.agenda_item_id, actor=actor(user)
    )
    session.commit()
    return effective_read(session, record_service.effective(session=session, occurrence=occurrence))


def document_store(settings: Settings) -> DocumentStore:
    """Where the documents' bytes are kept (data dir or object store)."""
    return store_for(settings)


# --- the invitation as a document ----------------------------------------------------------------

PDF_MEDIA_TYPE = "application/pdf"
DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def document_response(document: AdminDocument, fmt: Literal["pdf", "docx"], stem: str) -> Response:
    """The document drawn as PDF or DOCX, as a download named `<stem>.<fmt>`."""
    body = render_pdf.render(document) if fmt == "pdf" else render_docx.render(document)
    media_type = PDF_MEDIA_TYPE if fmt == "pdf" else DOCX_MEDIA_TYPE
    name = f"{stem}.{fmt}"
    disposition = f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"
    return Response(body, media_type=media_type, headers={"Content-Disposition": disposition})


@router.get(
    "/occurrences/{occurrence_id}/invitation.{fmt}",
    response_class=Response,
    responses={200: {"content": {PDF_MEDIA_TYPE: {}, DOCX_MEDIA_TYPE: {}}}},
)
def invitation_document(
    fmt: Literal["pdf", "docx"], occurrence: ReadableOccurrence, session: SessionDep
) -> Response:
    """The invitation (giấy mời) as PDF or DOCX, laid out as a Vietnamese administrative
    document; for users and the invited sites' terminals."""
    found = record_service.effective(session=session, occurrence=occurrence)
    document = papers.invitation_document(session, found)
    return document_response(document, fmt, f"giay-moi-{occurrence.id}")


# --- conclusions ---------------------------------------------------------------------------------


def conclusion_read(conclusion: Conclusion) -> ConclusionRead:
    return ConclusionRead(
        occurrence_id=conclusion.occurrence_id,
        document_number=conclusion.document_number,
        document_date=conclusion.document_date,
        signer_name=conclusion.signer_name,
        signer_title=conclusion.signer_title,
        text=conclusion.text,
        tasks=[
            TaskRead(
                id=task.id,
                position=task.position,
                content=task.content,
                unit=task.unit,
                unit_id=task.unit_id,
                deadline_date=task.deadline_date,
            )
            for task in conclusion.tasks
        ],
        recorded_by=conclusion.recorded_by,
        updated_at=conclusion.updated_at,
    )


@router.get("/occurrences/{occurrence_id}/conclusions", response_model=ConclusionRead)
def get_conclusions(occurrence: ReadableOccurrence, session: SessionDep) -> ConclusionRead:
    """The conclusions recorded after the meeting and the tasks they assign."""
    return conclusion_read(conclusion_service.get(session=session, occurrence_id=occurrence.id))


@router.put("/occurrences/{occurrence_id}/conclusions", response_model=ConclusionRead)
def write_conclusions(
    editing: EditableOccurrence, body: ConclusionWrite, session: SessionDep
) -> ConclusionRead:
    """Record the conclusions (thông báo kết luận) and assigned tasks; replaces earlier ones."""
    occurrence, user = editing.occurrence, editing.user
    conclusion = conclusion_service.write(
        session=session, occurrence=occurrence, conclusion_in=body, actor=actor(user)
    )
    auth_service.record(
        session=session,
        actor=actor(user),
        action="conclusions_recorded",
        entity="occurrence",
        entity_id=occurrence.id,
        detail={"tasks": len(body.tasks)},
    )
    session.commit()
    session.refresh(conclusion)
    return conclusion_read(conclusion)


@router.get(
    "/occurrences/{occurrence_id}/conclusions.{fmt}",
    response_class=Response,
    responses={200: {"content": {PDF_MEDIA_TYPE: {}, DOCX_MEDIA_TYPE: {}}}},
)
def conclusions_document(
    fmt: Literal["pdf", "docx"], occurrence: ReadableOccurrence, session: SessionDep
) -> Response:
    """The conclusions notice (thông báo kết luận) as PDF or DOCX."""
    conclusion = conclusion_service.get(session=session, occurrence_id=occurrence.id)
    found = record_service.effective(session=session, occurrence=occurrence)
    document = papers.conclusion_document(session, found, conclusion)
    return document_response(document, fmt, f"thong-bao-ket-luan-{occurrence.id}")
