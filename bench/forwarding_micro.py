"""CPU cost per forwarded RTP packet: the SFU's packet path against aiortc's `MediaRelay`.

Everything runs in this process over 127.0.0.1: one aiortc publisher sends VP8 (a synthetic
640×360 camera at 30 fps, encoded by aiortc), an SFU-side peer ingests it, and N aiortc viewers
receive it through one SFU-side peer each. Viewers count packets and decode nothing (their
receivers are hooked by `RtpIngest`), so every mode carries the same viewer-side cost.

Modes:
- `baseline`: publisher + SFU ingest, no viewer;
- `sfu`: `Source` → N `Slot`s (header rewrite, SRTP and `sendto` per viewer);
- `sfu-nosend`: the same, with each viewer socket's `sendto` replaced by a no-op after warm-up,
  leaving the SFU's user-space work (rewrite, bookkeeping, SRTP); after its window the last
  packet is also pushed 2,000 times in a row, which gives that work with warm caches (in the
  event loop, the viewers' receive path runs between two packets and evicts them);
- `relay`: aiortc's `MediaRelay` (the SFU's receiver decodes once, each viewer's sender encodes).

Measured over a window after warm-up:
- "in-path µs": thread CPU time (`time.thread_time_ns()`, user + system) spent inside
  `Source.push`, i.e. forwarding one incoming packet to all N slots, minus the same measured in
  the baseline (timer overhead, per-incoming-packet work), divided by N × packets pushed;
- "process CPU": process CPU time (`time.process_time()`: all threads, so encoders and decoders
  count) over the window, as a share of one core. It includes the publisher and the in-process
  viewers' receive path (ICE queue, DTLS loop, SRTP unprotect, parse), which are the same in
  `sfu` and `relay` at the same N; so MediaRelay's cost per forwarded packet is taken as
  (relay CPU − sfu CPU) / packets forwarded + the sfu in-path figure.

Over loopback the kernel delivers each datagram to the receiving socket inside `sendto`, so the
`sendto` share (sfu − sfu-nosend) is higher here than towards a remote viewer.

    .venv/bin/python bench/forwarding_micro.py [--sfu 1 3 10 50] [--nosend 10 50]
                                               [--relay 1 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpTransceiver,
    VideoStreamTrack,
)
from aiortc.contrib.media import MediaRelay
from aiortc.rtp import RtpPacket
from av import VideoFrame

from sfu.forwarding import Slot, Source
from sfu.rtc.ice import nominated_datagram_transport, use_host_addresses
from sfu.rtc.ingest import RtpIngest
from sfu.rtc.sdp import negotiated_rtp
from tests.support.peers import LOOPBACK_ONLY

WARMUP_S = 1.5
START_TIMEOUT_S = 30.0
WIDTH, HEIGHT = 640, 360


class MovingTestCard(VideoStreamTrack):
    """A synthetic 30 fps camera with some motion, so the encoder has work to do."""

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=WIDTH, height=HEIGHT)
        step = pts // 3000
        for index, plane in enumerate(frame.planes):
            row = bytes((x * 3 + step * (index + 1)) % 256 for x in range(plane.line_size))
            plane.update(row * (plane.buffer_size // plane.line_size))
        frame.pts = pts
        frame.time_base = time_base
        return frame


@dataclass
class Counter:
    """Packets and payload bytes seen by one viewer."""

    packets: int = 0
    payload_bytes: int = 0

    def __call__(self, packet: RtpPacket) -> None:
        self.packets += 1
        self.payload_bytes += len(packet.payload)


@dataclass
class PushTimer:
    """Feeds the source, adding up the thread CPU time spent inside `Source.push`."""

    source: Source | None = None
    ns: int = 0
    calls: int = 0
    payload_bytes: int = 0
    last: RtpPacket | None = None

    def __call__(self, packet: RtpPacket) -> None:
        assert self.source is not None
        start = time.thread_time_ns()
        self.source.push(packet)
        self.ns += time.thread_time_ns() - start
        self.calls += 1
        self.payload_bytes += len(packet.payload)
        self.last = packet

    def tight_loop_us(self, viewers: int, count: int = 2000) -> float:
        """Thread CPU µs per packet per viewer when pushing one packet `count` times in a row
        (caches warm, nothing else running in between)."""
        assert self.source is not None and self.last is not None
        push, packet = self.source.push, self.last
        start = time.thread_time_ns()
        for _ in range(count):
            push(packet)
        return (time.thread_time_ns() - start) / count / 1000 / viewers


@dataclass
class Rig:
    """Peer connections and hooks of one run, closed together."""

    pcs: list[RTCPeerConnection] = field(default_factory=list)
    egress_pcs: list[RTCPeerConnection] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    counters: list[Counter] = field(default_factory=list)

    async def answer(
        self,
        client: RTCPeerConnection,
        attach: Callable[[RTCPeerConnection, RTCRtpTransceiver], None],
    ) -> RTCPeerConnection:
        await client.setLocalDescription(await client.createOffer())
        server = RTCPeerConnection(LOOPBACK_ONLY)
        self.pcs.append(server)
        await server.setRemoteDescription(client.localDescription)
        for transceiver in server.getTransceivers():
            attach(server, transceiver)
        await server.setLocalDescription(await server.createAnswer())
        await client.setRemoteDescription(server.localDescription)
        return server

    def counting_viewer(self) -> RTCPeerConnection:
        viewer = RTCPeerConnection(LOOPBACK_ONLY)
        self.pcs.append(viewer)
        transceiver = viewer.addTransceiver("video", direction="recvonly")
        counter = Counter()
        self.counters.append(counter)
        self.closers.append(RtpIngest(transceiver, counter).close)
        return viewer

    def viewer_packets(self) -> int:
        return sum(counter.packets for counter in self.counters)

    def mute_sockets(self) -> None:
        """Make the SFU side's `sendto` towards every viewer a no-op (undone by close)."""
        for pc in self.egress_pcs:
            selected = nominated_datagram_transport(pc.getTransceivers()[0].sender.transport)
            assert selected is not None
            transport = selected[0]
            transport.sendto = _no_send  # type: ignore[method-assign]
            self.closers.append(lambda transport=transport: delattr(transport, "sendto"))

    async def close(self) -> None:
        for close in reversed(self.closers):
            close()
        for pc in self.pcs:
            await pc.close()


def _no_send(data: bytes, addr: tuple[str, int] | None = None) -> None:
    pass


@dataclass
class Result:
    mode: str
    viewers: int
    seconds: float
    cpu_s: float
    packets: int
    payload_bytes: int
    in_path_ns: int = 0
    pushes: int = 0
    tight_loop_us: float | None = None

    @property
    def cpu_share(self) -> float:
        """Process CPU over the window, in cores."""
        return self.cpu_s / self.seconds

    @property
    def packet_rate(self) -> float:
        """Packets forwarded per second (to all viewers together)."""
        return self.packets / self.seconds

    def in_path_us(self, empty_push_ns: float) -> float | None:
        """Thread CPU inside `Source.push` per packet per viewer."""
        if not self.pushes or not self.viewers:
            return None
        return (self.in_path_ns / self.pushes - empty_push_ns) / 1000 / self.viewers


async def run(mode: str, viewers: int, seconds: float) -> Result:
    rig = Rig()
    timer = PushTimer()
    publisher = RTCPeerConnection(LOOPBACK_ONLY)
    rig.pcs.append(publisher)
    publisher.addTrack(MovingTestCard())
    relay = MediaRelay()
    relayed: list[MediaStreamTrack] = []

    def attach_ingest(server: RTCPeerConnection, transceiver: RTCRtpTransceiver) -> None:
        if mode == "relay":
            relayed.append(transceiver.receiver.track)  # the stock receiver decodes
            return
        params = negotiated_rtp(transceiver)
        ingest = RtpIngest(transceiver, timer)
        timer.source = Source(params.kind, params.codecs, send_pli=ingest.send_pli)
        rig.closers += [ingest.close, timer.source.close]

    await rig.answer(publisher, attach_ingest)

    def attach_egress(server: RTCPeerConnection, transceiver: RTCRtpTransceiver) -> None:
        if mode == "relay":
            server.addTrack(relay.subscribe(relayed[0], buffered=False))
            return
        assert timer.source is not None
        slot = Slot.attach(transceiver)
        slot.switch_to(timer.source)
        rig.closers.append(slot.close)

    for _ in range(viewers):
        rig.egress_pcs.append(await rig.answer(rig.counting_viewer(), attach_egress))

    deadline = time.monotonic() + START_TIMEOUT_S
    while any(c.packets < 10 for c in rig.counters) or (mode != "relay" and timer.calls < 10):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{mode}×{viewers}: the viewers did not start receiving")
        await asyncio.sleep(0.05)
    await asyncio.sleep(WARMUP_S)
    if mode == "sfu-nosend":
        rig.mute_sockets()

    packets0, bytes0 = rig.viewer_packets(), sum(c.payload_bytes for c in rig.counters)
    ns0, pushes0, pushed_bytes0 = timer.ns, timer.calls, timer.payload_bytes
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, wall1 = time.process_time(), time.monotonic()
    tight_loop_us = timer.tight_loop_us(viewers) if mode == "sfu-nosend" else None
    pushes = timer.calls - pushes0
    if mode == "sfu-nosend":  # nothing reaches the viewers: count what was forwarded
        packets, payload = pushes * viewers, (timer.payload_bytes - pushed_bytes0) * viewers
    else:
        packets = rig.viewer_packets() - packets0
        payload = sum(c.payload_bytes for c in rig.counters) - bytes0
    result = Result(
        mode=mode,
        viewers=viewers,
        seconds=wall1 - wall0,
        cpu_s=cpu1 - cpu0,
        packets=packets,
        payload_bytes=payload,
        in_path_ns=timer.ns - ns0,
        pushes=pushes,
        tight_loop_us=tight_loop_us,
    )
    await rig.close()
    return result


def show(value: float | None, width: int) -> str:
    return f"{value:{width}.1f}" if value is not None else f"{'-':>{width}}"


async def main(args: argparse.Namespace) -> None:
    use_host_addresses(["127.0.0.1"])
    load = os.getloadavg()[0]
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{os.cpu_count()} CPUs (load average {load:.1f}); VP8 {WIDTH}x{HEIGHT} 30 fps; "
        f"{args.seconds:.0f} s windows"
    )
    baseline = await run("sfu", 0, args.seconds)
    empty_push_ns = baseline.in_path_ns / max(baseline.pushes, 1)
    print(
        f"# baseline (publisher + ingest, no viewer): {baseline.cpu_share * 100:.1f} % of a "
        f"core, {baseline.pushes / baseline.seconds:.0f} packets/s in, "
        f"{empty_push_ns / 1000:.2f} µs per push with no slot (subtracted from in-path)\n"
    )
    results: list[Result] = []
    for mode, counts in (("sfu", args.sfu), ("sfu-nosend", args.nosend), ("relay", args.relay)):
        for count in counts:
            results.append(await run(mode, count, args.seconds))

    header = (
        f"{'mode':11} {'viewers':>7} {'pkts/s fwd':>10} {'avg B':>6} "
        f"{'process CPU %':>13} {'in-path µs/pkt':>15}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.mode:11} {r.viewers:7d} {r.packet_rate:10.0f} "
            f"{(r.payload_bytes / r.packets if r.packets else 0):6.0f} "
            f"{r.cpu_share * 100:13.1f} {show(r.in_path_us(empty_push_ns), 15)}"
        )

    by_key = {(r.mode, r.viewers): r for r in results}
    print()
    for count in args.nosend:
        full, bare = by_key.get(("sfu", count)), by_key.get(("sfu-nosend", count))
        if full is None or bare is None:
            continue
        full_us, bare_us = full.in_path_us(empty_push_ns), bare.in_path_us(empty_push_ns)
        if full_us is not None and bare_us is not None:
            print(
                f"N={count}: in-path {full_us:.1f} µs = {bare_us:.1f} µs user-space "
                f"(rewrite, bookkeeping, SRTP) + {full_us - bare_us:.1f} µs loopback sendto; "
                f"user-space with warm caches (tight loop): {bare.tight_loop_us or 0:.1f} µs"
            )
    for count in args.relay:
        sfu, relayed = by_key.get(("sfu", count)), by_key.get(("relay", count))
        if sfu is None or relayed is None or not relayed.packets:
            continue
        in_path = sfu.in_path_us(empty_push_ns)
        if not in_path:
            continue
        extra_us = (relayed.cpu_share - sfu.cpu_share) * 1e6 / relayed.packet_rate
        relay_us = extra_us + in_path
        print(
            f"N={count}: MediaRelay {relay_us:.0f} µs vs SFU {in_path:.1f} µs of CPU per "
            f"forwarded packet: {relay_us / in_path:.0f}× (process CPU "
            f"{relayed.cpu_share * 100:.0f} % vs {sfu.cpu_share * 100:.0f} % of a core)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--sfu", type=int, nargs="*", default=[1, 3, 10, 50])
    parser.add_argument("--nosend", type=int, nargs="*", default=[10, 50])
    parser.add_argument("--relay", type=int, nargs="*", default=[1, 3])
    parser.add_argument("--seconds", type=float, default=5.0)
    asyncio.run(main(parser.parse_args()))
