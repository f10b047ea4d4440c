"""Finished recordings moved to an S3-compatible object store (SeaweedFS on loopback): a
real recording by a worker is copied, checked against its worker's checksum, removed from the
worker, then served from the store (whole and by byte range) and deleted by its retention."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from confbridge.meetings.models import Occurrence, Series
from confbridge.recordings.models import Recording
from confbridge.scheduler import Scheduler
from confbridge.timeutil import utcnow
from confbridge_kernel.recordings import recording_info_path
from tests.support.factories import heartbeat
from tests.support.object_store import BUCKET, SeaweedFs
from tests.support.peers import ToneTrack, WhipPublisher
from tests.support.servers import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def stack_options(seaweed: SeaweedFs) -> dict[str, Any]:
    return {"settings": {"object_store": seaweed.settings()}}


async def _record(stack: Stack, peers: list, seconds: float) -> dict[str, Any]:
    grant = await stack.join("hq")
    hall = WhipPublisher(grant["whip_url"], grant["token"], audio=ToneTrack(0.3))
    peers.append(hall)
    assert (await hall.start()).status_code == 201
    path = f"/api/v1/occurrences/{stack.occurrence_id}/recording"
    async with httpx.AsyncClient(base_url=stack.control, timeout=30) as http:
        started = await http.post(path, json={"action": "start"}, headers=stack.secretariat)
        assert started.status_code == 200, started.text
        await asyncio.sleep(seconds)
        stopped = await http.post(path, json={"action": "stop"}, headers=stack.secretariat)
        assert stopped.status_code == 200, stopped.text
        listed = await http.get(
            f"/api/v1/occurrences/{stack.occurrence_id}/recordings", headers=stack.secretariat
        )
    (item,) = listed.json()
    return item


async def test_recordings_move_to_the_object_store_and_are_served_from_it(
    stack: Stack, peers: list, seaweed: SeaweedFs
) -> None:
    assert stack.database is not None and stack.settings is not None
    store = stack.settings.object_store
    assert store is not None
    item = await _record(stack, peers, 3.0)
    scheduler = Scheduler(stack.database, stack.settings)

    # recordings on a worker that cannot be reached wait for it, without holding up the others
    with stack.database.session() as session:
        heartbeat(session, "away", utcnow())
        for index in range(2):
            session.add(
                Recording(
                    id=f"away{index}",
                    occurrence_id=stack.occurrence_id,
                    node_id="away",
                    started_at=utcnow() - timedelta(hours=2),
                    ended_at=utcnow() - timedelta(hours=1),
                    bytes=10,
                    sha256="0" * 64,
                    started_by="test",
                )
            )
        session.commit()

    # a copy that does not match what the worker reported is not kept
    with stack.database.session() as session:
        session.execute(update(Recording).values(sha256="0" * 64))
        session.commit()
    assert await asyncio.to_thread(scheduler.move_recordings) == 0
    assert seaweed.keys(store.prefix) == []
    with stack.database.session() as session:
        session.execute(update(Recording).values(sha256=item["sha256"]))
        session.commit()

    assert await asyncio.to_thread(scheduler.move_recordings) == 1
    assert await asyncio.to_thread(scheduler.move_recordings) == 0  # moved once
    with stack.database.session() as session:
        waiting = session.scalars(select(Recording).where(Recording.node_id == "away")).all()
        assert [row.storage_key for row in waiting] == [None, None]
        for row in waiting:
            session.delete(row)
        session.commit()
    key = f"{store.prefix}recordings/{item['id']}.webm"
    assert seaweed.keys(store.prefix) == [key]
    head = seaweed.client().head_object(Bucket=BUCKET, Key=key)
    assert head["Metadata"]["sha256"] == item["sha256"] and head["ContentLength"] == item["bytes"]
    async with httpx.AsyncClient(timeout=10) as http:
        on_worker = await http.get(
            stack.worker + recording_info_path(item["id"]), headers=stack.admin()
        )
    assert on_worker.status_code == 404  # the worker's disk is freed

    async with httpx.AsyncClient(base_url=stack.control, timeout=30) as http:
        whole = await http.get(item["download_url"], headers=stack.secretariat)
        assert whole.status_code == 200, whole.text
        assert whole.headers["content-type"] == "video/webm"
        assert hashlib.sha256(whole.content).hexdigest() == item["sha256"]
        part = await http.get(
            item["download_url"], headers={**stack.secretariat, "Range": "bytes=100-1099"}
        )
        assert part.status_code == 206 and part.content == whole.content[100:1100]
        assert part.headers["content-range"] == f"bytes 100-1099/{item['bytes']}"
        beyond = await http.get(
            item["download_url"], headers={**stack.secretariat, "Range": "bytes=999999999-"}
        )
        assert beyond.status_code == 416

    # past its series' retention it is deleted from the store, and its row with it
    with stack.database.session() as session:
        occurrence = session.get(Occurrence, stack.occurrence_id)
        assert occurrence is not None
        session.execute(
            update(Series)
            .where(Series.id == occurrence.series_id)
            .values(recording_retention_days=1)
        )
        session.execute(update(Recording).values(ended_at=utcnow() - timedelta(days=2)))
        session.commit()
    assert await asyncio.to_thread(scheduler.purge_recordings) == 1
    assert seaweed.keys(store.prefix) == []
    with stack.database.session() as session:
        assert session.get(Recording, item["id"]) is None
