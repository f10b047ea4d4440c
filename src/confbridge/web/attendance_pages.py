"""Correcting a site's attendance from the meeting's page: the secretariat of the site's unit
sets its status with a reason; the computed figures stay beside it, and the audit log keeps
the change (`attendance.service.correct`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from confbridge.attendance import service as attendance_service
from confbridge.attendance.models import AttendanceStatus
from confbridge.sites.access import visible_site
from confbridge.timeutil import utcnow
from confbridge.web.admin.common import Refused, actor, attempt, choice, required_id, text
from confbridge.web.context import CheckedForm, EditorPage
from confbridge.web.forms import OccurrenceForm
from confbridge.web.occurrence_pages import occurrence_context, occurrence_or_none
from confbridge.web.shared import not_found, redirect

router = APIRouter(include_in_schema=False)
MAX_REASON_CHARS = 500


@router.post("/occurrences/{occurrence_id}/attendance/corrections")
def correct_attendance(page: EditorPage, occurrence_id: str, form: CheckedForm) -> Response:
    occurrence = occurrence_or_none(page, occurrence_id)
    if occurrence is None:
        return not_found(page)
    assert page.user is not None
    edit_scope = page.user.edit_scope

    def change() -> Response:
        site_id = required_id(form, "site_id", page._("Choose a site."))
        visible_site(session=page.session, site_id=site_id, scope=edit_scope)
        status = choice(AttendanceStatus, text(form, "status", 20), page._("Choose a status."))
        reason = text(form, "reason", MAX_REASON_CHARS)
        if not reason:
            raise Refused(page._("Give the reason for the correction."))
        attendance_service.correct(
            session=page.session,
            occurrence_id=occurrence.id,
            site_id=site_id,
            status=status,
            reason=reason,
            actor=actor(page),
            rule=page.settings.reports.attendance,
            now=utcnow(),
        )
        return redirect(f"/occurrences/{occurrence.id}?corrected=1#attendance-title")

    def shown_again(status_code: int, error: str) -> Response:
        form_shown = OccurrenceForm.from_occurrence(occurrence, page.settings.meetings.default_tz)
        context = occurrence_context(page, occurrence)
        return page.render(
            "occurrence.html",
            status_code,
            form=form_shown,
            message=None,
            conflicts=[],
            correction_error=error,
            correction_reason=text(form, "reason", MAX_REASON_CHARS),
            **context,
        )

    return attempt(page, change, shown_again)
