"""What the occurrence page and the chair console show of an occurrence's recordings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confbridge import signing
from confbridge.auth.models import AuditEntry
from confbridge.errors import DomainError
from confbridge.meetings.models import Occurrence, RecordPolicy
from confbridge.recordings import archive
from confbridge.recordings import chapters as recording_chapters
from confbridge.recordings import service as recording_service
from confbridge.recordings.state import recording_now
from confbridge.web.context import Page

log = logging.getLogger(__name__)


def chapter_words(page: Page) -> dict[str, str]:
    """The words before a chapter's title, by its kind."""
    return {
        "floor": page._("Speech"),
        "content_start": page._("Presentation"),
        "content_stop": page._("Presentation ended"),
        "agenda": page._("Agenda item"),
    }


@dataclass
class RecordingView:
    """One finished or running recording on the occurrence page."""

    id: str
    started_at: datetime
    ended_at: datetime | None
    bytes: int | None
    failure: str | None
    base_url: str
    chapters: list[dict[str, Any]] = field(default_factory=list)
    accesses: list[AuditEntry] = field(default_factory=list)


def may_see_accesses(page: Page) -> bool:
    """Who downloaded a recording is for the secretariat (and admins)."""
    return page.user is not None and page.user.role in ("admin", "secretariat")


def recordings_view(page: Page, occurrence: Occurrence) -> list[RecordingView]:
    """The occurrence's recordings for its page; those still open are asked of their worker."""
    try:
        rows = recording_service.list_recordings(
            session=page.session,
            occurrence_id=occurrence.id,
            signer=signing.signer_for(page.settings.grant_key_path),
        )
        page.session.commit()  # recordings settled by their worker
    except DomainError as exc:
        page.session.rollback()
        log.warning("occurrence %s: recordings not listed: %s", occurrence.id, exc)
        return []
    words = chapter_words(page)
    accesses = archive.accesses(session=page.session, occurrence_id=occurrence.id)
    views = []
    for row in rows:
        names = recording_chapters.site_names(session=page.session, row=row)
        views.append(
            RecordingView(
                id=row.id,
                started_at=row.started_at,
                ended_at=row.ended_at,
                bytes=row.bytes,
                failure=row.failure,
                base_url=f"/occurrences/{occurrence.id}/recordings/{row.id}",
                chapters=recording_chapters.as_json(row, names, words),
                accesses=accesses.get(row.id, []) if may_see_accesses(page) else [],
            )
        )
    return views


def recording_context(page: Page, occurrence: Occurrence) -> dict[str, Any]:
    """Whether the meeting records now, and whether its series lets it."""
    return {
        "recording_now": recording_now(session=page.session, occurrence_id=occurrence.id)
        is not None,
        "recording_refused": occurrence.series.record == RecordPolicy.never.value,
    }
