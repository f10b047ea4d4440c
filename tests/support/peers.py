"""Real WHIP/WHEP clients for tests and benchmarks: aiortc peers that talk HTTP to a running
worker, and the synthetic camera and microphone they publish."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame, VideoFrame

from sfu.rtc.ice import nominated_datagram_transport
from tests.support.polling import until

NOISE_FRAMES = 8  # random pictures a noisy camera cycles through
NOISY_SHARE = 0.1  # of a noisy picture's bytes that are random
TONE_HZ = 400  # a whole number of periods in each 20 ms frame at 8 kHz: no click between frames


__all__ = [
    "LOOPBACK_ONLY",
    "Frame",
    "SizedVideoTrack",
    "ToneTrack",
    "WhepViewer",
    "WhipPublisher",
    "loopback_peer",
    "until",
    "vanish",
]

LOOPBACK_ONLY = RTCConfiguration(iceServers=[])


def loopback_peer() -> RTCPeerConnection:
    """A peer with no STUN server: tests stay on 127.0.0.1."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class SizedVideoTrack(VideoStreamTrack):
    """Synthetic camera: frames of a fixed size (which tells publishers apart at the viewer).

    `fps` below 30 sends fewer frames (a thumbnail); `noisy` puts a band of random pixels
    across the top `NOISY_SHARE` of the picture: hard enough to compress that the stream runs
    at its encoder's target bitrate, not so hard that it overshoots it."""

    def __init__(self, width: int, height: int, *, fps: int = 30, noisy: bool = False) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self.fps = fps
        size = sum(plane.buffer_size for plane in VideoFrame(width=width, height=height).planes)
        band = int(size * NOISY_SHARE)
        self._noise = (
            [os.urandom(band) + bytes((128,)) * (size - band) for _ in range(NOISE_FRAMES)]
            if noisy
            else []
        )
        self._count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        while self.fps < 30 and (pts // 3000) * self.fps // 30 == self._count:
            pts, time_base = await self.next_timestamp()  # skip to the next frame due
        self._count = (pts // 3000) * self.fps // 30
        image = VideoFrame(width=self.width, height=self.height)
        if self._noise:
            noise = self._noise[self._count % len(self._noise)]
            offset = 0
            for plane in image.planes:
                plane.update(noise[offset : offset + plane.buffer_size])
                offset += plane.buffer_size
        else:
            shade = (pts // 3000) % 200
            for plane in image.planes:
                plane.update(bytes((shade,)) * plane.buffer_size)
        image.pts = pts
        image.time_base = time_base
        return image


@dataclass
class Frame:
    at: float
    width: int
    height: int = 0


@dataclass
class WhipPublisher:
    """A hall's camera and microphone, published with WHIP."""

    url: str
    token: str
    width: int = 160
    height: int = 120
    pc: RTCPeerConnection = field(default_factory=loopback_peer)
    location: str | None = None
    audio: MediaStreamTrack | None = None
    """The microphone (silence if None)."""
    thumbnail: bool = False
    """Also publish the camera's small layer, as halls do: a second video track at half the
    width and height and 15 fps, after the audio (sfu.layers)."""
    noisy: bool = False
    """Random pixels: each layer runs at its encoder's target bitrate."""
    content: bool = False
    """Publish a presentation (one video track, with a content grant) instead of a camera."""

    async def start(self) -> httpx.Response:
        self.pc.addTrack(SizedVideoTrack(self.width, self.height, noisy=self.noisy))
        if self.content:
            return await _offer(self, self.url)
        self.pc.addTrack(self.audio or AudioStreamTrack())
        if self.thumbnail:
            small = SizedVideoTrack(self.width // 2, self.height // 2, fps=15, noisy=self.noisy)
            self.pc.addTransceiver(small, direction="sendonly")
        return await _offer(self, self.url)

    async def stop(self) -> None:
        await _delete(self)
        await self.pc.close()


@dataclass
class WhepViewer:
    """A hall's screen and loudspeaker, fed with WHEP; decodes what it receives."""

    url: str
    token: str
    pc: RTCPeerConnection = field(default_factory=loopback_peer)
    location: str | None = None
    frames: list[Frame] = field(default_factory=list)
    audio_frames: int = 0
    content: bool = False
    """Offer a second video track, which carries the presentation while someone shares."""
    content_frames: list[Frame] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> httpx.Response:
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        content = self.pc.addTransceiver("video", direction="recvonly") if self.content else None
        self.pc.on(
            "track",
            lambda track: self._tasks.append(
                asyncio.create_task(
                    self._read(track, content is not None and content.receiver.track is track)
                )
            ),
        )
        return await _offer(self, self.url)

    async def _read(self, track: MediaStreamTrack, is_content: bool = False) -> None:
        with contextlib.suppress(Exception):
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    self.audio_frames += 1
                    continue
                decoded = Frame(time.monotonic(), frame.width, frame.height)
                (self.content_frames if is_content else self.frames).append(decoded)

    def widths_since(self, moment: float) -> set[int]:
        return {f.width for f in self.frames if f.at >= moment}

    def content_widths_since(self, moment: float) -> set[int]:
        return {f.width for f in self.content_frames if f.at >= moment}

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await _delete(self)
        await self.pc.close()


class ToneTrack(AudioStreamTrack):
    """A microphone picking up a steady tone; set `amplitude` (0..1 of full scale) at any time.

    aiortc's sender measures each frame it encodes and sends the level in the RFC 6464
    ssrc-audio-level header extension: about 20·log10(amplitude/√2) dBov, -127 when silent.
    """

    def __init__(self, amplitude: float = 0.0) -> None:
        super().__init__()
        self.amplitude = amplitude

    async def recv(self) -> AudioFrame:
        frame = await super().recv()
        assert isinstance(frame, AudioFrame)
        if self.amplitude > 0:
            peak = self.amplitude * 32767
            rate = frame.sample_rate
            samples = [
                round(peak * math.sin(2 * math.pi * TONE_HZ * i / rate))
                for i in range(frame.samples)
            ]
            frame.planes[0].update(struct.pack(f"<{len(samples)}h", *samples))
        return frame


def vanish(pc: RTCPeerConnection) -> None:
    """Cut a connected peer off the network without a word: nothing it sends leaves, nothing
    sent to it is read, so it answers no ICE consent check (RFC 7675), as a hall whose
    network or power went away. Closing `pc` afterwards still works."""
    transports = {
        id(found[0]): found[0]
        for transceiver in pc.getTransceivers()
        if (found := nominated_datagram_transport(transceiver.sender.transport)) is not None
    }
    assert transports, "the peer has no connected ICE pair"

    def drop(*_args: Any, **_kwargs: Any) -> None:
        return None

    for transport in transports.values():
        transport.pause_reading()
        transport.sendto = drop  # type: ignore[method-assign]


async def _offer(peer: WhipPublisher | WhepViewer, url: str) -> httpx.Response:
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            url,
            content=peer.pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {peer.token}"},
        )
    if response.status_code == 201:
        peer.location = str(httpx.URL(url).join(response.headers["location"]))
        await peer.pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    return response


async def _delete(peer: WhipPublisher | WhepViewer) -> None:
    if peer.location:
        # a worker that died with the session cannot be told
        with contextlib.suppress(httpx.TransportError):
            async with httpx.AsyncClient(timeout=10) as http:
                await http.delete(peer.location, headers={"Authorization": f"Bearer {peer.token}"})
        peer.location = None
