"""Encoded media for recorder tests: a camera and a microphone as real VP8 and Opus RTP
packets (aiortc's encoders and packetizers), pushed into `Source`s without a network."""

from __future__ import annotations

import asyncio
import math
import os
import random
from collections.abc import Iterator
from fractions import Fraction

from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket
from av import AudioFrame, VideoFrame

from sfu.codecs import H264, RtpCodec
from sfu.forwarding import Source
from sfu.recording.recorder import AUDIO_CODEC, VIDEO_CODEC

FPS = 30


def sources(label: str, video: RtpCodec = VIDEO_CODEC) -> tuple[Source, Source]:
    """A publisher's video and audio sources, with the codecs a hall negotiates (a room
    system's H.264 with `video`)."""
    return (
        Source("video", [video], label=label),
        Source("audio", [AUDIO_CODEC], label=label),
    )


class Camera:
    """VP8 (or H.264, with `codec`) RTP packets of a moving picture of a fixed size."""

    def __init__(
        self, width: int, height: int, codec: RtpCodec = VIDEO_CODEC, *, noisy: bool = False
    ) -> None:
        self.width, self.height = width, height
        self._noisy = noisy  # random pixels: frames of several kB (a file that grows fast)
        h264 = codec.mime_type.lower() == H264
        self._encoder: Vp8Encoder | H264Encoder = H264Encoder() if h264 else Vp8Encoder()
        self._pt = codec.payload_type
        self._ssrc = random.getrandbits(32)
        self._seq = random.randint(0, 0xFFFF)
        self._count = 0

    def frame(self, *, keyframe: bool = False) -> list[RtpPacket]:
        """The packets of the next frame (1/30 s later)."""
        image = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        shade = (self._count * 7) % 200 + 20
        for plane in image.planes:
            fill = os.urandom(plane.buffer_size) if self._noisy else None
            plane.update(fill or bytes((shade,)) * plane.buffer_size)
        image.pts = self._count * 3000
        image.time_base = Fraction(1, 90_000)
        self._count += 1
        payloads, timestamp = self._encoder.encode(image, force_keyframe=keyframe)
        packets = []
        for index, payload in enumerate(payloads):
            packets.append(
                RtpPacket(
                    payload_type=self._pt,
                    marker=int(index == len(payloads) - 1),
                    sequence_number=self._seq,
                    timestamp=timestamp,
                    ssrc=self._ssrc,
                    payload=payload,
                )
            )
            self._seq = (self._seq + 1) & 0xFFFF
        return packets


class Microphone:
    """Opus RTP packets of a tone, 20 ms each."""

    def __init__(self, hz: int = 440) -> None:
        self._encoder = OpusEncoder()
        self._hz = hz
        self._ssrc = random.getrandbits(32)
        self._seq = random.randint(0, 0xFFFF)
        self._samples = 0

    def packet(self) -> RtpPacket:
        rate = 48_000
        count = rate // 50
        frame = AudioFrame(format="s16", layout="stereo", samples=count)
        values = bytearray()
        for i in range(count):
            value = int(8000 * math.sin(2 * math.pi * self._hz * (self._samples + i) / rate))
            values += value.to_bytes(2, "little", signed=True) * 2
        frame.planes[0].update(bytes(values))
        frame.sample_rate = rate
        frame.pts = self._samples
        frame.time_base = Fraction(1, rate)
        self._samples += count
        payloads, timestamp = self._encoder.encode(frame)
        packet = RtpPacket(
            payload_type=AUDIO_CODEC.payload_type,
            marker=0,
            sequence_number=self._seq,
            timestamp=timestamp,
            ssrc=self._ssrc,
            payload=payloads[0],
        )
        self._seq = (self._seq + 1) & 0xFFFF
        return packet


def media_for(seconds: float) -> Iterator[tuple[bool, int]]:
    """(is video, index) in the order a publisher sends them: 30 frames and 50 audio packets a
    second."""
    video, audio = 0, 0
    while video < seconds * FPS or audio < seconds * 50:
        if video / FPS <= audio / 50:
            yield True, video
            video += 1
        else:
            yield False, audio
            audio += 1


Feed = tuple[Source, Source | None]
"""A publisher's video source and its audio source (None: video only, as content)."""


async def publish(
    seconds: float,
    cameras: list[Camera],
    mics: list[Microphone],
    feeds: list[Feed],
    *,
    key_at: int = -1,
) -> None:
    """Every feed sends its media for `seconds` (as fast as it encodes), each camera starting
    with a keyframe; the second camera sends another at frame `key_at`."""
    for is_video, index in media_for(seconds):
        for i, (video, audio) in enumerate(feeds):
            if is_video:
                for packet in cameras[i].frame(keyframe=index == 0 or (i == 1 and index == key_at)):
                    video.push(packet)
            elif audio is not None:
                audio.push(mics[i].packet())
        if index % 10 == 0:
            await asyncio.sleep(0)
