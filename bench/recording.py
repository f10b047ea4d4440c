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

With `--viewers N[,N…]`, the same question is asked of the real fan-out stack
(`bench/fanout.py`'s: the control plane, one local worker process in single-port mode, its
pre-encoded ~1 Mbit/s publisher over WHIP, N cheap or lean WHEP viewers in client processes):
at each N, `--rounds` pairs of windows of `--round-seconds`, one without and one with the room
being recorded (`POST /api/v1/occurrences/{id}/recording {"action": "start"}` with the chair
site's terminal token before the window, `stop` after it), the order alternating from pair
to pair (without/with, with/without, …) so that a drift of the machine's load falls on both.
Each window gives `fanout.py`'s figure: the worker's CPU (utime + stime, every thread, the
recorder's writer too) / (publisher packets × viewers fed), i.e. µs per forwarded packet,
and the worker's share of a core. Printed per N: every round, the medians with and without,
their difference (µs per forwarded packet, and % of a core: the recorder's cost in the
worker), the difference of each pair, and the spread (max − min) of the rounds of each kind:
the noise the difference is compared with.

    .venv/bin/python bench/recording.py [--seconds 10]
    .venv/bin/python bench/recording.py --viewers 50,80 --rounds 3 --round-seconds 20 \
                                        [--lean-viewers] [--clients 2] [--skip-replay]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fanout
import httpx
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket
from av import AudioFrame, VideoFrame

from sfu.forwarding import Slot, Source
from sfu.recording.programme import Programme
from sfu.recording.recorder import AUDIO_CODEC, VIDEO_CODEC, Recorder
from sfu.rtc.egress import EgressStats
from sfu.rtc.ice import use_host_addresses
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


def run_replay(seconds: float) -> None:
    """The in-process figures: the recorder's share of a core and µs in `Source.push`."""
    media = encode(seconds)
    plain = asyncio.run(replay(media, "plain"))
    recorded = asyncio.run(replay(media, "recorder"))
    viewed = asyncio.run(replay(media, "viewer"))
    print(f"media: {plain['mbit_s']:.2f} Mbit/s, {len(media)} packets over {seconds:.0f} s")
    print(f"process CPU, no recorder:   {plain['cpu_share'] * 100:.2f} % of a core")
    print(f"process CPU, recording:     {recorded['cpu_share'] * 100:.2f} % of a core")
    print(f"recorder's cost:            {(recorded['cpu_share'] - plain['cpu_share']) * 100:.2f} %")
    print(f"Source.push, no recorder:   {plain['push_us']:.1f} µs per packet")
    print(f"Source.push, recording:     {recorded['push_us']:.1f} µs per packet")
    print(f"Source.push, one viewer:    {viewed['push_us']:.1f} µs per packet")
    print(f"file: {recorded['file_bytes']} bytes", flush=True)


# ---------------------------------------------------------------------------------------------
# the real fan-out stack, without and with the room being recorded


@dataclass
class Round:
    viewers: int
    pair: int
    recording: bool
    cpu_us: float  # worker CPU µs per forwarded packet
    cores: float  # worker CPU / wall time
    delivered: float
    fed: int  # viewers connected and fed in the window
    pub_pps: float
    load: float  # 1-minute load average at the window's end
    file_mbit_s: float = float("nan")  # the recording's bytes over its span (with only)


async def recording_action(stack: fanout.Stack, action: str) -> dict:
    """Start or stop the room's recording through the control plane, as the chair site's
    terminal does."""
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(
            f"{stack.control.url}/api/v1/occurrences/{stack.occurrence_id}/recording",
            json={"action": action},
            headers={"Authorization": f"Bearer {stack.tokens['hq']}"},
        )
    if response.status_code != 200:
        raise RuntimeError(f"recording {action}: {response.status_code} {response.text[:200]}")
    return response.json()


def span_mbit_s(stopped: dict) -> float:
    """Media bytes of a stopped recording over its span, in Mbit/s."""
    began = datetime.fromisoformat(stopped["started_at"])
    ended = datetime.fromisoformat(stopped["ended_at"])
    seconds = (ended - began).total_seconds()
    return stopped["bytes"] * 8 / seconds / 1e6 if seconds > 0 and stopped["bytes"] else 0.0


async def one_round(
    args: argparse.Namespace,
    stack: fanout.Stack,
    bench: fanout.Bench,
    publisher: fanout.Publisher,
    viewers: int,
    pair: int,
    recording: bool,
) -> Round:
    """One window at `viewers`, the room recorded through it or not."""
    if recording:
        await recording_action(stack, "start")
    # the recorder's slots wait for a keyframe (their request restarts the publisher's loop)
    await asyncio.sleep(args.settle)
    row = fanout.Row("recorded" if recording else "plain", viewers, viewers)
    try:
        await bench.measure(row, publisher, 0.0, [], lambda count: [], 0)
    finally:
        stopped = await recording_action(stack, "stop") if recording else None
    return Round(
        viewers,
        pair,
        recording,
        row.cpu_us,
        row.server_cores,
        row.delivered,
        row.total_viewers,
        row.pub_pps,
        os.getloadavg()[0],
        span_mbit_s(stopped) if stopped else float("nan"),
    )


def print_round(r: Round) -> None:
    kind = "with recording" if r.recording else "no recording  "
    file = f", file {r.file_mbit_s:.2f} Mbit/s" if r.recording else ""
    print(
        f"N={r.viewers} pair {r.pair + 1} {kind}: {r.cpu_us:.2f} µs/pkt, worker "
        f"{r.cores * 100:.1f} % of a core, {r.fed} fed, {r.delivered * 100:.2f} % delivered, "
        f"{r.pub_pps:.0f} pkt/s published, load {r.load:.2f}{file}",
        flush=True,
    )


async def fanout_rounds(args: argparse.Namespace, rounds: list[Round]) -> None:
    """Every round at every N, on one stack (viewers added between the Ns), into `rounds`."""
    use_host_addresses(["127.0.0.1"])
    packets = fanout.encode_loop()
    clients = fanout.start_clients(args.clients)
    data_dir = Path(tempfile.mkdtemp(prefix="recording-fanout-"))
    stack: fanout.Stack | None = None
    publisher: fanout.Publisher | None = None
    try:
        stack = await asyncio.to_thread(fanout.start_stack, data_dir, 1, args.udp_mode)
        chair, ward = stack.join("hq"), stack.join("p1")
        publisher = fanout.Publisher(chair["whip_url"], chair["token"], packets)
        grants = functools.partial(stack.viewer_grants, ward)
        bench = fanout.Bench(clients, stack.worker_pids, args.round_seconds, lean=args.lean_viewers)
        await publisher.start()
        await asyncio.sleep(2)
        for n in args.viewers:
            keyframes, failures = await bench.add_cheap([ward["whep_url"]], grants, n)
            if failures or None in keyframes:
                raise RuntimeError(f"N={n}: viewers did not all join: {failures[:3]}")
            for pair in range(args.rounds):
                order = (False, True) if pair % 2 == 0 else (True, False)
                for recording in order:
                    done = await one_round(args, stack, bench, publisher, n, pair, recording)
                    rounds.append(done)
                    print_round(done)
    finally:
        if clients:
            with contextlib.suppress(Exception):
                await fanout.ask_all(clients, [("stop",)] * len(clients), 60)
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.stop()
        if stack is not None:
            stack.close()
        for client in clients:
            client.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def spread(values: list[float]) -> float:
    return max(values) - min(values) if values else float("nan")


def summarize(rounds: list[Round]) -> None:
    """Per N: medians without and with, their difference, each pair's, and the noise."""
    print()
    for n in sorted({r.viewers for r in rounds}):
        plain = [r for r in rounds if r.viewers == n and not r.recording]
        recorded = [r for r in rounds if r.viewers == n and r.recording]
        if not plain or not recorded:
            continue
        us0, us1 = [r.cpu_us for r in plain], [r.cpu_us for r in recorded]
        c0, c1 = [r.cores * 100 for r in plain], [r.cores * 100 for r in recorded]
        diff = statistics.median(us1) - statistics.median(us0)
        noise = max(spread(us0), spread(us1))
        pairs = [w.cpu_us - p.cpu_us for p in plain for w in recorded if w.pair == p.pair]
        loads = [r.load for r in plain + recorded]
        print(
            f"N={n}: µs per forwarded packet, no recording {min(us0):.2f}–{max(us0):.2f} "
            f"(median {statistics.median(us0):.2f}, spread {spread(us0):.2f}); with "
            f"{min(us1):.2f}–{max(us1):.2f} (median {statistics.median(us1):.2f}, spread "
            f"{spread(us1):.2f}); difference of the medians {diff:+.2f} µs "
            f"({statistics.median(us1) / statistics.median(us0):.3f}×); each pair's "
            + ", ".join(f"{d:+.2f}" for d in pairs)
            + f"; load average {min(loads):.1f}–{max(loads):.1f}"
        )
        cdiff = statistics.median(c1) - statistics.median(c0)
        print(
            f"N={n}: worker, % of a core: no recording median {statistics.median(c0):.1f} "
            f"(spread {spread(c0):.1f}), with {statistics.median(c1):.1f} (spread "
            f"{spread(c1):.1f}): the recorder's cost {cdiff:+.2f} % of a core (goal ≤ 1 %)"
        )
        # compared as printed (to 0.01 µs): a difference equal to the spread is within it
        verdict = "within noise" if round(abs(diff), 2) <= round(noise, 2) else "NOT within noise"
        paired = (
            f"pairs' differences {statistics.mean(pairs):+.2f} ± {statistics.stdev(pairs):.2f} µs"
            " (mean ± standard deviation), "
            if len(pairs) > 1
            else ""
        )
        print(
            f'N={n}: goal "within noise": {verdict} (|difference| {abs(diff):.2f} µs against '
            f"the larger spread of same-kind rounds, {noise:.2f} µs; {paired}"
            f"{sum(d > 0 for d in pairs)} of {len(pairs)} pairs higher with recording)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ints = lambda s: [int(x) for x in s.split(",") if x.strip()]  # noqa: E731
    parser.add_argument("--seconds", type=float, default=10.0, help="replay: media length")
    parser.add_argument("--skip-replay", action="store_true", help="fan-out rounds only")
    parser.add_argument("--viewers", type=ints, default=[], help="fan-out: N, e.g. 50,80")
    parser.add_argument("--rounds", type=int, default=3, help="fan-out: pairs per N")
    parser.add_argument("--round-seconds", type=float, default=20.0, help="fan-out: window")
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="fan-out: seconds after starting (or not) the recording before the window's own "
        "settling time",
    )
    parser.add_argument("--clients", type=int, default=2, help="fan-out: client processes")
    parser.add_argument("--lean-viewers", action="store_true", help="fan-out: fanout.LeanViewer")
    parser.add_argument(
        "--udp-mode", default="single", choices=sorted(fanout.UDP_MODES), help="fan-out"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="fan-out: bound on it")
    args = parser.parse_args()
    if args.rounds < 1 or args.round_seconds <= 0 or any(n < 1 for n in args.viewers):
        parser.error("--rounds and --viewers must be ≥ 1, --round-seconds positive")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    if not args.skip_replay:
        run_replay(args.seconds)
    if not args.viewers:
        return
    rounds: list[Round] = []
    try:
        asyncio.run(asyncio.wait_for(fanout_rounds(args, rounds), args.timeout))
    finally:
        summarize(rounds)


if __name__ == "__main__":
    main()
