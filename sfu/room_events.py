"""The events a worker reports of its rooms and peers (joined, left, floor, stats)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from confbridge_kernel.contracts import (
    EventType,
    FloorState,
    PeerRole,
    PeerStats,
    SfuEvent,
    room_name,
)
from sfu.events import EventReporter
from sfu.recording.state import RecordingState
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

    def recording_ended(self, state: RecordingState) -> None:
        """A recording ended without the control plane asking (its room closed, its file
        could not be written, or it was recovered after the worker died). The event's id is
        the recording's, so a recovery told twice is stored once."""
        if self.reporter is None or state.occurrence_id <= 0:
            return  # a file of an older worker names no meeting: nothing to settle
        info = state.info
        self.reporter.emit(
            SfuEvent(
                id=f"recording-ended-{info.recording_id}"[:64],
                type=EventType.recording_ended,
                at=info.ended_at or utcnow(),
                node_id=self.node_id,
                room=info.room or room_name(state.occurrence_id),
                occurrence_id=state.occurrence_id,
                detail=info.model_dump(mode="json"),
            )
        )
