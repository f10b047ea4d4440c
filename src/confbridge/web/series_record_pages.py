"""The secretariat sets a series' own invitation (giấy mời) and agenda in the browser
(`/series/{id}/record`): every meeting of the series says them, unless it sets its own.

The occurrence record's forms and their handlers (`record_edit_pages`), aimed at the series;
no documents or conclusions here, as those belong to a meeting. Scoped as the API's
`PATCH /series/{id}/invitation`: "not found" (404) to a user who does not see the series, 403
to one who sees it while another unit chairs it. Every form checks its CSRF token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from confbridge.errors import DomainError, Forbidden
from confbridge.meetings import access as meeting_access
from confbridge.meetings.models import Series
from confbridge.records import service as record_service
from confbridge.web import queries
from confbridge.web.context import CheckedForm, EditorPage, Page
from confbridge.web.record_edit_pages import (
    AGENDA_ACTIONS,
    RecordForms,
    RecordTarget,
    Render,
    saved_message,
    take_invitation,
    take_item_change,
    take_new_item,
)
from confbridge.web.record_forms import AgendaItemForm, InvitationForm
from confbridge.web.shared import not_found, parse_id

router = APIRouter(include_in_schema=False)


def _editable(page: EditorPage, series_id: str) -> Series | Response:
    """The series if the user may change it; else the page that says why: "not found" when
    its scope does not see it, 403 when another unit chairs it."""
    assert page.user is not None
    parsed = parse_id(series_id)
    if parsed is None:
        return not_found(page)
    try:
        return meeting_access.editable_series(
            session=page.session,
            series_id=parsed,
            read=page.user.scope,
            write=page.user.edit_scope,
        )
    except Forbidden:
        message = page._(
            "Another unit chairs this series: only its secretariat (or one above it) may change "
            "the series' invitation and agenda."
        )
        return page.render("error.html", 403, message=message)
    except DomainError:
        return not_found(page)


EditableSeries = Annotated[Series | Response, Depends(_editable)]


def render_series_record(
    page: Page, series: Series, forms: RecordForms, status_code: int = 200
) -> Response:
    """The series' invitation and agenda page with `forms` (the others filled from it)."""
    assert page.user is not None
    stored = record_service.get(session=page.session, series_id=series.id)
    items = list(stored.items) if stored is not None else []
    for item in items:
        forms.items.setdefault(item.id, AgendaItemForm.from_item(item))
    if forms.invitation is None:
        forms.invitation = InvitationForm.from_record(stored)
    attendees = (stored.attendees if stored is not None else None) or []
    chosen = [int(group.get("site_id") or 0) for group in attendees]
    chosen += [item.presenter_site_id or 0 for item in items]
    return page.render(
        "series_record.html",
        status_code,
        target=RecordTarget(series=series),
        series=series,
        forms=forms,
        agenda_items=items,
        follows_series=False,
        sites=queries.series_sites(session=page.session, series=series, scope=page.user.scope),
        # sites chosen before, named even when the series no longer books them
        site_names=record_service.site_names(session=page.session, site_ids=chosen),
        saved=saved_message(page, status_code),
    )


def _render(series: Series) -> Render:
    return lambda page, forms, status_code: render_series_record(page, series, forms, status_code)


@router.get("/series/{series_id}/record")
def series_record_page(page: EditorPage, series: EditableSeries) -> Response:
    if isinstance(series, Response):
        return series
    return render_series_record(page, series, RecordForms())


@router.post("/series/{series_id}/record/invitation")
def save_series_invitation(
    page: EditorPage, series: EditableSeries, form_data: CheckedForm
) -> Response:
    if isinstance(series, Response):
        return series
    return take_invitation(page, RecordTarget(series=series), form_data, _render(series))


@router.post("/series/{series_id}/record/agenda")
def add_series_agenda_item(
    page: EditorPage, series: EditableSeries, form_data: CheckedForm
) -> Response:
    if isinstance(series, Response):
        return series
    return take_new_item(page, RecordTarget(series=series), form_data, _render(series))


@router.post("/series/{series_id}/record/agenda/{item_id}")
def change_series_agenda_item(
    page: EditorPage, series: EditableSeries, item_id: str, form_data: CheckedForm
) -> Response:
    """Save, move up or down, or delete one item (`action`)."""
    if isinstance(series, Response):
        return series
    parsed = parse_id(item_id)
    if parsed is None or form_data.get("action") not in AGENDA_ACTIONS:
        return not_found(page)
    target = RecordTarget(series=series)
    return take_item_change(page, target, parsed, form_data, _render(series))
