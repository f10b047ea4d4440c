"""The secretariat builds a meeting's record without the API: the invitation, the agenda item
by item, documents, and the conclusions with their tasks (`/occurrences/{id}/record`).

Scoped as the API: the page and its forms are for users whose booking scope holds the
meeting's chair; anyone else gets "not found". Every form checks its CSRF token.

The invitation and agenda forms serve a series' page too (`series_record_pages`): their
handlers take a `RecordTarget`, the occurrence or the series they change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from confbridge.auth import service as auth_service
from confbridge.errors import DomainError
from confbridge.meetings.models import Occurrence, Series
from confbridge.records import agenda_edits
from confbridge.records import conclusions as conclusion_service
from confbridge.records import documents as document_service
from confbridge.records import service as record_service
from confbridge.records.documents_router import (
    agenda_item_id,
    parse_upload,
    store_upload,
    uploaded_file,
)
from confbridge.records.models import Invitation
from confbridge.records.router import document_store
from confbridge.records.schemas import AgendaItemIn, InvitationWrite
from confbridge.web import queries, record_pages
from confbridge.web.context import CheckedForm, EditorPage, Page
from confbridge.web.domain_messages import explain
from confbridge.web.labels import N_
from confbridge.web.occurrence_pages import occurrence_or_none
from confbridge.web.record_forms import AgendaItemForm, ConclusionForm, InvitationForm
from confbridge.web.security import CSRF_FIELD, check_csrf
from confbridge.web.shared import not_found, parse_id, redirect

router = APIRouter(include_in_schema=False)
# What `?saved=` says after a form was taken, and where the page scrolls to.
SAVED = {
    "invitation": N_("The invitation has been saved."),
    "agenda": N_("The agenda has been saved."),
    "document": N_("The document has been added."),
    "document_deleted": N_("The document has been deleted."),
    "conclusions": N_("The conclusions have been saved."),
}
AGENDA_ACTIONS = ("save", "up", "down", "delete")


@dataclass
class RecordForms:
    """The page's forms: fresh from the record, or one of them as typed with its errors."""

    invitation: InvitationForm | None = None
    items: dict[int, AgendaItemForm] = field(default_factory=dict)
    new_item: AgendaItemForm = field(default_factory=AgendaItemForm)
    conclusion: ConclusionForm | None = None
    upload_error: str | None = None
    # a refusal that concerns a section as a whole: {"section": ..., "text": ...}
    message: dict[str, str] | None = None


@dataclass(frozen=True)
class RecordTarget:
    """Whose invitation and agenda the forms change: one occurrence's, or a series' (every
    occurrence's, unless it sets its own)."""

    occurrence: Occurrence | None = None
    series: Series | None = None

    @property
    def entity(self) -> str:
        return "occurrence" if self.occurrence is not None else "series"

    @property
    def entity_id(self) -> int:
        owner = self.occurrence if self.occurrence is not None else self.series
        assert owner is not None
        return owner.id

    @property
    def base(self) -> str:
        """The page's path; its forms post below it."""
        kind = "occurrences" if self.occurrence is not None else "series"
        return f"/{kind}/{self.entity_id}/record"

    def inherited(self, session: Session) -> Invitation | None:
        """What an empty field follows: the series' invitation (none for the series itself)."""
        if self.occurrence is None:
            return None
        return record_service.get(session=session, series_id=self.occurrence.series_id)

    def write(self, session: Session, invitation_in: InvitationWrite) -> None:
        if self.occurrence is not None:
            record_service.write(
                session=session, invitation_in=invitation_in, occurrence=self.occurrence
            )
        else:
            record_service.write(session=session, invitation_in=invitation_in, series=self.series)

    def renamed_items(self, session: Session) -> dict[int, int]:
        """An occurrence following its series' agenda gets its own copy first: the new ids of
        the copied items (a series' agenda is changed in place)."""
        if self.occurrence is None:
            return {}
        return agenda_edits.own_agenda(session=session, occurrence=self.occurrence)[1]

    def edit_agenda(self, session: Session, change: agenda_edits.Change) -> None:
        agenda_edits.edit(
            session=session, change=change, occurrence=self.occurrence, series=self.series
        )


# The target's page with `forms` (the others filled from the record) and a status code.
Render = Callable[[Page, RecordForms, int], Response]


def _editable(page: EditorPage, occurrence_id: str) -> Occurrence | None:
    return occurrence_or_none(page, occurrence_id, edit=True)


EditableOccurrence = Annotated[Occurrence | None, Depends(_editable)]


def render_record(
    page: Page, occurrence: Occurrence, forms: RecordForms, status_code: int = 200
) -> Response:
    """The record's page with `forms` (the others filled from the record)."""
    assert page.user is not None
    record = record_pages.record_view(page, occurrence)
    for item in record.invitation.items:
        forms.items.setdefault(item.id, AgendaItemForm.from_item(item))
    if forms.invitation is None:
        forms.invitation = InvitationForm.from_record(record.invitation)
    if forms.conclusion is None:
        forms.conclusion = ConclusionForm.from_conclusion(record.conclusion)
    return page.render(
        "record_edit.html",
        status_code,
        target=RecordTarget(occurrence=occurrence),
        occurrence=occurrence,
        series=occurrence.series,
        record=record,
        forms=forms,
        agenda_items=record.invitation.items,
        follows_series="agenda" not in record.invitation.own_fields,
        sites=queries.invited_sites(
            session=page.session, occurrence_id=occurrence.id, scope=page.user.scope
        ),
        # sites chosen before, named even when no longer invited
        site_names=record.attendee_sites | record.presenter_sites,
        saved=saved_message(page, status_code),
        max_document_mb=page.settings.records.max_document_mb,
    )


def saved_message(page: Page, status_code: int) -> str | None:
    """What `?saved=` says after a form was taken."""
    saved = SAVED.get(page.request.query_params.get("saved", ""))
    return page._(saved) if saved and status_code == 200 else None


def _occurrence_render(occurrence: Occurrence) -> Render:
    return lambda page, forms, status_code: render_record(page, occurrence, forms, status_code)


def _actor(page: Page) -> str:
    assert page.user is not None
    return f"user:{page.user.username}"


def _audit(page: Page, target: RecordTarget, what: str, **detail: Any) -> None:
    auth_service.record(
        session=page.session,
        actor=_actor(page),
        action=what,
        entity=target.entity,
        entity_id=target.entity_id,
        detail={**detail, "via": "web"},
    )


def _refused(page: Page, render: Render, section: str, exc: DomainError) -> Response:
    page.session.rollback()
    message = {"section": section, "text": explain(page, exc)}
    return render(page, RecordForms(message=message), exc.status_code)


def _done(target: RecordTarget, saved: str, anchor: str) -> Response:
    return redirect(f"{target.base}?saved={saved}#{anchor}")


def take_invitation(
    page: Page, target: RecordTarget, form_data: FormData, render: Render
) -> Response:
    """Save the invitation form: refused beside its fields, or saved, audited as the API does."""
    form = InvitationForm.from_form(form_data)
    checked = form.to_write(target.inherited(page.session), page.translations.gettext)
    if checked is None:
        return render(page, RecordForms(invitation=form), 422)
    try:
        target.write(page.session, checked)
    except DomainError as exc:
        page.session.rollback()
        form.errors["form"] = explain(page, exc)
        return render(page, RecordForms(invitation=form), exc.status_code)
    _audit(page, target, "invitation_updated", fields=sorted(checked.model_fields_set))
    page.session.commit()
    return _done(target, "invitation", "invitation")


def take_new_item(
    page: Page, target: RecordTarget, form_data: FormData, render: Render
) -> Response:
    """Add an item at the end of the agenda."""
    form = AgendaItemForm.from_form(form_data)
    item = form.to_item(None, page.translations.gettext)
    if item is None:
        return render(page, RecordForms(new_item=form), 422)
    try:
        target.edit_agenda(page.session, lambda items: [*items, item])
    except DomainError as exc:
        return _refused(page, render, "agenda", exc)
    _audit(page, target, "invitation_updated", fields=["agenda"])
    page.session.commit()
    return _done(target, "agenda", "agenda")


def take_item_change(
    page: Page, target: RecordTarget, item_id: int, form_data: FormData, render: Render
) -> Response:
    """Save, move up or down, or delete one item (`action`, one of AGENDA_ACTIONS)."""
    action = str(form_data.get("action"))
    form = AgendaItemForm.from_form(form_data)
    try:
        current = target.renamed_items(page.session).get(item_id, item_id)
        item = None
        if action == "save":
            item = form.to_item(current, page.translations.gettext)
            if item is None:
                page.session.rollback()
                return render(page, RecordForms(items={item_id: form}), 422)
        target.edit_agenda(page.session, _item_change(action, current, item))
    except DomainError as exc:
        return _refused(page, render, "agenda", exc)
    _audit(page, target, "invitation_updated", fields=["agenda"], action=action)
    page.session.commit()
    return _done(target, "agenda", "agenda")


@router.get("/occurrences/{occurrence_id}/record")
def record_page(page: EditorPage, occurrence: EditableOccurrence) -> Response:
    if occurrence is None:
        return not_found(page)
    return render_record(page, occurrence, RecordForms())


@router.post("/occurrences/{occurrence_id}/record/invitation")
def save_invitation(
    page: EditorPage, occurrence: EditableOccurrence, form_data: CheckedForm
) -> Response:
    if occurrence is None:
        return not_found(page)
    target = RecordTarget(occurrence=occurrence)
    return take_invitation(page, target, form_data, _occurrence_render(occurrence))


@router.post("/occurrences/{occurrence_id}/record/agenda")
def add_agenda_item(
    page: EditorPage, occurrence: EditableOccurrence, form_data: CheckedForm
) -> Response:
    if occurrence is None:
        return not_found(page)
    target = RecordTarget(occurrence=occurrence)
    return take_new_item(page, target, form_data, _occurrence_render(occurrence))


@router.post("/occurrences/{occurrence_id}/record/agenda/{item_id}")
def change_agenda_item(
    page: EditorPage, occurrence: EditableOccurrence, item_id: str, form_data: CheckedForm
) -> Response:
    """Save, move up or down, or delete one item (`action`)."""
    parsed = parse_id(item_id)
    if occurrence is None or parsed is None or form_data.get("action") not in AGENDA_ACTIONS:
        return not_found(page)
    target = RecordTarget(occurrence=occurrence)
    return take_item_change(page, target, parsed, form_data, _occurrence_render(occurrence))


def _item_change(action: str, item_id: int, item: AgendaItemIn | None) -> agenda_edits.Change:
    """What `action` does to the agenda's items: save `item` in place, delete, move."""

    def change(items: list[AgendaItemIn]) -> list[AgendaItemIn]:
        if action in ("up", "down"):
            return agenda_edits.moved(items, item_id, -1 if action == "up" else 1)
        index = agenda_edits.index_of(items, item_id)
        if item is not None:
            items[index] = item
        else:
            items.pop(index)
        return items

    return change


@router.post("/occurrences/{occurrence_id}/record/conclusions")
def save_conclusions(
    page: EditorPage, occurrence: EditableOccurrence, form_data: CheckedForm
) -> Response:
    if occurrence is None:
        return not_found(page)
    form = ConclusionForm.from_form(form_data)
    checked = form.to_write(page.translations.gettext)
    if checked is None:
        return render_record(page, occurrence, RecordForms(conclusion=form), 422)
    try:
        conclusion_service.write(
            session=page.session, occurrence=occurrence, conclusion_in=checked, actor=_actor(page)
        )
    except DomainError as exc:
        page.session.rollback()
        form.errors["form"] = explain(page, exc)
        return render_record(page, occurrence, RecordForms(conclusion=form), exc.status_code)
    _audit(
        page, RecordTarget(occurrence=occurrence), "conclusions_recorded", tasks=len(checked.tasks)
    )
    page.session.commit()
    return _done(RecordTarget(occurrence=occurrence), "conclusions", "conclusions")


@router.post("/occurrences/{occurrence_id}/record/documents")
async def upload_document(
    request: Request, page: EditorPage, occurrence: EditableOccurrence
) -> Response:
    """A file from the form (PDF, DOCX, XLSX, PPTX, told by its content), to the meeting or
    to one of its agenda items; refused with a message beside the form, never stored half."""
    if occurrence is None:
        return not_found(page)
    settings = page.settings
    max_bytes = settings.records.max_document_mb << 20
    try:
        form = await parse_upload(request, max_bytes, max_fields=3)
    except DomainError as exc:
        return await run_in_threadpool(_upload_refused, page, occurrence, exc)
    try:
        token = form.get(CSRF_FIELD)
        check_csrf(request, settings.secret_key, token if isinstance(token, str) else None)
        upload = uploaded_file(form)
        item_id = agenda_item_id(form.get("agenda_item_id"))
        await run_in_threadpool(
            store_upload,
            request.app.state.db,
            settings,
            occurrence.id,
            upload,
            item_id,
            _actor(page),
            max_bytes,
        )
    except DomainError as exc:
        return await run_in_threadpool(_upload_refused, page, occurrence, exc)
    finally:
        await form.close()
    return _done(RecordTarget(occurrence=occurrence), "document", "documents")


def _upload_refused(page: Page, occurrence: Occurrence, exc: DomainError) -> Response:
    forms = RecordForms(upload_error=explain(page, exc))
    return render_record(page, occurrence, forms, exc.status_code)


@router.post("/occurrences/{occurrence_id}/record/documents/{document_id}/delete")
def delete_document(
    page: EditorPage, occurrence: EditableOccurrence, document_id: str, form_data: CheckedForm
) -> Response:
    del form_data  # checked for its CSRF token
    parsed = parse_id(document_id)
    if occurrence is None or parsed is None:
        return not_found(page)
    try:
        document = document_service.get(session=page.session, document_id=parsed)
    except DomainError:
        document = None
    if document is None or document.occurrence_id != occurrence.id:
        return not_found(page)
    key = document.storage_key
    document_service.delete(session=page.session, document=document)
    target = RecordTarget(occurrence=occurrence)
    _audit(page, target, "document_deleted", document_id=parsed)
    page.session.commit()
    document_store(page.settings).delete(key)
    return _done(target, "document_deleted", "documents")
