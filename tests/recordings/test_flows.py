"""A recording that ended by itself, as the worker reports it (`recording_ended`): the row
takes its final info once, and a failure raises one alert for IT staff."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.alerts.models import Alert
from confbridge.recordings import flows
from confbridge.recordings.models import Recording
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import EventType, SfuEvent, room_name
from confbridge_kernel.recordings import RecordingChapter, RecordingInfo
from tests.support.factories import make_occurrences


def _event(occurrence_id: int, info: RecordingInfo, event_id: str = "ended-0001") -> SfuEvent:
    return SfuEvent(
        id=event_id,
        type=EventType.recording_ended,
        at=utcnow(),
        node_id="local-0",
        room=room_name(occurrence_id),
        occurrence_id=occurrence_id,
        detail=info.model_dump(mode="json"),
    )


def test_recordings_settle_ended_applies_the_final_info_and_alerts_once(
    session: Session, sites: dict[str, Site]
) -> None:
    (occurrence,) = make_occurrences(session, sites, count=1)
    started = utcnow() - timedelta(minutes=5)
    session.add(
        Recording(
            id="rec-1",
            occurrence_id=occurrence.id,
            node_id="local-0",
            started_at=started,
            started_by="user:secretariat",
        )
    )
    session.flush()
    info = RecordingInfo(
        recording_id="rec-1",
        room=room_name(occurrence.id),
        started_at=started,
        ended_at=started + timedelta(minutes=4),
        bytes=123_456,
        sha256="ab" * 32,
        chapters=[RecordingChapter(start_ms=0, kind="floor", title="Hall", site_id=1)],
        failure="disk_full",
    )
    settled = flows.settle_ended(
        session=session, events=[_event(occurrence.id, info)], now=utcnow(), deliver=False
    )
    assert [row.id for row in settled] == ["rec-1"]
    row = session.get(Recording, "rec-1")
    assert row is not None
    assert (row.ended_at, row.bytes, row.sha256) == (info.ended_at, 123_456, "ab" * 32)
    (alert,) = session.scalars(select(Alert).where(Alert.kind == "recording_failed")).all()
    assert alert.occurrence_id == occurrence.id and alert.node_id == "local-0"
    assert alert.details["failure"] == "disk_full" and "hết dung lượng" in alert.message

    # delivered again (a retry), or an event of another meeting naming it: nothing changes
    again = flows.settle_ended(
        session=session,
        events=[_event(occurrence.id, info, "ended-0002")],
        now=utcnow(),
        deliver=False,
    )
    other = flows.settle_ended(
        session=session,
        events=[_event(occurrence.id + 1, info.model_copy(update={"bytes": 1}), "ended-0003")],
        now=utcnow(),
        deliver=False,
    )
    assert again == [] and other == [] and row.bytes == 123_456
    assert len(session.scalars(select(Alert).where(Alert.kind == "recording_failed")).all()) == 1


def test_recordings_settle_ended_stopped_cleanly_raises_no_alert(
    session: Session, sites: dict[str, Site]
) -> None:
    (occurrence,) = make_occurrences(session, sites, count=1)
    started = utcnow() - timedelta(minutes=5)
    session.add(
        Recording(
            id="rec-2",
            occurrence_id=occurrence.id,
            node_id="local-0",
            started_at=started,
            started_by="",
        )
    )
    session.flush()
    info = RecordingInfo(
        recording_id="rec-2",
        room=room_name(occurrence.id),
        started_at=started,
        ended_at=utcnow(),
        bytes=10,
        sha256="cd" * 32,
    )
    flows.settle_ended(
        session=session, events=[_event(occurrence.id, info)], now=utcnow(), deliver=False
    )
    assert session.get(Recording, "rec-2").bytes == 10  # type: ignore[union-attr]
    assert session.scalars(select(Alert)).all() == []
