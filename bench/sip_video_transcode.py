"""CPU cost of transcoding a SIP leg's video (VP8 → H.264), against passthrough of the same stream.

A synthetic camera (a moving gradient with a sliding box, `--width`×`--height`) is encoded once,
before measuring, twice: as VP8 and as H.264 by aiortc's encoders, `--loop-seconds` of it, which
is then replayed in a loop. Each run feeds one room `Source` in real time (packets of a frame
pushed at its frame time, renumbered on every loop) and `--legs` SIP legs' `SipVideo`s watch it
through their slots, their RTP counted and dropped (no sockets):

- `passthrough`: the H.264 stream, forwarded to the legs as it is;
- `transcode`: the VP8 stream; each leg's slot finds no codec to map it to and its egress
  transcodes it (`sfu.sip.video_transcode`): decode, scale if needed, encode H.264.

The figure is the process CPU time (`time.process_time()`: every thread, so the decoder, the
encoder and libx264's own threads count) over the window after `--warmup` seconds, divided by
the window's wall time: a share of one core. A transcoded leg costs (transcode − passthrough) /
legs. Both modes run in the same process one after the other, for each `--fps`.

    .venv/bin/python bench/sip_video_transcode.py [--fps 15,30] [--seconds 20] [--legs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket
from av import VideoFrame

from sfu.codecs import H264, VP8, RtpCodec
from sfu.forwarding import Source
from sfu.sip.video import SipVideo

SOURCE_PT = 96
LEG_PT = 109
Frames = list[list[bytes]]  # RTP payloads of each frame


def camera(index: int, width: int, height: int, fps: int) -> VideoFrame:
    """A moving picture a camera could show: a drifting gradient and a sliding box."""
    x = np.arange(width, dtype=np.uint16)
    y = np.arange(height, dtype=np.uint16)[:, None]
    luma = ((x + y + index * 4) % 256).astype(np.uint8)
    box = width // 6
    left = (index * 6) % (width - box)
    luma[height // 3 : height // 3 + box, left : left + box] = 235
    image = VideoFrame.from_ndarray(np.ascontiguousarray(luma), format="gray")
    image = image.reformat(format="yuv420p")
    image.pts = index * 90_000 // fps
    image.time_base = fractions.Fraction(1, 90_000)
    return image


def encode_both(width: int, height: int, fps: int, count: int) -> tuple[Frames, Frames]:
    """The same frames as VP8 and as H.264 payloads (each starts with a keyframe)."""
    vp8, h264 = Vp8Encoder(), H264Encoder()
    vp8_frames, h264_frames = [], []
    for index in range(count):
        image = camera(index, width, height, fps)
        vp8_frames.append(vp8.encode(image, index == 0)[0])
        h264_frames.append(h264.encode(image, index == 0)[0])
    return vp8_frames, h264_frames


@dataclass
class Run:
    mode: str
    fps: int
    legs: int
    cpu: float
    """Share of one core over the window."""
    packets_in: int
    packets_out: int
    bytes_out: int
    frames_encoded: int
    frames_skipped: int
    window_s: float


class Sink:
    """A leg's socket that counts what it would send."""

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0

    def send(self, data: bytes) -> None:
        self.packets += 1
        self.bytes += len(data)


async def run(mode: str, frames: Frames, fps: int, legs: int, args: argparse.Namespace) -> Run:
    """Replay `frames` into a source watched by `legs` legs for warm-up plus window."""
    params = {"packetization-mode": "1", "profile-level-id": "42e01f"}
    codec = (
        RtpCodec(H264, 90_000, SOURCE_PT, parameters=params)
        if mode == "passthrough"
        else RtpCodec(VP8, 90_000, SOURCE_PT)
    )
    source = Source("video", [codec], send_pli=lambda: True, label=mode)
    sinks = [Sink() for _ in range(legs)]
    videos = [
        SipVideo(send_rtp=sink.send, send_rtcp=lambda _data: None, payload_type=LEG_PT)
        for sink in sinks
    ]
    for video in videos:
        video.slot.switch_to(source)
    seq, pushed = 0, 0
    total = round((args.warmup + args.seconds) * fps)
    started = time.perf_counter()
    for index in range(total):
        if index == round(args.warmup * fps):
            cpu0, wall0, pushed0 = time.process_time(), time.perf_counter(), pushed
            out0 = [(s.packets, s.bytes) for s in sinks]
            stats0 = [_transcoded(v) for v in videos]
        payloads = frames[index % len(frames)]
        for number, payload in enumerate(payloads):
            source.push(
                RtpPacket(
                    payload_type=SOURCE_PT,
                    marker=int(number == len(payloads) - 1),
                    sequence_number=seq & 0xFFFF,
                    timestamp=(index * 90_000 // fps) & 0xFFFFFFFF,
                    ssrc=0x1234,
                    payload=payload,
                )
            )
            seq += 1
            pushed += 1
        await asyncio.sleep(max(0.0, started + (index + 1) / fps - time.perf_counter()))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    stats1 = [_transcoded(v) for v in videos]
    result = Run(
        mode=mode,
        fps=fps,
        legs=legs,
        cpu=cpu / wall,
        packets_in=pushed - pushed0,
        packets_out=sum(s.packets for s in sinks) - sum(p for p, _b in out0),
        bytes_out=sum(s.bytes for s in sinks) - sum(b for _p, b in out0),
        frames_encoded=sum(b[0] - a[0] for a, b in zip(stats0, stats1, strict=True)),
        frames_skipped=sum(b[1] - a[1] for a, b in zip(stats0, stats1, strict=True)),
        window_s=wall,
    )
    transcoders = [v.egress.transcoder for v in videos if v.egress.transcoder is not None]
    for video in videos:
        video.close()
    source.close()
    for transcoder in transcoders:
        await transcoder.wait_closed()
    return result


def _transcoded(video: SipVideo) -> tuple[int, int]:
    transcoder = video.egress.transcoder
    if transcoder is None:
        return 0, 0
    stats = transcoder.stats()
    return stats.frames_encoded, stats.frames_skipped + stats.frames_discarded


def report(runs: list[Run]) -> None:
    print(
        f"{'mode':12} {'fps':>4} {'legs':>4} {'CPU % core':>10} {'per leg':>8} "
        f"{'pkts/s in':>9} {'pkts/s out':>10} {'kbit/s out':>10} {'enc fps':>8} {'skipped':>7}"
    )
    base = {(r.fps, r.legs): r.cpu for r in runs if r.mode == "passthrough"}
    for r in runs:
        extra = (r.cpu - base[(r.fps, r.legs)]) / r.legs if r.mode == "transcode" else 0.0
        per_leg = f"{extra:8.1%}" if r.mode == "transcode" else f"{'':8}"
        print(
            f"{r.mode:12} {r.fps:4d} {r.legs:4d} {r.cpu:10.1%} {per_leg} "
            f"{r.packets_in / r.window_s:9.0f} {r.packets_out / r.window_s:10.0f} "
            f"{r.bytes_out * 8 / r.window_s / 1000 / r.legs:10.0f} "
            f"{r.frames_encoded / r.window_s / r.legs:8.1f} {r.frames_skipped:7d}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", default="15,30", help="frame rates, comma-separated")
    parser.add_argument("--legs", default="1", help="legs watching, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not counted")
    parser.add_argument("--loop-seconds", type=float, default=4.0, help="stream replayed")
    args = parser.parse_args()
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}); "
        f"{args.width}x{args.height}, {args.seconds:g} s windows after {args.warmup:g} s"
    )
    runs = []
    for fps in (int(v) for v in args.fps.split(",")):
        vp8, h264 = encode_both(args.width, args.height, fps, round(args.loop_seconds * fps))
        for legs in (int(v) for v in args.legs.split(",")):
            for mode, frames in (("passthrough", h264), ("transcode", vp8)):
                runs.append(await run(mode, frames, fps, legs, args))
    report(runs)
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
