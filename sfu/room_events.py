"""The events a worker reports of its rooms and peers (joined, left, floor, stats)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from confbridge_kernel.contracts import EventType, FloorState, PeerRole, PeerStats, SfuEvent
from sfu.events import EventReporter
from sfu.room import Peer, Room


def utcnow() -> datetime:
    return datetime.now(UTC)


class RoomEvents:
    """Turns what happens in a room into `SfuEvent`s for the reporter (once it is set)."""

    def __init__(self, node_id: str, reporter: EventReporter | None = None) -> None:
        self.node_id = node_id
        self.reporter = reporter

    def emit(
        self,
        type_: EventType,
        room: Room,
        peer: Peer | None,
        *,
        stats: PeerStats | None = None,
        floor: FloorState | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        if self.reporter is None or (peer is not None and peer.role is PeerRole.relay):
            return  # a relay is a node, not a site: not in attendance
        if peer is not None and peer.transport != "webrtc":
            # attendance tells a room system (SIP) from a hall's browser or agent
            detail = {"transport": peer.transport, "codec": peer.codec, **(detail or {})}
        self.reporter.emit(
            SfuEvent(
                id=uuid.uuid4().hex,
                type=type_,
                at=utcnow(),
                node_id=self.node_id,
                room=room.name,
                occurrence_id=room.occurrence_id,
                site_id=peer.site_id if peer else None,
                peer_id=peer.id if peer else None,
                direction=peer.direction if peer else None,  # type: ignore[arg-type]
                stats=stats,
                floor=floor,
                detail=detail or {},
            )
        )
