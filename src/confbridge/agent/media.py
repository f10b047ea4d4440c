"""What the agent publishes: a camera and microphone through PyAV (v4l2/ALSA), a video file,
or a generated test pattern and tone."""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from dataclasses import dataclass, field
from fractions import Fraction

from aiortc import MediaStreamTrack, VideoStreamTrack
from aiortc.contrib.media import MediaPlayer, MediaRelay
from aiortc.mediastreams import AudioStreamTrack
from av import AudioFrame, VideoFrame

log = logging.getLogger(__name__)

PATTERN_WIDTH, PATTERN_HEIGHT = 320, 240
# Luma of the bars, left to right (a grey staircase: the codec keeps it cheap).
BAR_LUMA = (235, 210, 170, 145, 106, 81, 41)
MOVING_BAR_PX = 8
# The camera's small layer, sent beside it for viewers on a poor link (the worker's sfu.layers;
# it caps the bitrate with its bandwidth reports, aiortc's encoder going no lower than 250 kbit/s)
THUMBNAIL_WIDTH = 320
THUMBNAIL_FPS = 15
TONE_HZ = 400  # whole periods in a 20 ms frame at 8 and 48 kHz: no click between frames
TONE_AMPLITUDE = 0.1


class PatternTrack(VideoStreamTrack):
    """Grey bars with a dark bar moving across them: a picture that shows the link is alive."""

    def __init__(self, width: int = PATTERN_WIDTH, height: int = PATTERN_HEIGHT) -> None:
        super().__init__()
        self.width, self.height = width, height
        self._luma = bytes(
            BAR_LUMA[min(x * len(BAR_LUMA) // width, len(BAR_LUMA) - 1)] for x in range(width)
        )

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        x = (pts // 3000) * 4 % self.width  # 4 px per frame at 30 fps
        row = bytearray(self._luma)
        row[x : x + MOVING_BAR_PX] = bytes((16,)) * len(row[x : x + MOVING_BAR_PX])
        luma = frame.planes[0]
        padded = bytes(row) + bytes(luma.line_size - self.width)
        luma.update(padded * self.height)
        for chroma in frame.planes[1:]:
            chroma.update(bytes((128,)) * chroma.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


class ThumbnailTrack(MediaStreamTrack):
    """The camera's small layer: `source`'s frames at most `THUMBNAIL_FPS` a second, scaled
    down to `THUMBNAIL_WIDTH` pixels wide (never up), off the event loop."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self._source = source
        self._last_at: Fraction | None = None

    async def recv(self) -> VideoFrame:
        while True:
            frame = await self._source.recv()
            assert isinstance(frame, VideoFrame)
            at = Fraction(frame.pts or 0) * (frame.time_base or Fraction(1, 90_000))
            # a little slack, so that a 30 fps camera gives every other frame
            if self._last_at is None or at - self._last_at >= Fraction(9, 10 * THUMBNAIL_FPS):
                self._last_at = at
                break
        if frame.width <= THUMBNAIL_WIDTH:
            return frame
        height = round(frame.height * THUMBNAIL_WIDTH / frame.width / 2) * 2
        small = await asyncio.get_running_loop().run_in_executor(
            None, lambda: frame.reformat(width=THUMBNAIL_WIDTH, height=height)
        )
        small.pts, small.time_base = frame.pts, frame.time_base
        return small

    def stop(self) -> None:
        super().stop()
        self._source.stop()


class ToneTrack(AudioStreamTrack):
    """A quiet steady tone on the stock silent track's frames (timing and format kept)."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[tuple[int, int], bytes] = {}

    def _samples(self, rate: int, count: int) -> bytes:
        key = (rate, count)
        if key not in self._cache:
            peak = TONE_AMPLITUDE * 32767
            self._cache[key] = struct.pack(
                f"<{count}h",
                *(round(peak * math.sin(2 * math.pi * TONE_HZ * i / rate)) for i in range(count)),
            )
        return self._cache[key]

    async def recv(self) -> AudioFrame:
        frame = await super().recv()
        assert isinstance(frame, AudioFrame)
        frame.planes[0].update(self._samples(frame.sample_rate, frame.samples))
        return frame


@dataclass
class MediaSources:
    """The agent's outgoing media. `tracks()` gives fresh tracks for one session, so that a
    rejoin can publish again while the devices stay open."""

    camera: str | None = None
    microphone: str | None = None
    video_file: str | None = None
    video_size: str = "640x480"
    camera_ok: bool = False
    microphone_ok: bool = False
    error: str | None = None
    _players: list[MediaPlayer] = field(default_factory=list)
    _video: MediaStreamTrack | None = None
    _audio: MediaStreamTrack | None = None
    _relay: MediaRelay = field(default_factory=MediaRelay)

    def open(self) -> None:
        """Open the devices or the file; a device that fails is replaced by the test source
        (the hall still joins and hears the meeting) and the failure is kept in `error`."""
        if self.video_file:
            player = MediaPlayer(self.video_file, loop=True)
            self._players.append(player)
            self._video, self._audio = player.video, player.audio
        if self.camera:
            try:
                player = MediaPlayer(
                    self.camera, format="v4l2", options={"video_size": self.video_size}
                )
            except Exception as exc:  # PyAV raises several kinds; all mean "no camera"
                self.error = f"camera {self.camera}: {exc}"
                log.error("camera %s cannot be opened: %s", self.camera, exc)
            else:
                self._players.append(player)
                self._video, self.camera_ok = player.video, player.video is not None
        if self.microphone:
            try:
                player = MediaPlayer(self.microphone, format="alsa")
            except Exception as exc:
                self.error = f"microphone {self.microphone}: {exc}"
                log.error("microphone %s cannot be opened: %s", self.microphone, exc)
            else:
                self._players.append(player)
                self._audio, self.microphone_ok = player.audio, player.audio is not None

    def tracks(self) -> tuple[MediaStreamTrack, MediaStreamTrack]:
        """(video, audio) for one session: relayed device/file tracks, or new test tracks."""
        video = self._relay.subscribe(self._video) if self._video else PatternTrack()
        audio = self._relay.subscribe(self._audio) if self._audio else ToneTrack()
        return video, audio

    def thumbnail(self) -> MediaStreamTrack:
        """The camera's small layer for one session (of the device, the file or a pattern)."""
        source = self._relay.subscribe(self._video) if self._video else PatternTrack()
        return ThumbnailTrack(source)

    def close(self) -> None:
        for player in self._players:
            for track in (player.audio, player.video):
                if track is not None:
                    track.stop()
        self._players.clear()
