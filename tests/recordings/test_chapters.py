"""A recording's chapters: the worker's kept with the agenda items marked here, an agenda item
marked during a recording, the WebVTT track made of them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from confbridge.recordings import chapters
from confbridge.recordings.models import Recording
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from confbridge_kernel.recordings import RecordingChapter
from tests.support.factories import make_occurrences


def _recording(session: Session, occurrence_id: int, seconds: float | None) -> Recording:
    started_at = utcnow() - timedelta(seconds=30)
    row = Recording(
        id="a" * 32,
        occurrence_id=occurrence_id,
        node_id="local-0",
        started_at=started_at,
        ended_at=None if seconds is None else started_at + timedelta(seconds=seconds),
        started_by="user:vanphong",
    )
    session.add(row)
    session.flush()
    return row


def test_chapters_agenda_marked_while_recording_and_kept_beside_the_workers(
    session: Session, sites: dict[str, Site]
) -> None:
    occurrence = make_occurrences(session, sites, count=1)[0]
    assert (
        chapters.mark_agenda_item(
            session=session,
            occurrence_id=occurrence.id,
            title="1. Khai mạc",
            site_id=None,
            now=utcnow(),
        )
        is None
    )  # nothing records: no chapter
    row = _recording(session, occurrence.id, None)
    marked = chapters.mark_agenda_item(
        session=session,
        occurrence_id=occurrence.id,
        title="2. Báo cáo",
        site_id=sites["p1"].id,
        now=row.started_at + timedelta(seconds=12.5),
    )
    assert marked is row
    assert row.chapters == [
        {"start_ms": 12_500, "kind": "agenda", "title": "2. Báo cáo", "site_id": sites["p1"].id}
    ]
    worker = [
        RecordingChapter(start_ms=0, kind="floor", title="", site_id=sites["hq"].id),
        RecordingChapter(start_ms=20_000, kind="content_start", title="Hội trường UBND Phường Một"),
    ]
    chapters.take_worker_chapters(row, worker)
    assert [(c.start_ms, c.kind) for c in chapters.chapters_of(row)] == [
        (0, "floor"),
        (12_500, "agenda"),
        (20_000, "content_start"),
    ]
    chapters.take_worker_chapters(row, [])  # a worker without chapters changes nothing
    assert len(chapters.chapters_of(row)) == 3


def test_chapters_webvtt_ends_each_cue_at_the_next_and_drops_those_past_the_end(
    session: Session, sites: dict[str, Site]
) -> None:
    occurrence = make_occurrences(session, sites, count=1)[0]
    row = _recording(session, occurrence.id, 3725.25)
    row.chapters = [
        {"start_ms": 0, "kind": "floor", "title": "", "site_id": sites["hq"].id},
        {"start_ms": 3_600_000, "kind": "agenda", "title": "3. Kết luận --> giao việc"},
        {"start_ms": 4_000_000, "kind": "floor", "title": "late"},
    ]
    names = chapters.site_names(session=session, row=row)
    assert names == {sites["hq"].id: sites["hq"].name}
    body = chapters.webvtt(row, names, {"floor": "Phát biểu", "agenda": "Nội dung"})
    assert body.split("\n") == [
        "WEBVTT",
        "",
        "1",
        "00:00:00.000 --> 01:00:00.000",
        f"Phát biểu: {sites['hq'].name}",
        "",
        "2",
        "01:00:00.000 --> 01:02:05.250",
        "Nội dung: 3. Kết luận → giao việc",
        "",
    ]
    assert chapters.as_json(row, names, {})[1] == {
        "start_s": 3600.0,
        "kind": "agenda",
        "text": "3. Kết luận → giao việc",
    }
