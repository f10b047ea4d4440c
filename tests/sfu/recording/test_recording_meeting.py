"""A recorded meeting end to end, with a real worker process: two halls publish from a network
namespace whose uplink loses 5 % of its datagrams (nftables), the chair gives the floor and
takes it back, presents slides; the file is read back with ffprobe and PyAV. Then a worker
killed with SIGKILL mid-recording: its file plays up to that moment, and once the worker is
back its recovery completes the recording and the control plane learns of it."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from confbridge.alerts.models import Alert
from confbridge.recordings.models import Recording
from confbridge.sites.models import Site
from tests.sfu.recording.probe import decode_all, ffprobe
from tests.support.content_share import present
from tests.support.netns import LOSS_TABLE, Hosts, hosts, lose_udp, netns_missing, udp_dropped
from tests.support.peers import ToneTrack, WhipPublisher
from tests.support.polling import until
from tests.support.servers import Stack
from tests.support.viewer_process import ScreenProcess

SIZES = {"hq": (320, 240), "p2": (176, 144)}
SLIDES_WIDTH = 352
SPAN_S = 30.0
"""The meeting recorded: two floor switches and a presentation in its first 14 s, then the
floor held to the end."""
CHAPTER_SLACK_MS = 800


@pytest.fixture
def lossy_halls() -> Iterator[Hosts]:
    """A namespace for the halls, whose uplink drops 5 % of UDP datagrams at random."""
    reason = netns_missing() or (None if shutil.which("nft") else "nftables (nft) is missing")
    if reason:
        pytest.skip(reason)
    with hosts(["halls"]) as made:
        lose_udp(made, "halls", 5)
        yield made


@pytest.fixture
def stack_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    if "lossy_halls" not in request.fixturenames:
        return {}
    # media on the bridge's address: reachable from the halls' namespace and from here
    return {"sfu": {"media_ip": request.getfixturevalue("lossy_halls").gateway}}


async def _recording(stack: Stack, action: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.control, timeout=30) as http:
        response = await http.post(
            f"/api/v1/occurrences/{stack.occurrence_id}/recording",
            json={"action": action},
            headers=stack.secretariat,
        )
    assert response.status_code == 200, response.text
    return response.json()


async def _floor(stack: Stack, action: str, site_id: int | None = None) -> float:
    response = await stack.floor(action, site_id)
    assert response.status_code == 200, response.text
    return time.monotonic()


async def test_recording_a_meeting_with_switches_loss_and_slides(
    lossy_halls: Hosts, stack: Stack, peers: list, sites: dict[str, Site], tmp_path: Path
) -> None:
    """30 s recorded: ffprobe reads the four tracks, the duration within 1 s and a chapter at
    each switch and at the slides' start and stop; every frame decodes."""
    halls = []
    try:
        for site, (width, height) in SIZES.items():
            grant = await stack.join(site)
            halls.append(
                await ScreenProcess.start(
                    lossy_halls,
                    "halls",
                    grant["whip_url"],
                    grant["token"],
                    module="tests.support.publisher_process",
                    args=[str(width), str(height)],
                )
            )
        await asyncio.sleep(3.0)  # connected, encoders ramped up
        asked = time.monotonic()
        recording = await _recording(stack, "start")
        began = (asked + time.monotonic()) / 2
        marks: list[tuple[str, str, float]] = [("floor", sites["hq"].name, began)]
        await asyncio.sleep(4.0)
        marks.append(("floor", sites["p2"].name, await _floor(stack, "give", sites["p2"].id)))
        await asyncio.sleep(4.0)
        await present(stack, "hq", SLIDES_WIDTH, peers)
        marks.append(("content_start", sites["hq"].name, time.monotonic()))
        await asyncio.sleep(4.0)
        marks.append(("content_stop", sites["hq"].name, await _floor(stack, "stop_content")))
        await asyncio.sleep(2.0)
        marks.append(("floor", sites["hq"].name, await _floor(stack, "take")))
        await asyncio.sleep(max(0.0, began + SPAN_S - time.monotonic()))
        stopping = time.monotonic()
        stopped = await _recording(stack, "stop")
        ended = (stopping + time.monotonic()) / 2
        assert udp_dropped(lossy_halls, "halls", LOSS_TABLE) > 50  # the link did lose
    finally:
        for hall in halls:
            await hall.stop()

    assert stopped["id"] == recording["id"] and stopped["sha256"]
    path = tmp_path / "recordings-0" / f"{recording['id']}.webm"
    assert path.stat().st_size == stopped["bytes"]
    probe = ffprobe(path)
    tracks = [(s["codec_name"], s["tags"]["title"]) for s in probe["streams"]]
    assert tracks == [
        ("vp8", "programme"),
        ("vp8", "content"),
        ("opus", "speaker"),
        ("opus", "chair"),
    ]
    assert abs(float(probe["format"]["duration"]) - (ended - began)) <= 1.0
    chapters = [(c["tags"]["title"], float(c["start_time"])) for c in probe["chapters"]]
    assert [title for title, _at in chapters] == [title for _kind, title, _at in marks]
    for (_title, at_s), (_kind, _name, at) in zip(chapters, marks, strict=True):
        assert abs(at_s - (at - began)) * 1000 <= CHAPTER_SLACK_MS, (chapters, marks)

    decoded = decode_all(path)
    assert decoded.errors == []  # frames lost on the link were cut at keyframes, not written
    # timestamps run on across the switches and the losses: in order, and no long hole
    times = decoded.video_times
    assert times == sorted(times) and max(b - a for a, b in itertools.pairwise(times)) < 2.0
    widths = {width for width, _height in SIZES.values()}
    assert widths <= set(decoded.widths) and len(decoded.widths) >= 15 * SPAN_S
    assert set(decoded.content_widths) == {SLIDES_WIDTH} and len(decoded.content_widths) >= 30
    assert decoded.audio_by_track["speaker"] >= 40 * SPAN_S
    assert decoded.audio_by_track["chair"] >= 40 * 6  # while p2 spoke


async def test_recording_survives_a_worker_killed_mid_meeting(
    stack: Stack, peers: list, sites: dict[str, Site], tmp_path: Path
) -> None:
    """kill -9 while recording: the file as left plays; the restarted worker repairs it and
    the control plane learns its end, size and checksum, and alerts IT staff."""
    grant = await stack.join("hq")
    hall = WhipPublisher(
        grant["whip_url"], grant["token"], width=320, height=240, audio=ToneTrack(0.3)
    )
    peers.append(hall)
    assert (await hall.start()).status_code == 201
    await asyncio.sleep(1.0)
    began = time.monotonic()
    recording = await _recording(stack, "start")
    await asyncio.sleep(6.0)
    (process,) = stack.workers.processes
    process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    path = tmp_path / "recordings-0" / f"{recording['id']}.webm"
    left = tmp_path / "left-by-the-crash.webm"
    shutil.copyfile(path, left)  # before the restarted worker repairs it

    cut = decode_all(left)
    assert cut.errors == [] and len(cut.widths) >= 30 * 4 and cut.audio_frames >= 50 * 4

    assert stack.database is not None

    def settled() -> Recording | None:
        with stack.database.session() as session:  # type: ignore[union-attr]
            row = session.get(Recording, recording["id"])
            return row if row is not None and row.ended_at is not None else None

    await until(lambda: settled() is not None, timeout_s=30, step_s=0.5)
    row = settled()
    assert row is not None and row.bytes == path.stat().st_size
    with stack.database.session() as session:
        alert = session.scalar(select(Alert).where(Alert.kind == "recording_failed"))
        assert alert is not None and alert.details["failure"] == "worker_died"
        assert alert.occurrence_id == stack.occurrence_id

    async with httpx.AsyncClient(base_url=stack.control, timeout=30) as http:
        listed = await http.get(
            f"/api/v1/occurrences/{stack.occurrence_id}/recordings", headers=stack.secretariat
        )
        (item,) = listed.json()
        downloaded = await http.get(item["download_url"], headers=stack.secretariat)
    assert downloaded.status_code == 200, downloaded.text
    assert hashlib.sha256(downloaded.content).hexdigest() == item["sha256"] == row.sha256
    repaired = tmp_path / "repaired.webm"
    repaired.write_bytes(downloaded.content)
    probe = ffprobe(repaired)
    assert abs(float(probe["format"]["duration"]) - (killed - began)) <= 1.5
    assert [c["tags"]["title"] for c in probe["chapters"]] == [sites["hq"].name]
    decoded = decode_all(repaired)
    assert decoded.errors == [] and len(decoded.widths) >= len(cut.widths) - 30
