"""What a recording holds (issue 20): the speaker's camera, the content as its own track, the
speaker's and the chair's microphones, a chapter at every floor change and presentation; an
H.264 room in Matroska; a full disk (a real, small tmpfs) stops only the recording; an edge
never records. Real VP8, H.264 and Opus packets from aiortc's encoders, read back with ffprobe
and PyAV."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from confbridge_kernel.contracts import FloorAction, FloorCommand, GrantPurpose, PeerRole
from sfu.codecs import RtpCodec
from sfu.errors import SfuError
from sfu.forwarding import Slot, Source
from sfu.recording.control import Recordings
from sfu.recording.recorder import H264_CODEC, VIDEO_CODEC, RecorderEgress
from sfu.recording.state import RecordingState
from sfu.room import Peer, PipedRoomInfo, Room
from tests.sfu.recording.media import Camera, Microphone, publish, sources
from tests.sfu.recording.probe import decode_all, ffprobe
from tests.support.polling import until


def _room(name: str = "occ-7") -> Room:
    return Room(
        PipedRoomInfo(name, 7, 1, datetime.now(UTC) + timedelta(hours=1)),
        on_floor_changed=lambda _room: None,
    )


def _halls(room: Room, codec: RtpCodec = VIDEO_CODEC) -> dict[int, tuple[Source, Source]]:
    halls = {1: sources("chair", codec), 2: sources("ward", codec)}
    for site_id, (camera, microphone) in halls.items():
        room.add_plain(
            peer_id=f"hall-{site_id}",
            site_id=site_id,
            site_name=f"Hall {site_id}",
            role=PeerRole.chair if site_id == 1 else PeerRole.site,
            sources={"video": camera, "audio": microphone},
        )
    return halls


def _presenter(room: Room, site_id: int) -> Source:
    source = Source("video", [VIDEO_CODEC], label="slides")
    room.add(
        Peer(
            id=f"slides-{site_id}",
            direction="ingest",
            room_name=room.name,
            site_id=site_id,
            site_name=f"Hall {site_id}",
            role=PeerRole.chair,
            pc=None,
            remote_ufrags=set(),
            etag="",
            created_at=datetime.now(UTC),
            connected=True,
            purpose=GrantPurpose.content,
            content_source=source,
        )
    )
    return source


async def test_recording_holds_both_cameras_content_both_microphones_and_chapters(
    tmp_path: Path,
) -> None:
    room = _room()
    halls = _halls(room)
    recordings = Recordings(tmp_path)
    await recordings.start(room, "rec-1")
    cameras = [Camera(320, 240), Camera(176, 144), Camera(352, 288)]
    mics = [Microphone(440), Microphone(660)]
    await publish(1.0, cameras, mics, [halls[1], halls[2]])
    room.apply_floor(FloorCommand(action=FloorAction.give, site_id=2, by="test"))
    await publish(1.0, cameras, mics, [halls[1], halls[2]])
    slides = _presenter(room, 1)
    await publish(1.0, cameras, mics, [halls[1], halls[2], (slides, None)])
    room.apply_floor(FloorCommand(action=FloorAction.stop_content, by="test"))
    room.apply_floor(FloorCommand(action=FloorAction.take, by="test"))
    await publish(1.0, cameras, mics, [halls[1], halls[2]])
    info = await recordings.stop(room)

    marks = [(c.kind, c.title, c.site_id) for c in info.chapters]
    assert marks == [
        ("floor", "Hall 1", 1),
        ("floor", "Hall 2", 2),
        ("content_start", "Hall 1", 1),
        ("content_stop", "Hall 1", 1),
        ("floor", "Hall 1", 1),
    ]
    starts = [c.start_ms for c in info.chapters]
    assert starts == sorted(starts) and starts[0] < 100
    assert info.media_type == "video/webm" and info.failure is None
    path = recordings.file("rec-1")
    assert path.suffix == ".webm"
    probe = ffprobe(path)
    tracks = [(s["codec_name"], s["tags"]["title"]) for s in probe["streams"]]
    assert tracks == [
        ("vp8", "programme"),
        ("vp8", "content"),
        ("opus", "speaker"),
        ("opus", "chair"),
    ]
    assert [c["tags"]["title"] for c in probe["chapters"]] == [t for _k, t, _s in marks]
    decoded = decode_all(path)
    assert decoded.errors == []
    assert {320, 176} <= set(decoded.widths) and 352 not in decoded.widths
    assert set(decoded.content_widths) == {352} and len(decoded.content_widths) >= 25
    # the chair's microphone is its own track while hall 2 speaks (two seconds of it)
    assert decoded.audio_by_track["speaker"] >= 190
    assert 90 <= decoded.audio_by_track["chair"] <= 110
    state = RecordingState.model_validate_json((tmp_path / "rec-1.json").read_bytes())
    assert state.info == info and state.occurrence_id == 7
    await room.close()


async def test_recording_an_h264_room_is_matroska_without_transcoding(tmp_path: Path) -> None:
    room = _room()
    halls = _halls(room, codec=H264_CODEC)
    recordings = Recordings(tmp_path)
    await recordings.start(room, "rec-h264")
    cameras, mics = [Camera(320, 240, H264_CODEC), Camera(176, 144, H264_CODEC)], [Microphone()] * 2
    await publish(1.5, cameras, mics, [halls[1], halls[2]])
    room.apply_floor(FloorCommand(action=FloorAction.give, site_id=2, by="test"))
    await publish(1.5, cameras, mics, [halls[1], halls[2]])
    info = await recordings.stop(room)

    assert info.media_type == "video/x-matroska"
    path = recordings.file("rec-h264")
    assert path.suffix == ".mkv" and info.bytes == path.stat().st_size
    probe = ffprobe(path)
    assert probe["format"]["format_name"].startswith("matroska")
    video = probe["streams"][0]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    decoded = decode_all(path)
    assert decoded.errors == []
    assert {320, 176} <= set(decoded.widths) and len(decoded.widths) >= 80
    await recordings.delete("rec-h264")  # retention removes the Matroska file and its state
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SfuError) as gone:
        await recordings.info("rec-h264")
    assert gone.value.status == 404
    await room.close()


async def test_recording_an_edge_refuses_the_node_holding_the_room_records(
    tmp_path: Path,
) -> None:
    """A room relayed from its origin (a pipe or the cascade) is never recorded there."""
    room = _room()
    room.origin_url = "http://origin.invalid:8100"
    with pytest.raises(SfuError) as refused:
        await Recordings(tmp_path).start(room, "rec-edge")
    assert refused.value.status == 409 and "the node holding it records" in str(refused.value)
    assert room.recorder is None and list(tmp_path.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs: writes beyond it fail with ENOSPC, as on a full disk."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_recording_a_full_disk_stops_the_recording_and_not_the_meeting(
    small_disk: Path,
) -> None:
    room = _room()
    halls = _halls(room)
    seen: list[int] = []
    viewer = Slot(RecorderEgress((VIDEO_CODEC,), lambda *packet: seen.append(packet[1])))
    room.add_plain(
        peer_id="hall-3",
        site_id=3,
        site_name="Hall 3",
        role=PeerRole.site,
        sources={},
        video_slots=[viewer],
    )
    ended: list[RecordingState] = []
    recordings = Recordings(small_disk, on_ended=ended.append)
    registry = CollectorRegistry()
    registry.register(recordings)
    await recordings.start(room, "rec-full")
    cameras, mics = [Camera(320, 240, noisy=True), Camera(176, 144)], [Microphone()] * 2
    for _ in range(20):
        await publish(1.0, cameras, mics, [halls[1], halls[2]])
        if ended:
            break
    await until(lambda: bool(ended), timeout_s=10)

    (state,) = ended
    info = state.info
    assert info.failure == "disk_full" and info.ended_at is not None
    assert room.recorder is None  # the room is not recording any more
    assert registry.get_sample_value("confbridge_sfu_recordings_active") == 0
    assert registry.get_sample_value("confbridge_sfu_recording_failures_total") == 1
    path = recordings.file("rec-full")
    assert info.bytes == path.stat().st_size > 50_000
    # what was written before the disk filled plays
    decoded = decode_all(path)
    assert len(decoded.widths) >= 10 and decoded.audio_frames >= 20
    assert all("video" not in error for error in decoded.errors[1:])  # at most the cut frame
    # the meeting goes on: the hall still gets the speaker's camera
    before = len(seen)
    await publish(0.5, cameras, mics, [halls[1], halls[2]])
    assert len(seen) > before + 10
    with pytest.raises(SfuError) as stopped:
        await recordings.stop(room)
    assert stopped.value.status == 409
    assert (await recordings.info("rec-full")).failure == "disk_full"
    await room.close()
