"""Recordings in the browser: the console's record button, and on the occurrence page each
recording played (byte ranges, so that it seeks), its chapters and its download."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from confbridge import signing
from confbridge.auth.models import User
from confbridge.auth.service import Principal
from confbridge.errors import DomainError
from confbridge.recordings import archive
from confbridge.recordings import chapters as recording_chapters
from confbridge.recordings import service as recording_service
from confbridge.recordings.router import file_response
from confbridge.recordings.state import recording_now
from confbridge.web.context import CheckedForm, EditorPage, Page, UserPage
from confbridge.web.domain_messages import explain
from confbridge.web.occurrence_pages import occurrence_or_none
from confbridge.web.recording_views import chapter_words
from confbridge.web.shared import not_found, redirect

router = APIRouter(include_in_schema=False)


def _state(page: Page, occurrence_id: int) -> dict[str, object]:
    row = recording_now(session=page.session, occurrence_id=occurrence_id)
    return {"recording": row is not None, "recording_id": row.id if row else None}


@router.get("/occurrences/{occurrence_id}/recording")
def recording_state(page: EditorPage, occurrence_id: str) -> Response:
    """Whether the meeting records now (the console asks every few seconds)."""
    occurrence = occurrence_or_none(page, occurrence_id, edit=True)
    if occurrence is None:
        return JSONResponse({"detail": page._("This page does not exist.")}, 404)
    return JSONResponse(_state(page, occurrence.id))


@router.post("/occurrences/{occurrence_id}/recording")
def record(page: EditorPage, occurrence_id: str, form: CheckedForm) -> Response:
    """Start or stop recording from the console: JSON for its script, else back to it."""
    wants_json = "application/json" in page.request.headers.get("accept", "")
    occurrence = occurrence_or_none(page, occurrence_id, edit=True)
    if occurrence is None:
        if not wants_json:
            return not_found(page)
        return JSONResponse({"detail": page._("This page does not exist.")}, 404)
    action = str(form.get("action") or "")
    if action not in ("start", "stop"):
        return _answer(page, wants_json, page._("Unknown action."), 422)
    assert page.user is not None
    try:
        recording_service.command(
            session=page.session,
            occurrence_id=occurrence.id,
            principal=Principal(user=page.session.get(User, page.user.id)),
            action=action,
            signer=signing.signer_for(page.settings.grant_key_path),
        )
        page.session.commit()
    except DomainError as exc:
        page.session.rollback()
        return _answer(page, wants_json, _refusal(page, exc, action), exc.status_code)
    if not wants_json:
        return redirect(f"/occurrences/{occurrence.id}/console")
    return JSONResponse(_state(page, occurrence.id))


def _answer(page: Page, wants_json: bool, message: str, status_code: int) -> Response:
    if wants_json:
        return JSONResponse({"detail": message}, status_code)
    return page.render("error.html", status_code, message=message)


def _refusal(page: Page, exc: DomainError, action: str) -> str:
    if exc.status_code == 409 and "'never'" in exc.message:
        return page._("This series is not to be recorded (its setting is “never”).")
    if exc.status_code == 409 and "not open" in exc.message:
        return page._("The meeting room is not open yet: it opens when a site joins.")
    if exc.status_code == 409:
        if action == "start":
            return page._("The meeting is already being recorded.")
        return page._("The meeting is not being recorded.")
    return explain(page, exc)


def _file(page: Page, occurrence_id: str, recording_id: str, action: str) -> Response:
    occurrence = occurrence_or_none(page, occurrence_id)
    if occurrence is None or not recording_id or len(recording_id) > 64:
        return not_found(page)
    assert page.user is not None
    try:
        return file_response(
            session=page.session,
            settings=page.settings,
            occurrence_id=occurrence.id,
            recording_id=recording_id,
            request=page.request,
            actor=f"user:{page.user.username}",
            action=action,
        )
    except DomainError as exc:
        page.session.rollback()
        if exc.status_code == 404:
            return not_found(page)
        return page.render("error.html", exc.status_code, message=explain(page, exc))


@router.get("/occurrences/{occurrence_id}/recordings/{recording_id}/play")
def play(page: UserPage, occurrence_id: str, recording_id: str) -> Response:
    """The file for the page's player (inline; each playback audited)."""
    return _file(page, occurrence_id, recording_id, archive.PLAYED)


@router.get("/occurrences/{occurrence_id}/recordings/{recording_id}/download")
def download(page: UserPage, occurrence_id: str, recording_id: str) -> Response:
    """The file as a download (audited)."""
    return _file(page, occurrence_id, recording_id, archive.DOWNLOADED)


@router.get("/occurrences/{occurrence_id}/recordings/{recording_id}/chapters.vtt")
def chapters(page: UserPage, occurrence_id: str, recording_id: str) -> Response:
    """The chapters as WebVTT, in the page's language (the player's chapter track)."""
    occurrence = occurrence_or_none(page, occurrence_id)
    if occurrence is None:
        return not_found(page)
    try:
        row = recording_service.get_recording(
            session=page.session, occurrence_id=occurrence.id, recording_id=recording_id
        )
    except DomainError:
        return not_found(page)
    names = recording_chapters.site_names(session=page.session, row=row)
    body = recording_chapters.webvtt(row, names, chapter_words(page))
    return PlainTextResponse(body, media_type="text/vtt")
