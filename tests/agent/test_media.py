"""What the agent publishes without a camera: a test pattern and a tone, or a looped file."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import av
from av import VideoFrame

from confbridge.agent.backoff import Backoff
from confbridge.agent.media import (
    THUMBNAIL_FPS,
    THUMBNAIL_WIDTH,
    MediaSources,
    PatternTrack,
    ThumbnailTrack,
    ToneTrack,
)


async def test_media_test_pattern_moves_and_the_tone_is_audible() -> None:
    video, audio = PatternTrack(), ToneTrack()
    first, second = await video.recv(), await video.recv()
    assert (first.width, first.height) == (320, 240)
    assert bytes(first.planes[0]) != bytes(second.planes[0])  # the bar moved
    frame = await audio.recv()
    samples = struct.unpack(f"<{frame.samples}h", bytes(frame.planes[0])[: frame.samples * 2])
    assert max(samples) > 3000  # about -20 dBFS, not silence
    video.stop()
    audio.stop()


def _write_clip(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=30)
        stream.width, stream.height, stream.pix_fmt = 176, 144, "yuv420p"
        for index in range(15):
            frame = VideoFrame(width=176, height=144, format="yuv420p")
            for plane in frame.planes:
                plane.update(bytes((index * 8 % 256,)) * plane.buffer_size)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


async def test_media_video_file_is_published_and_a_missing_camera_is_reported(
    tmp_path: Path,
) -> None:
    clip = tmp_path / "clip.webm"
    _write_clip(clip)
    sources = MediaSources(video_file=str(clip), camera=str(tmp_path / "no-video0"))
    sources.open()
    try:
        assert not sources.camera_ok and sources.error is not None
        assert sources.error.startswith("camera ")
        video, audio = sources.tracks()
        frame = await video.recv()
        assert (frame.width, frame.height) == (176, 144)
        assert isinstance(audio, ToneTrack)  # the clip has no sound: the tone instead
    finally:
        sources.close()


def test_media_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(1.0, 8.0)
    delays = [backoff.next_delay_s() for _ in range(6)]
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert 0.8 * base <= delay <= 1.2 * base
    backoff.reset()
    assert backoff.next_delay_s() <= 1.2


async def test_media_thumbnail_is_small_and_at_most_15_fps() -> None:
    """The camera's small layer: 320 px wide with the camera's aspect, every other frame of a
    30 fps camera, with the camera's timestamps; stopping it stops its source."""
    camera = PatternTrack(640, 480)
    thumbnail = ThumbnailTrack(camera)
    frames = [await thumbnail.recv() for _ in range(6)]
    assert {(f.width, f.height) for f in frames} == {(THUMBNAIL_WIDTH, 240)}
    seconds = [float(f.pts * f.time_base) for f in frames]
    gaps = [b - a for a, b in itertools.pairwise(seconds)]
    assert all(abs(gap - 1 / THUMBNAIL_FPS) < 0.005 for gap in gaps), gaps
    thumbnail.stop()
    assert camera.readyState == "ended"
    small_camera = ThumbnailTrack(PatternTrack(160, 120))
    assert ((await small_camera.recv()).width) == 160  # never scaled up
    small_camera.stop()
