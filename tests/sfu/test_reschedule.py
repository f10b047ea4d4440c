"""A worker told that a meeting was extended keeps its room open past the old end, even for
grants issued before; told that it ended, it closes the room and an older grant cannot open it
again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from confbridge_kernel.contracts import GrantClaims, PeerRole, RoomSchedule
from sfu.config import WorkerSettings
from sfu.errors import SfuError
from sfu.worker import Worker


def _grant(now: datetime, *, ends_at: datetime, iat: datetime) -> GrantClaims:
    return GrantClaims(
        jti="grant-1",
        room="occ-7",
        occurrence_id=7,
        site_id=2,
        site_name="Hội trường UBND Phường Một",
        role=PeerRole.site,
        chair_site_id=1,
        starts_at=now - timedelta(hours=1),
        ends_at=ends_at,
        iat=int(iat.timestamp()),
        exp=int((now + timedelta(hours=1)).timestamp()),
    )


async def test_worker_reschedule_extends_then_ends_the_room() -> None:
    worker = Worker(WorkerSettings(node_id="test-node", room_grace_s=60))
    now = datetime.now(UTC)
    issued = now - timedelta(minutes=5)
    grant = _grant(now, ends_at=now + timedelta(minutes=1), iat=issued)
    room = worker.sessions.room_for(grant)
    later = now + timedelta(minutes=30)
    assert await worker.reschedule("occ-7", RoomSchedule(ends_at=later)) is room
    assert room.ends_at == later
    # a grant whose own end (and grace) is over still finds the extended room
    over = _grant(now, ends_at=now - timedelta(minutes=10), iat=issued)
    assert worker.sessions.room_for(over) is room
    with pytest.raises(SfuError) as refused:
        Worker(WorkerSettings(node_id="other")).sessions.room_for(over)
    assert refused.value.status == 409  # without the extension, the room is over

    await worker.reschedule("occ-7", RoomSchedule(ends_at=now, ended=True))
    assert "occ-7" not in worker.rooms and room.closed
    with pytest.raises(SfuError) as ended:
        worker.sessions.room_for(grant)  # issued before the end
    assert ended.value.status == 409 and "ended" in ended.value.message
    # a grant issued after (the meeting moved and opened again) opens it
    fresh = _grant(now, ends_at=later, iat=now + timedelta(seconds=2))
    assert worker.sessions.room_for(fresh) is not room
    await worker.close()
