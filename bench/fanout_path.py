"""CPU of the worker's per-packet fan-out path: single-port against port-range mode.

In one process over 127.0.0.1: N aiortc viewers (a recvonly video transceiver each, counting
packets through `RtpIngest`) connect to N SFU-side peers whose video `Slot`s are fed by one
`Source`; in `single` mode the SFU-side peers are on one shared UDP socket
(`sfu.rtc.udpmux`, sends batched with sendmmsg, ICE-lite, as the worker's default), in
`single-sendto` the same socket with a `sendto` per packet, in `range` each has its own socket.

No publisher or encoder: the source is fed synthetic VP8 packets (`--size` bytes of payload,
a keyframe first) numbered on, so only the forwarding path runs. After warm-up, packets are
pushed in bursts of `--burst` (the viewers read their sockets between bursts, outside the
measure) and, per packet, the thread CPU time (`time.thread_time_ns()`, user + system, which
includes the kernel's loopback delivery inside the send calls) of `Source.push` plus the
batch's sendmmsg (flushed right after the push, as the event loop's next turn would do) is
added up; the figure is that sum / (packets × N): µs per forwarded packet.

`--rounds` alternate the modes (each round sets up fresh peers per mode), and the median per
mode is printed with the ratio to `range`. With `--profile FILE` the last `single` round is run
under cProfile instead and its statistics written to FILE (the figures of that round are then
not comparable).

    .venv/bin/python bench/fanout_path.py [--viewers 50] [--packets 2000] [--rounds 3]
                                          [--modes range,single] [--size 1100]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.rtp import RtpPacket

from sfu.forwarding import Slot, Source
from sfu.rtc.ice import close_shared_port, open_shared_port, share_port, shared_port
from sfu.rtc.ingest import RtpIngest
from sfu.rtc.sdp import negotiated_rtp
from tests.support.peers import LOOPBACK_ONLY

MODES = ("range", "single", "single-sendto")
START_TIMEOUT_S = 60.0
DRAIN_S = 0.02  # between bursts: the viewers read what arrived


class Rig:
    """One mode's peers: N viewers, N SFU-side peers, one source feeding their slots."""

    def __init__(self) -> None:
        self.pcs: list[RTCPeerConnection] = []
        self.slots: list[Slot] = []
        self.closers: list = []
        self.received = [0]
        self.source: Source | None = None

    async def add_viewer(self, single: bool) -> None:
        viewer = RTCPeerConnection(LOOPBACK_ONLY)
        server = RTCPeerConnection(LOOPBACK_ONLY)
        self.pcs += [viewer, server]
        transceiver = viewer.addTransceiver("video", direction="recvonly")
        received = self.received

        def count(packet: RtpPacket) -> None:
            received[0] += 1

        self.closers.append(RtpIngest(transceiver, count).close)
        await viewer.setLocalDescription(await viewer.createOffer())
        await server.setRemoteDescription(viewer.localDescription)
        if single:
            share_port(server)
        server_transceiver: RTCRtpTransceiver = server.getTransceivers()[0]
        if self.source is None:
            params = negotiated_rtp(server_transceiver)
            self.source = Source("video", params.codecs)
        slot = Slot.attach(server_transceiver)
        slot.switch_to(self.source)
        self.slots.append(slot)
        await server.setLocalDescription(await server.createAnswer())
        await viewer.setRemoteDescription(server.localDescription)

    async def close(self) -> None:
        for slot in self.slots:
            slot.close()
        if self.source is not None:
            self.source.close()
        for close in self.closers:
            close()
        for pc in self.pcs:
            await pc.close()


def packets(pt: int, size: int):
    """Synthetic VP8 packets: the first a keyframe start, the others inter-frame ones."""
    seq, ts = 1000, 90000
    key = bytes((0x10, 0x00, 0x9D, 0x01, 0x2A)) + bytes(size - 5)
    inter = bytes((0x10, 0x01)) + bytes(size - 2)
    first = True
    while True:
        packet = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=0x1234)
        packet.payload = key if first else inter
        packet.marker = 1 if seq % 4 == 0 else 0
        first = False
        yield packet
        seq = (seq + 1) & 0xFFFF
        if packet.marker:
            ts = (ts + 3000) & 0xFFFFFFFF


async def run(mode: str, viewers: int, count: int, burst: int, size: int, profile: str | None):
    single = mode != "range"
    if single:
        await open_shared_port("127.0.0.1", 0, batch=mode == "single")
    rig = Rig()
    try:
        for _ in range(viewers):
            await rig.add_viewer(single)
        assert rig.source is not None
        source = rig.source
        feed = packets(source.codec.payload_type, size)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(slot._egress.ready for slot in rig.slots):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mode}: the viewers did not connect")
            await asyncio.sleep(0.05)
        port = shared_port()
        batch = port.batch if port is not None else None
        flush = batch.flush if batch is not None else (lambda: None)
        # warm-up: the keyframe activates every slot, then a few bursts
        for _ in range(5):
            for _ in range(burst):
                source.push(next(feed))
                flush()
            await asyncio.sleep(DRAIN_S)
        if rig.received[0] < viewers:
            raise RuntimeError(f"{mode}: the viewers received {rig.received[0]} packets")
        sent0 = sum(slot.stats().packets_sent for slot in rig.slots)
        push, clock = source.push, time.thread_time_ns

        def step(packet: RtpPacket) -> None:
            push(packet)
            flush()

        profiler = cProfile.Profile() if profile else None
        ns = done = 0
        while done < count:
            packets_now = [(next(feed),) for _ in range(min(burst, count - done))]
            if profiler is not None:
                profiler.enable()
            start = clock()
            # the only starmap of the process: `valgrind --tool=callgrind
            # --toggle-collect=starmap_next` counts the instructions of these steps alone
            collections.deque(itertools.starmap(step, packets_now), maxlen=0)
            ns += clock() - start
            if profiler is not None:
                profiler.disable()
            done += len(packets_now)
            await asyncio.sleep(DRAIN_S)
        if profiler is not None:
            profiler.dump_stats(profile)
        sent = sum(slot.stats().packets_sent for slot in rig.slots) - sent0
        if sent != count * viewers:
            raise RuntimeError(f"{mode}: {sent} packets sent of {count * viewers}")
        return ns / 1000 / (count * viewers)
    finally:
        await rig.close()
        if single:
            close_shared_port()


async def main(args: argparse.Namespace) -> None:
    figures: dict[str, list[float]] = {mode: [] for mode in args.modes}
    print(
        f"# {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())};"
        f" {args.viewers} viewers, {args.packets} packets of {args.size} B per round",
        flush=True,
    )
    for index in range(args.rounds):
        order = args.modes if index % 2 == 0 else list(reversed(args.modes))
        for mode in order:
            profile = (
                args.profile
                if args.profile and mode == "single" and index == args.rounds - 1
                else None
            )
            us = await run(mode, args.viewers, args.packets, args.burst, args.size, profile)
            figures[mode].append(us)
            print(
                f"round {index + 1} {mode:13} {us:6.2f} µs per forwarded packet "
                f"(load {os.getloadavg()[0]:.2f})" + (" [profiled]" if profile else ""),
                flush=True,
            )
    print()
    reference = statistics.median(figures["range"]) if figures.get("range") else None
    for mode, values in figures.items():
        median = statistics.median(values)
        ratio = f", {median / reference:.2f}× range" if reference else ""
        print(
            f"{mode:13} median {median:6.2f} µs per forwarded packet "
            f"({', '.join(f'{v:.2f}' for v in values)}){ratio}"
        )
    print(f"# load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1100)
    parser.add_argument(
        "--modes",
        type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
        default=["range", "single"],
    )
    parser.add_argument("--profile", default=None, help="cProfile the last single-mode round")
    cli = parser.parse_args()
    if any(m not in MODES for m in cli.modes):
        parser.error(f"--modes: choose among {', '.join(MODES)}")
    asyncio.run(main(cli))
