"""The recorder as an in-process viewer: real VP8 and Opus packets in, a WebM file out that
ffprobe reads and PyAV decodes, across a floor switch and after a simulated crash."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from sfu.recording.recorder import Recorder
from tests.sfu.recording.media import Camera, Microphone, media_for, sources
from tests.sfu.recording.probe import decode_all, ffprobe


async def _publish(
    seconds: float, cameras: list[Camera], mics: list[Microphone], feeds: list, *, key_at: int = -1
) -> None:
    """Both halls send their media for `seconds` (as fast as it encodes); the second camera
    sends a keyframe at frame `key_at`."""
    for is_video, index in media_for(seconds):
        for i, (video, audio) in enumerate(feeds):
            if is_video:
                for packet in cameras[i].frame(keyframe=index == 0 or (i == 1 and index == key_at)):
                    video.push(packet)
            else:
                audio.push(mics[i].packet())
        if index % 10 == 0:
            await asyncio.sleep(0)


async def test_recorder_writes_the_programme_across_a_floor_switch(tmp_path: Path) -> None:
    hq, p2 = sources("hq"), sources("p2")
    cameras, mics = [Camera(320, 240), Camera(176, 144)], [Microphone(440), Microphone(660)]
    recorder = Recorder("r1", tmp_path / "r1.webm")
    recorder.follow(*hq)
    await _publish(2.0, cameras, mics, [hq, p2])
    recorder.follow(*p2)  # the floor moves: video switches at p2's next keyframe
    await _publish(2.0, cameras, mics, [hq, p2], key_at=3)
    written = await recorder.stop()

    assert written.path.stat().st_size == written.bytes > 10_000
    assert len(written.sha256) == 64
    probe = ffprobe(written.path)
    kinds = {s["codec_type"]: s for s in probe["streams"]}
    assert kinds["video"]["codec_name"] == "vp8" and kinds["audio"]["codec_name"] == "opus"
    assert kinds["video"]["width"] == 320  # the first speaker's camera
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
    recorder.follow(*hq)
    await _publish(3.0, [Camera(320, 240)], [Microphone()], [hq])
    # the worker dies here: what is on disk now is all there is (no trailer, no cues)
    await asyncio.sleep(1.0)
    crashed = tmp_path / "crashed.webm"
    shutil.copyfile(recorder.path, crashed)
    await _publish(1.0, [Camera(320, 240)], [Microphone()], [hq])
    await recorder.stop()

    probe = ffprobe(crashed)
    packets = {s["codec_type"]: int(s["nb_read_packets"]) for s in probe["streams"]}
    assert packets["video"] >= 30 and packets["audio"] >= 50  # at least the first clusters
    decoded = decode_all(crashed)
    assert decoded.errors == []
    assert len(decoded.widths) >= 30
