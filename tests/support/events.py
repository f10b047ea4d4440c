"""SFU events as a worker posts them: joins, leaves and link statistics of a site's peers,
and the `stats` reports of media flowing, for attendance and report tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from confbridge_kernel.contracts import EventType, PeerStats, SfuEvent, room_name

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def local(text: str) -> datetime:
    """'2025-03-03 08:10' in Asia/Ho_Chi_Minh."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def event(
    occurrence_id: int,
    site_id: int,
    kind: EventType,
    at: datetime,
    peer: str = "i",
    *,
    reason: str | None = None,
    rtt_ms: float | None = None,
    loss_ratio: float | None = None,
) -> SfuEvent:
    stats = None
    if kind is EventType.stats:
        stats = PeerStats(rtt_ms=rtt_ms, loss_ratio=loss_ratio, packets=100)
    return SfuEvent(
        id=f"att-{uuid.uuid4().hex}",
        type=kind,
        at=at.astimezone(UTC),
        node_id="node-a",
        room=room_name(occurrence_id),
        occurrence_id=occurrence_id,
        site_id=site_id,
        peer_id=f"{site_id}-{peer}",
        direction="egress" if peer.startswith("e") else "ingest",
        stats=stats,
        detail={"reason": reason} if reason else {},
    )


def media(
    occurrence_id: int,
    site_id: int,
    start: datetime,
    end: datetime,
    peer: str = "i",
    *,
    every_min: int = 5,
) -> list[SfuEvent]:
    """A peer's `stats` reports from `start` to just before `end`, packets rising: media
    flowing to or from the hall, as a worker reports it (every `every_min` minutes here)."""
    reports, packets = [], 0
    moment = start + timedelta(minutes=every_min)
    stops = []
    while moment < end:
        stops.append(moment)
        moment += timedelta(minutes=every_min)
    stops.append(end - timedelta(seconds=1))  # before the leave at `end`
    for when in stops:
        packets += 1000
        reports.append(
            SfuEvent(
                id=f"att-{uuid.uuid4().hex}",
                type=EventType.stats,
                at=when.astimezone(UTC),
                node_id="node-a",
                room=room_name(occurrence_id),
                occurrence_id=occurrence_id,
                site_id=site_id,
                peer_id=f"{site_id}-{peer}",
                direction="egress" if peer.startswith("e") else "ingest",
                stats=PeerStats(packets=packets, interval_s=every_min * 60),
            )
        )
    return reports
