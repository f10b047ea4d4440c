"""A recording's chapters: the worker's (floor changes, content start and stop), the agenda
items the chair marks current while it records, and the WebVTT chapter track made of them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.db import Base
from confbridge.recordings.models import Recording
from confbridge.recordings.state import recording_now
from confbridge_kernel.recordings import RecordingChapter

AGENDA = "agenda"
MAX_TITLE_CHARS = 300


def chapters_of(row: Recording) -> list[RecordingChapter]:
    """The recording's chapters, by their start."""
    found = [RecordingChapter.model_validate(c) for c in row.chapters or []]
    return sorted(found, key=lambda c: c.start_ms)


def _store(row: Recording, chapters: Iterable[RecordingChapter]) -> None:
    # a new list, so that the JSON column is seen as changed
    ordered = sorted(chapters, key=lambda c: c.start_ms)
    row.chapters = [c.model_dump(mode="json") for c in ordered]


def take_worker_chapters(row: Recording, worker: list[RecordingChapter]) -> None:
    """Keep the worker's chapters and the agenda items marked here that the worker lacks."""
    if not worker:
        return
    known = {(c.kind, c.title) for c in worker}
    marked = [c for c in chapters_of(row) if c.kind == AGENDA and (c.kind, c.title) not in known]
    _store(row, [*worker, *marked])


def mark_agenda_item(
    *, session: Session, occurrence_id: int, title: str, site_id: int | None, now: datetime
) -> Recording | None:
    """A chapter for the agenda item the chair marked current, in the occurrence's recording
    running now (if any); returns that recording."""
    row = recording_now(session=session, occurrence_id=occurrence_id)
    if row is None:
        return None
    start_ms = max(0, int((now - row.started_at).total_seconds() * 1000))
    chapter = RecordingChapter(
        start_ms=start_ms, kind=AGENDA, title=title[:MAX_TITLE_CHARS], site_id=site_id
    )
    _store(row, [*chapters_of(row), chapter])
    session.flush()
    return row


def site_names(*, session: Session, row: Recording) -> dict[int, str]:
    """The names of the sites the recording's chapters name."""
    ids = sorted({c.site_id for c in chapters_of(row) if c.site_id})
    if not ids:
        return {}
    table = Base.metadata.tables["sites"]  # the sites floor is read by name, not imported
    return dict(session.execute(select(table.c.id, table.c.name).where(table.c.id.in_(ids))).all())


def duration_ms(row: Recording) -> int | None:
    """How long the recording runs, once it has ended."""
    if row.ended_at is None:
        return None
    return max(0, int((row.ended_at - row.started_at).total_seconds() * 1000))


def _timestamp(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def cue_text(
    chapter: RecordingChapter, site_names: Mapping[int, str], words: Mapping[str, str]
) -> str:
    """A chapter's title for people: the kind's word, then the title (or the site's name)."""
    title = chapter.title or site_names.get(chapter.site_id or 0, "")
    word = words.get(chapter.kind, "")
    text = f"{word}: {title}" if word and title else word or title
    # a cue's text may not hold a blank line or "-->"
    return " ".join(text.replace("-->", "→").split())


def timeline(row: Recording) -> list[tuple[int, int, RecordingChapter]]:
    """Each chapter with its start and end in ms (the next chapter's start, or the end);
    those starting after the end of the file are left out."""
    chapters = chapters_of(row)
    end = duration_ms(row)
    spans = []
    for index, chapter in enumerate(chapters):
        if end is not None and chapter.start_ms >= end:
            break
        following = chapters[index + 1].start_ms if index + 1 < len(chapters) else end
        stop = following if following is not None else chapter.start_ms + 1000
        if end is not None:
            stop = min(stop, end)
        spans.append((chapter.start_ms, max(stop, chapter.start_ms + 1), chapter))
    return spans


def webvtt(row: Recording, site_names: Mapping[int, str], words: Mapping[str, str]) -> str:
    """The chapters as a WebVTT file (a `<track kind="chapters">`)."""
    lines = ["WEBVTT", ""]
    for number, (start, stop, chapter) in enumerate(timeline(row), start=1):
        lines += [str(number), f"{_timestamp(start)} --> {_timestamp(stop)}"]
        lines += [cue_text(chapter, site_names, words), ""]
    return "\n".join(lines)


def as_json(
    row: Recording, site_names: Mapping[int, str], words: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The chapters for a page: start in seconds, kind and text."""
    return [
        {"start_s": start / 1000, "kind": c.kind, "text": cue_text(c, site_names, words)}
        for start, _stop, c in timeline(row)
    ]
