"""The recorder as an in-process viewer: real VP8 and Opus packets in, a WebM file out that
ffprobe reads and PyAV decodes, across a floor switch and after a simulated crash."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from confbridge_kernel.contracts import FloorAction, FloorCommand, PeerRole
from sfu.errors import SfuError
from sfu.forwarding import Slot
from sfu.recording.control import Recordings
from sfu.recording.programme import Programme
from sfu.recording.recorder import BATCH_S, VIDEO_CODEC, Recorder, RecorderEgress
from sfu.room import PipedRoomInfo, Room
from tests.sfu.recording.media import Camera, Microphone, publish, sources
from tests.sfu.recording.probe import decode_all, ffprobe
from tests.support.polling import until


async def test_recorder_writes_the_programme_across_a_floor_switch(tmp_path: Path) -> None:
    hq, p2 = sources("hq"), sources("p2")
    cameras, mics = [Camera(320, 240), Camera(176, 144)], [Microphone(440), Microphone(660)]
    recorder = Recorder("r1", tmp_path / "r1.webm")
    recorder.follow(Programme(*hq))
    await publish(2.0, cameras, mics, [hq, p2])
    recorder.follow(Programme(*p2))  # the floor moves: video switches at p2's next keyframe
    await publish(2.0, cameras, mics, [hq, p2], key_at=3)
    written = await recorder.stop()

    assert written.path.stat().st_size == written.bytes > 10_000
    assert len(written.sha256) == 64
    probe = ffprobe(written.path)
    kinds = {s["tags"]["title"]: s for s in probe["streams"]}
    assert kinds["programme"]["codec_name"] == "vp8" and kinds["speaker"]["codec_name"] == "opus"
    assert kinds["programme"]["width"] == 320  # the first speaker's camera
    assert 3.5 <= float(probe["format"]["duration"]) <= 4.5
    decoded = decode_all(written.path)
    assert decoded.errors == []
    assert {320, 176} <= set(decoded.widths)
    assert decoded.widths[: decoded.widths.index(176)] == [320] * decoded.widths.index(176)
    assert len(decoded.widths) >= 110  # 4 s at 30 fps, less the frames before p2's keyframe
    assert decoded.audio_frames >= 190
    assert decoded.video_times == sorted(decoded.video_times)
    assert recorder.frames_dropped == 0


async def test_recorder_file_plays_up_to_its_last_cluster_when_cut_short(tmp_path: Path) -> None:
    hq = sources("hq")
    recorder = Recorder("r2", tmp_path / "r2.webm")
    recorder.follow(Programme(*hq))
    await publish(3.0, [Camera(320, 240)], [Microphone()], [hq])
    # the worker dies here: what is on disk now is all there is (no trailer, no cues)
    await asyncio.sleep(1.0)
    crashed = tmp_path / "crashed.webm"
    shutil.copyfile(recorder.path, crashed)
    await publish(1.0, [Camera(320, 240)], [Microphone()], [hq])
    await recorder.stop()

    probe = ffprobe(crashed)
    packets = {s["tags"]["title"]: int(s.get("nb_read_packets", 0)) for s in probe["streams"]}
    assert packets["programme"] >= 30 and packets["speaker"] >= 50  # the first clusters at least
    decoded = decode_all(crashed)
    assert decoded.errors == []
    assert len(decoded.widths) >= 30


async def test_recordings_follow_the_room_floor_and_refuse_a_second_start(tmp_path: Path) -> None:
    info = PipedRoomInfo("occ-7", 7, 1, datetime.now(UTC) + timedelta(hours=1))
    room = Room(info, on_floor_changed=lambda _room: None)
    halls = {1: sources("chair"), 2: sources("ward")}
    for site_id, (video, audio) in halls.items():
        room.add_plain(
            peer_id=f"hall-{site_id}",
            site_id=site_id,
            site_name=f"Hall {site_id}",
            role=PeerRole.chair if site_id == 1 else PeerRole.site,
            sources={"video": video, "audio": audio},
        )
    recordings = Recordings(tmp_path / "recordings")
    registry = CollectorRegistry()
    registry.register(recordings)
    started = await recordings.start(room, "rec-1")
    assert registry.get_sample_value("confbridge_sfu_recordings_active") == 1
    assert started.ended_at is None and started.room == "occ-7"
    with pytest.raises(SfuError) as refused:
        await recordings.start(room)
    assert refused.value.status == 409

    cameras, mics = [Camera(320, 240), Camera(176, 144)], [Microphone(440), Microphone(660)]
    feeds = [halls[1], halls[2]]
    await publish(1.5, cameras, mics, feeds)
    room.apply_floor(FloorCommand(action=FloorAction.give, site_id=2, by="test"))
    await publish(1.5, cameras, mics, feeds, key_at=2)
    stopped = await recordings.stop(room)
    assert stopped.sha256 and stopped.bytes and stopped.ended_at
    with pytest.raises(SfuError) as again:
        await recordings.stop(room)
    assert again.value.status == 409
    assert await recordings.info("rec-1") == stopped  # from the .json next to the file
    assert registry.get_sample_value("confbridge_sfu_recordings_active") == 0
    written = registry.get_sample_value("confbridge_sfu_recording_bytes_total") or 0
    assert 0.8 * (stopped.bytes or 0) < written <= (stopped.bytes or 0)
    assert registry.get_sample_value("confbridge_sfu_recording_failures_total") == 0
    decoded = decode_all(recordings.file("rec-1"))
    assert decoded.errors == [] and {320, 176} <= set(decoded.widths)
    with pytest.raises(SfuError) as missing:
        recordings.file("rec-2")
    assert missing.value.status == 404
    with pytest.raises(SfuError) as bad:
        recordings.file("../etc")
    assert bad.value.status == 422
    await room.close()


async def test_recordings_settle_a_file_cut_short(tmp_path: Path) -> None:
    """A worker that died left a file and no `.json`: asking for it settles it."""
    directory = tmp_path / "recordings"
    directory.mkdir()
    (directory / "rec-9.webm").write_bytes(b"\x1a\x45\xdf\xa3" + bytes(100))
    info = await Recordings(directory).info("rec-9")
    assert info.bytes == 104 and info.ended_at is not None and len(info.sha256 or "") == 64
    assert (directory / "rec-9.json").exists()


async def test_recorder_egress_hands_packets_on_in_batches_and_the_rest_at_close() -> None:
    """Packets reach the recorder every `BATCH_S`, in order with their arrival times, not one by
    one inside the forwarding path; closing the slot hands on what waits."""
    video, _audio = sources("hq")
    seen: list[tuple[int, float]] = []
    slot = Slot(RecorderEgress((VIDEO_CODEC,), lambda *packet: seen.append((packet[1], packet[5]))))
    slot.switch_to(video)
    camera = Camera(176, 144)
    pushed_at = time.monotonic()
    for packet in camera.frame(keyframe=True):
        video.push(packet)
    pushed_by = time.monotonic()
    assert seen == []  # nothing yet: the batch waits for its timer
    await until(lambda: len(seen) > 0, timeout_s=1.0)
    assert time.monotonic() - pushed_at >= BATCH_S
    # each packet keeps the time it arrived at, not the time it was handed on
    assert all(pushed_at <= at <= pushed_by for _seq, at in seen)
    first = len(seen)
    for packet in camera.frame():
        video.push(packet)
    slot.close()
    assert len(seen) > first  # closing handed the rest on at once
    numbers = [seq for seq, _at in seen]
    assert numbers == [(numbers[0] + i) & 0xFFFF for i in range(len(numbers))]
