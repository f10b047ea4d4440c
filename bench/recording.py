"""CPU cost of recording a meeting: the recorder's share of a core at about 1 Mbit/s.

Media is encoded first (a noisy 640×360 VP8 camera at 30 fps with aiortc's encoder set to
1 Mbit/s, and 20 ms Opus packets), then replayed in real time into a room's `Source`s, once
without a recorder and once with one (`sfu.recording.Recorder`: slots, frame assembly, the
muxer's thread, the file), and once with a viewer's slots instead (an egress that writes
each packet to a local UDP socket: what forwarding to one more viewer costs, without SRTP).
Measured over each replay:

- process CPU (`time.process_time()`, every thread: the writer's too) as a share of one core;
  the difference between the two runs is the recorder's cost per recorded meeting;
- the µs spent inside `Source.push` per packet (thread CPU time), with and without: what
  recording adds to the forwarding path, beside what a viewer adds.

    .venv/bin/python bench/recording.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket
from av import AudioFrame, VideoFrame

from sfu.forwarding import Slot, Source
from sfu.recording.programme import Programme
from sfu.recording.recorder import AUDIO_CODEC, VIDEO_CODEC, Recorder
from sfu.rtc.egress import EgressStats
from sfu.rtc.sdp import NegotiatedRtp

FPS = 30
BITRATE = 1_000_000


def encode(seconds: float) -> list[tuple[float, str, RtpPacket]]:
    """(send time, kind, packet) of `seconds` of a camera and a microphone."""
    video = Vp8Encoder()
    video.target_bitrate = BITRATE
    audio = OpusEncoder()
    out: list[tuple[float, str, RtpPacket]] = []
    seq = {"video": 0, "audio": 0}
    noise = [os.urandom(640 * 360 // 12) for _ in range(8)]
    for index in range(int(seconds * FPS)):
        image = VideoFrame(width=640, height=360, format="yuv420p")
        y = image.planes[0]
        y.update(noise[index % 8] + bytes(y.buffer_size - len(noise[0])))
        image.pts, image.time_base = index * 3000, Fraction(1, 90_000)
        payloads, ts = video.encode(image)
        for i, payload in enumerate(payloads):
            marker = int(i == len(payloads) - 1)
            packet = RtpPacket(96, marker, seq["video"] & 0xFFFF, ts, 1, payload)
            seq["video"] += 1
            out.append((index / FPS, "video", packet))
    for index in range(int(seconds * 50)):
        frame = AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(os.urandom(960 * 4))
        frame.sample_rate, frame.pts, frame.time_base = 48_000, index * 960, Fraction(1, 48_000)
        payloads, ts = audio.encode(frame)
        packet = RtpPacket(111, 0, seq["audio"] & 0xFFFF, ts, 2, payloads[0])
        seq["audio"] += 1
        out.append((index / 50, "audio", packet))
    out.sort(key=lambda item: item[0])
    return out


class UdpEgress:
    """A viewer's egress that sends each packet to a local UDP port (nothing listens)."""

    def __init__(self, kind: str, sock: socket.socket) -> None:
        codec = VIDEO_CODEC if kind == "video" else AUDIO_CODEC
        self.kind, self.ssrc, self.clock_rate = kind, random.getrandbits(32), codec.clock_rate
        self.params = NegotiatedRtp(kind=kind, mid=None, codecs=(codec,))
        self.on_keyframe_request = lambda: None
        self.ready = True
        self._sock = sock

    def send(self, header: bytes, payload: bytes, seq: int, rtp_ts: int, now: float) -> bool:
        self._sock.sendto(header + payload, ("127.0.0.1", 9))
        return True

    def stats(self) -> EgressStats:
        return EgressStats.plain(packets_sent=0, bytes_sent=0)

    def close(self) -> None:
        pass


async def replay(media: list[tuple[float, str, RtpPacket]], mode: str) -> dict[str, float]:
    """Replay `media` into sources feeding nothing (`plain`), a `recorder` or a `viewer`."""
    sources = {"video": Source("video", [VIDEO_CODEC]), "audio": Source("audio", [AUDIO_CODEC])}
    recorder = None
    with (
        tempfile.TemporaryDirectory() as directory,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        if mode == "recorder":
            recorder = Recorder("bench", Path(directory) / "bench.webm")
            recorder.follow(Programme(sources["video"], sources["audio"]))
        elif mode == "viewer":
            for kind, source in sources.items():
                Slot(UdpEgress(kind, sock), label=kind).switch_to(source)
        in_path_ns = 0
        cpu0, wall0 = time.process_time(), time.monotonic()
        for at, kind, packet in media:
            delay = wall0 + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.thread_time_ns()
            sources[kind].push(packet)
            in_path_ns += time.thread_time_ns() - t0
        size = 0
        if recorder is not None:
            written = await recorder.stop()
            size = written.bytes
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return {
        "cpu_share": cpu / wall,
        "push_us": in_path_ns / len(media) / 1000,
        "mbit_s": sum(len(p.payload) for _, _, p in media) * 8 / media[-1][0] / 1e6,
        "file_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    media = encode(args.seconds)
    plain = asyncio.run(replay(media, "plain"))
    recorded = asyncio.run(replay(media, "recorder"))
    viewed = asyncio.run(replay(media, "viewer"))
    print(f"media: {plain['mbit_s']:.2f} Mbit/s, {len(media)} packets over {args.seconds:.0f} s")
    print(f"process CPU, no recorder:   {plain['cpu_share'] * 100:.2f} % of a core")
    print(f"process CPU, recording:     {recorded['cpu_share'] * 100:.2f} % of a core")
    print(f"recorder's cost:            {(recorded['cpu_share'] - plain['cpu_share']) * 100:.2f} %")
    print(f"Source.push, no recorder:   {plain['push_us']:.1f} µs per packet")
    print(f"Source.push, recording:     {recorded['push_us']:.1f} µs per packet")
    print(f"Source.push, one viewer:    {viewed['push_us']:.1f} µs per packet")
    print(f"file: {recorded['file_bytes']} bytes")


if __name__ == "__main__":
    main()
