"""Fixtures of the SIP leg tests: a worker in this process, and join grants for it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from confbridge_kernel.contracts import GrantClaims, PeerRole
from sfu.config import WorkerSettings
from sfu.worker import Worker


def grant(
    site_id: int, role: PeerRole, room: str = "occ-1", *, prefers_h264: bool = False
) -> GrantClaims:
    now = datetime.now(UTC)
    return GrantClaims(
        prefers_h264=prefers_h264,
        jti=uuid.uuid4().hex,
        room=room,
        occurrence_id=1,
        site_id=site_id,
        site_name=f"site {site_id}",
        role=role,
        chair_site_id=1,
        starts_at=now,
        ends_at=now + timedelta(hours=1),
        iat=int(now.timestamp()),
        exp=int(now.timestamp()) + 3600,
    )


@pytest.fixture
async def worker(loopback: None, tmp_path: Path) -> AsyncIterator[Worker]:
    instance = Worker(WorkerSettings(node_id="sip-test", spool_dir=tmp_path / "spool"))
    yield instance
    await instance.close()
