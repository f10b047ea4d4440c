"""The meeting's record on the occurrence page: invitation, agenda, documents, conclusions,
and their downloads for signed-in users (the API serves the same to tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from confbridge.errors import DomainError
from confbridge.meetings import access as meeting_access
from confbridge.meetings.models import Occurrence
from confbridge.records import conclusions as conclusion_service
from confbridge.records import documents as document_service
from confbridge.records import filetypes, papers
from confbridge.records import notices as notice_service
from confbridge.records import service as record_service
from confbridge.records.models import Conclusion, Document, Notice
from confbridge.records.router import document_response, document_store
from confbridge.records.service import EffectiveInvitation
from confbridge.timeutil import utcnow
from confbridge.web.context import CheckedForm, EditorPage, Page, UserPage
from confbridge.web.labels import N_
from confbridge.web.shared import not_found, parse_id, redirect

router = APIRouter(include_in_schema=False)
# The words of notices' kinds and states on the page (translated there).
NOTICE_KINDS = {
    "invitation": N_("Invitation"),
    "change": N_("Change"),
    "cancellation": N_("Cancellation"),
    "reminder_1d": N_("Reminder (1 day)"),
    "reminder_30m": N_("Reminder (30 minutes)"),
}
NOTICE_STATES = {
    "pending": N_("Pending"),
    "sending": N_("Sending"),
    "sent": N_("Sent"),
    "failed": N_("Failed"),
}


@dataclass
class RecordView:
    """What the occurrence page shows of the record."""

    invitation: EffectiveInvitation
    presenter_sites: dict[int, str]
    # "2. Báo cáo thu ngân sách" by item id: what a document is attached to
    item_titles: dict[int, str]
    attendee_sites: dict[int, str]
    current_item_id: int | None
    documents: list[Document]
    documents_expired: bool
    conclusion: Conclusion | None
    notices: list[Notice]


def record_view(page: Page, occurrence: Occurrence) -> RecordView:
    """The record of `occurrence` for its page."""
    session = page.session
    found = record_service.effective(session=session, occurrence=occurrence)
    expired = document_service.expired(
        occurrence, now=utcnow(), retention_days=page.settings.records.document_retention_days
    )
    try:
        conclusion: Conclusion | None = conclusion_service.get(
            session=session, occurrence_id=occurrence.id
        )
    except DomainError:
        conclusion = None
    return RecordView(
        invitation=found,
        item_titles={item.id: f"{item.position}. {item.title}" for item in found.items},
        presenter_sites=record_service.site_names(
            session=session, site_ids=(i.presenter_site_id or 0 for i in found.items)
        ),
        attendee_sites=record_service.site_names(
            session=session, site_ids=(int(g.get("site_id") or 0) for g in found.attendees)
        ),
        current_item_id=record_service.current_item_id(
            session=session, occurrence_id=occurrence.id
        ),
        documents=[]
        if expired
        else document_service.list_(session=session, occurrence_id=occurrence.id),
        documents_expired=expired,
        conclusion=conclusion,
        notices=notice_service.list_(session=session, occurrence_id=occurrence.id),
    )


def _occurrence(page: Page, occurrence_id: str, *, edit: bool = False) -> Occurrence | None:
    """The occurrence if the user's scope sees it (with `edit`: if its chair is in the user's
    booking scope); else None, for a "not found" page, as on the occurrence's own page."""
    assert page.user is not None
    parsed = parse_id(occurrence_id)
    if parsed is None:
        return None
    try:
        return _scoped(page, parsed, edit=edit)
    except DomainError:
        return None


def _scoped(page: Page, occurrence_id: int, *, edit: bool) -> Occurrence:
    assert page.user is not None
    if edit:
        return meeting_access.editable_occurrence(
            session=page.session,
            occurrence_id=occurrence_id,
            read=page.user.scope,
            write=page.user.edit_scope,
        )
    return meeting_access.visible_occurrence(
        session=page.session, occurrence_id=occurrence_id, scope=page.user.scope
    )


@router.get("/occurrences/{occurrence_id}/invitation.{fmt}")
def invitation_download(page: UserPage, occurrence_id: str, fmt: str) -> Response:
    occurrence = _occurrence(page, occurrence_id)
    if occurrence is None or fmt not in ("pdf", "docx"):
        return not_found(page)
    found = record_service.effective(session=page.session, occurrence=occurrence)
    document = papers.invitation_document(page.session, found)
    return document_response(document, _format(fmt), f"giay-moi-{occurrence.id}")


@router.get("/occurrences/{occurrence_id}/conclusions.{fmt}")
def conclusions_download(page: UserPage, occurrence_id: str, fmt: str) -> Response:
    occurrence = _occurrence(page, occurrence_id)
    if occurrence is None or fmt not in ("pdf", "docx"):
        return not_found(page)
    try:
        conclusion = conclusion_service.get(session=page.session, occurrence_id=occurrence.id)
    except DomainError:
        return not_found(page)
    found = record_service.effective(session=page.session, occurrence=occurrence)
    document = papers.conclusion_document(page.session, found, conclusion)
    return document_response(document, _format(fmt), f"thong-bao-ket-luan-{occurrence.id}")


@router.get("/documents/{document_id}")
def document_download(page: UserPage, document_id: str) -> Response:
    parsed = parse_id(document_id)
    document = page.session.get(Document, parsed) if parsed is not None else None
    if document is None:
        return not_found(page)
    occurrence = _occurrence(page, str(document.occurrence_id))
    retention = page.settings.records.document_retention_days
    path = document_store(page.settings).path(document.storage_key)
    if (
        occurrence is None
        or document_service.expired(occurrence, now=utcnow(), retention_days=retention)
        or not path.is_file()
    ):
        return not_found(page)
    return FileResponse(
        path,
        media_type=filetypes.MEDIA_TYPES[document.kind],
        filename=document.name,
        headers={"X-Content-SHA256": document.sha256},
    )


@router.post("/occurrences/{occurrence_id}/current-item")
def mark_current_item(page: EditorPage, occurrence_id: str, form_data: CheckedForm) -> Response:
    """The secretariat marks the agenda item the meeting is at (the halls show it)."""
    occurrence = _occurrence(page, occurrence_id, edit=True)
    if occurrence is None:
        return not_found(page)
    raw = form_data.get("agenda_item_id")
    item_id = parse_id(raw) if isinstance(raw, str) and raw else None
    assert page.user is not None
    try:
        record_service.set_current_item(
            session=page.session,
            occurrence=occurrence,
            item_id=item_id,
            actor=f"user:{page.user.username}",
        )
    except DomainError:
        return not_found(page)  # an item of another agenda: nothing to mark here
    page.session.commit()
    return redirect(f"/occurrences/{occurrence.id}#agenda")


def _format(fmt: str) -> Literal["pdf", "docx"]:
    return "pdf" if fmt == "pdf" else "docx"
