"""When a meeting runs (meetings + bridge + nodes): moving, cancelling, extending and ending an
occurrence, for the API, the pages and the planner loop alike, and telling the media servers
that hold its room.

One path: every change goes through `change_occurrence`, which checks clashes and the rules
for past and held meetings (`meetings.service.update_occurrence`) with the attendance the
bridge recorded, and audits the change. `extend` and `end_now` are changes of the end of a
live meeting; `end_overrun` ends the meetings left running past their end and the grace.
After the caller commits, `tell_rooms` gives the room's nodes the new end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.bridge.models import SfuEventRecord
from confbridge.errors import Conflict
from confbridge.live import LiveBus, occurrence_topic
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.models import Booking, Occurrence, OccurrenceStatus
from confbridge.meetings.occurrences import OccurrenceChange
from confbridge.nodes import placement
from confbridge.settings import MeetingSettings
from confbridge.signing import GrantSigner
from confbridge_kernel.contracts import EventType, RoomSchedule, room_name

log = logging.getLogger(__name__)

EXTENSIONS_MIN = (15, 30, 60)
"""What the console and the occurrence page offer to extend a live meeting by."""
OVERRUN_LOOKBACK = timedelta(days=1)
"""Meetings left running are looked for among those that ended this recently."""
SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class RoomChange:
    """What the room's nodes are told once the change is committed."""

    occurrence_id: int
    closes_at: datetime
    ended: bool


def attended_site_ids(*, session: Session, occurrence_id: int) -> list[int]:
    """Invited sites that joined the occurrence's room (the bridge's events, kept whatever
    happens to the occurrence): a meeting with any has attendance."""
    query = (
        select(SfuEventRecord.site_id)
        .join(
            Booking,
            (Booking.occurrence_id == SfuEventRecord.occurrence_id)
            & (Booking.site_id == SfuEventRecord.site_id),
        )
        .where(
            SfuEventRecord.occurrence_id == occurrence_id,
            SfuEventRecord.type == EventType.joined.value,
        )
        .distinct()
    )
    return sorted(site_id for site_id in session.scalars(query) if site_id is not None)


def room_change(occurrence: Occurrence, settings: MeetingSettings) -> RoomChange:
    return RoomChange(
        occurrence_id=occurrence.id,
        closes_at=occurrence_service.closes_at(
            occurrence, overrun_grace_min=settings.overrun_grace_min
        ),
        ended=occurrence.ended_at is not None
        or occurrence.status == OccurrenceStatus.cancelled.value,
    )


def change_occurrence(
    *,
    session: Session,
    occurrence: Occurrence,
    change: OccurrenceChange,
    settings: MeetingSettings,
    now: datetime,
    actor: str,
    action: str = "occurrence_updated",
    detail: dict[str, Any] | None = None,
) -> RoomChange:
    """Apply `change` (refused with a clear reason, see `update_occurrence`) and audit it;
    moving or cancelling a meeting with attendance records the sites that attended and the
    reason (their attendance is kept). Returns what the room's nodes are to be told."""
    attended = attended_site_ids(session=session, occurrence_id=occurrence.id)
    before = (occurrence.start_at, occurrence.end_at, occurrence.status)
    occurrence_service.update_occurrence(
        session=session,
        occurrence=occurrence,
        change=change,
        settings=settings,
        now=now,
        attended_sites=len(attended),
    )
    entry: dict[str, Any] = {
        "before": {
            "start_at": before[0].isoformat(),
            "end_at": before[1].isoformat(),
            "status": before[2],
        },
        "start_at": occurrence.start_at.isoformat(),
        "end_at": occurrence.end_at.isoformat(),
        "status": occurrence.status,
        **(detail or {}),
    }
    if occurrence.ended_at is not None:
        entry["ended_at"] = occurrence.ended_at.isoformat()
    if change.record_past:
        entry["record_past"] = True
    if attended and change.confirm:
        entry.update(attendance_kept=attended, reason=change.reason, confirmed=True)
    auth_service.record(
        session=session,
        actor=actor,
        action=action,
        entity="occurrence",
        entity_id=occurrence.id,
        detail=entry,
    )
    return room_change(occurrence, settings)


def _require_live(occurrence: Occurrence, settings: MeetingSettings, now: datetime) -> None:
    if not occurrence_service.is_live(
        occurrence, now=now, overrun_grace_min=settings.overrun_grace_min
    ):
        raise Conflict(
            "Chỉ gia hạn hoặc kết thúc được cuộc họp đang diễn ra. "
            "Only a meeting that is running can be extended or ended",
            code="not_live",
        )


def extend(
    *,
    session: Session,
    occurrence: Occurrence,
    minutes: int,
    settings: MeetingSettings,
    now: datetime,
    actor: str,
) -> RoomChange:
    """Run a live meeting `minutes` longer: from its end, or from now if it is running over
    already. Clashes are refused as for a move."""
    _require_live(occurrence, settings, now)
    new_end = max(occurrence.end_at, now).replace(microsecond=0) + timedelta(minutes=minutes)
    return change_occurrence(
        session=session,
        occurrence=occurrence,
        change=OccurrenceChange(end_at=new_end),
        settings=settings,
        now=now,
        actor=actor,
        action="occurrence_extended",
        detail={"minutes": minutes},
    )


def end_now(
    *,
    session: Session,
    occurrence: Occurrence,
    settings: MeetingSettings,
    now: datetime,
    actor: str,
) -> RoomChange:
    """End a live meeting now: it ends here in attendance and reports, the halls leave."""
    _require_live(occurrence, settings, now)
    return change_occurrence(
        session=session,
        occurrence=occurrence,
        change=OccurrenceChange(end_at=max(now, occurrence.start_at + timedelta(seconds=1))),
        settings=settings,
        now=now,
        actor=actor,
        action="occurrence_ended",
    )


def end_overrun(*, session: Session, settings: MeetingSettings, now: datetime) -> list[RoomChange]:
    """End the meetings left running past their end and the grace (nobody extended or ended
    them). Their scheduled end stays their end in attendance and reports: running over was
    not confirmed by anyone."""
    grace = timedelta(minutes=settings.overrun_grace_min)
    query = select(Occurrence).where(
        Occurrence.status == OccurrenceStatus.scheduled.value,
        Occurrence.ended_at.is_(None),
        Occurrence.end_at <= now - grace,
        Occurrence.end_at > now - grace - OVERRUN_LOOKBACK,
    )
    changes = []
    for occurrence in session.scalars(query):
        occurrence.ended_at = occurrence.end_at + grace
        auth_service.record(
            session=session,
            actor=SYSTEM_ACTOR,
            action="occurrence_ended",
            entity="occurrence",
            entity_id=occurrence.id,
            detail={"by_itself": True, "ended_at": occurrence.ended_at.isoformat()},
        )
        changes.append(room_change(occurrence, settings))
    session.flush()
    return changes


def tell_rooms(*, session: Session, changes: list[RoomChange], signer: GrantSigner) -> int:
    """Give the nodes of each changed room its new end (or close it); returns how many nodes
    took it. Called after the change is committed: a node that is not told closes the room
    at the end it knew, and every grant issued since carries the new one."""
    told = 0
    for change in changes:
        schedule = RoomSchedule(ends_at=change.closes_at, ended=change.ended)
        room = room_name(change.occurrence_id)
        for node in placement.room_nodes(session=session, occurrence_id=change.occurrence_id):
            if placement.reschedule_room(node, room=room, schedule=schedule, signer=signer):
                told += 1
    return told


def schedule_view(occurrence: Occurrence, settings: MeetingSettings) -> dict[str, Any]:
    """When the meeting runs, as the console and the occurrence page show it (JSON-ready)."""
    closes_at = occurrence_service.closes_at(
        occurrence, overrun_grace_min=settings.overrun_grace_min
    )
    return {
        "type": "schedule",
        "occurrence_id": occurrence.id,
        "start_at": occurrence.start_at.isoformat(),
        "end_at": occurrence.end_at.isoformat(),
        "closes_at": closes_at.isoformat(),
        "ended": occurrence.ended_at is not None,
        "cancelled": occurrence.status == OccurrenceStatus.cancelled.value,
        "overrun_grace_min": settings.overrun_grace_min,
    }


def publish_schedule(bus: LiveBus, occurrence: Occurrence, settings: MeetingSettings) -> None:
    """Tell the pages following the occurrence (server-sent events) when it runs now."""
    bus.publish(occurrence_topic(occurrence.id), schedule_view(occurrence, settings))
