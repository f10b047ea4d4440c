"""Recording a meeting end to end: halls publish with real aiortc peers over WHIP, the
secretariat starts and stops the recording through the control plane, the worker holding the
room writes the file; the list and the download come back through the control plane."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from pathlib import Path

import httpx

from confbridge.meetings.models import Occurrence
from confbridge.sites.models import Site
from tests.sfu.recording.probe import decode_all, ffprobe
from tests.support.peers import ToneTrack, WhipPublisher
from tests.support.servers import Stack


async def _post(stack: Stack, action: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.control, timeout=30) as http:
        return await http.post(
            f"/api/v1/occurrences/{stack.occurrence_id}/recording",
            json={"action": action},
            headers=headers,
        )


async def test_recording_api_records_the_programme_across_a_floor_switch(
    stack: Stack, peers: list, sites: dict[str, Site], tmp_path: Path
) -> None:
    terminal = {"Authorization": f"Bearer {stack.tokens['p1']}"}
    assert (await _post(stack, "start", stack.secretariat)).status_code == 409  # no room yet

    for site, (width, height) in {"hq": (320, 240), "p2": (176, 144)}.items():
        grant = await stack.join(site)
        hall = WhipPublisher(
            grant["whip_url"], grant["token"], width=width, height=height, audio=ToneTrack(0.3)
        )
        peers.append(hall)
        assert (await hall.start()).status_code == 201

    assert (await _post(stack, "pause", stack.secretariat)).status_code == 422
    refused = await _post(stack, "start", terminal)  # p1 is not the chair site
    assert refused.status_code == 403, refused.text
    asked_at = time.monotonic()
    started = await _post(stack, "start", stack.secretariat)
    started_at = time.monotonic()
    assert started.status_code == 200, started.text
    recording = started.json()
    assert recording["ended_at"] is None and recording["download_url"] is None
    again = await _post(stack, "start", stack.secretariat)
    assert again.status_code == 409 and "already recording" in again.text

    await asyncio.sleep(3.0)
    given = await stack.floor("give", sites["p2"].id)
    assert given.status_code == 200, given.text
    await asyncio.sleep(3.0)
    # the worker dies now: the file as it is on disk must play up to its last cluster
    written = tmp_path / "recordings-0" / f"{recording['id']}.webm"
    crashed = tmp_path / "crashed.webm"
    shutil.copyfile(written, crashed)
    stopping_at = time.monotonic()
    stopped = await _post(stack, "stop", stack.secretariat)
    stopped_at = time.monotonic()
    assert stopped.status_code == 200, stopped.text
    assert stopped_at - stopping_at < 5
    assert (await _post(stack, "stop", stack.secretariat)).status_code == 409

    async with httpx.AsyncClient(base_url=stack.control, timeout=30) as http:
        listed = await http.get(
            f"/api/v1/occurrences/{stack.occurrence_id}/recordings", headers=stack.secretariat
        )
        assert listed.status_code == 200, listed.text
        (item,) = listed.json()
        assert item["id"] == recording["id"] and item["ended_at"] and item["bytes"] > 20_000
        downloaded = await http.get(item["download_url"], headers=stack.secretariat)
        assert downloaded.status_code == 200, downloaded.text
        assert downloaded.headers["content-type"] == "video/webm"
        denied = await http.get(item["download_url"], headers=terminal)
        assert denied.status_code == 403
        missing = await http.get(
            f"/api/v1/occurrences/{stack.occurrence_id}/recordings/nope/file",
            headers=stack.secretariat,
        )
        assert missing.status_code == 404
    assert len(downloaded.content) == item["bytes"]
    assert hashlib.sha256(downloaded.content).hexdigest() == item["sha256"]

    path = tmp_path / "downloaded.webm"
    path.write_bytes(downloaded.content)
    probe = ffprobe(path)
    kinds = {s["tags"]["title"]: s for s in probe["streams"]}
    assert kinds["programme"]["codec_name"] == "vp8" and kinds["speaker"]["codec_name"] == "opus"
    # the file spans the time between the start and the stop (less what was still in flight)
    duration = float(probe["format"]["duration"])
    assert stopping_at - started_at - 1.5 <= duration <= stopped_at - asked_at + 0.5
    decoded = decode_all(path)
    assert decoded.errors == []
    assert {320, 176} <= set(decoded.widths)  # the chair, then p2 after the switch
    assert decoded.audio_frames > 150

    cut = decode_all(crashed)
    assert cut.errors == [] and len(cut.widths) > 60 and cut.audio_frames > 100


async def test_recording_api_follows_the_series_record_setting(
    stack: Stack, peers: list, sites: dict[str, Site]
) -> None:
    """`record: never` refuses a start; `record: always` starts when a hall joins."""
    assert stack.database is not None
    with stack.database.session() as session:
        series_id = session.get(Occurrence, stack.occurrence_id).series_id  # type: ignore[union-attr]
    async with httpx.AsyncClient(base_url=stack.control, timeout=30) as http:
        bad = await http.patch(
            f"/api/v1/series/{series_id}", json={"record": "sometimes"}, headers=stack.secretariat
        )
        assert bad.status_code == 422
        never = await http.patch(
            f"/api/v1/series/{series_id}", json={"record": "never"}, headers=stack.secretariat
        )
        assert never.status_code == 200, never.text
        assert never.json()["record"] == "never"

    grant = await stack.join("hq")
    hall = WhipPublisher(grant["whip_url"], grant["token"])
    peers.append(hall)
    assert (await hall.start()).status_code == 201
    refused = await _post(stack, "start", stack.secretariat)
    assert refused.status_code == 409 and "'never'" in refused.text

    async with httpx.AsyncClient(base_url=stack.control, timeout=30) as http:
        always = await http.patch(
            f"/api/v1/series/{series_id}", json={"record": "always"}, headers=stack.secretariat
        )
        assert always.status_code == 200, always.text
        grant = await stack.join("p2")  # a hall joins: the room starts recording by itself
        late = WhipPublisher(grant["whip_url"], grant["token"])
        peers.append(late)
        assert (await late.start()).status_code == 201

        async def listed() -> list:
            response = await http.get(
                f"/api/v1/occurrences/{stack.occurrence_id}/recordings",
                headers=stack.secretariat,
            )
            assert response.status_code == 200, response.text
            return response.json()

        deadline = time.monotonic() + 20
        while not await listed():
            assert time.monotonic() < deadline, "no recording started"
            await asyncio.sleep(0.3)
        (item,) = await listed()
        assert item["ended_at"] is None
    stopped = await _post(stack, "stop", stack.secretariat)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["sha256"]
