"""What one cascade hop adds: latency and worker CPU, with the origin measured in the same run.

Setup (`bench/fanout.py`'s `start_stack`): a temporary SQLite database, the control plane on
uvicorn in a thread, `--hops` + 1 local SFU worker processes, an occurrence that is on now, and
join grants for the chair site (the publisher) and one ward site (every viewer, extra viewers
with copies of its grant under ids of their own: a grant holds one session). The worker the
chair's WHIP grant points at is the origin; edge 1 relays the room from the origin and edge 2
(with `--hops 2`) from edge 1, each through `POST /rooms/{room}/cascade` (`CascadeRequest` with
a relay grant from `confbridge.bridge.service.relay_grant`, signed with the control plane's
grant key): one WHEP session upstream carrying the programme tracks and the floor
(`sfu/cascade.py`). The run stops with an error, and no figures, if a cascade request is
refused, a relay session does not connect or a viewer gets no video.

- Publisher (this process): `fanout.Publisher`, pre-encoded 640×360 VP8 at 30 fps plus aiortc's
  Opus silence (~167 packets/s), WHIP to the origin.
- Timing viewers (one client process, one viewer per worker): WHEP peers whose receivers are
  replaced by `RtpIngest` (nothing is depayloaded or decoded; NACKs are still sent). Worker k's
  viewer joins before worker k + 1 relays from it, so worker k sends each packet to its viewer
  first and to the relay below afterwards: the figure of the hop below includes that send.
- `--viewers N` (default 0): N more cheap viewers (`fanout.CheapViewer`, in a second client
  process) on each edge, after the timing viewers, to see the hops under load.

Each video packet gets two arrival times at each timing viewer: the kernel's receive time of
its datagram (`SIOCGSTAMPNS` on the viewer's socket, read in a receive filter right after the
datagram's `recvfrom`; on loopback the kernel stamps it within the sender's `sendto`, so it
does not depend on when the viewers' process runs), and `time.monotonic_ns()` in the
`RtpIngest` callback (after aiortc's queue and SRTP, so it includes the viewers' own
scheduling delay). The packet is recognised at every viewer by a hash of its payload: the SFU
rewrites SSRC, sequence number and timestamp but never the payload, and the VP8 payload
descriptor carries the picture id, so a payload does not repeat for ~18 minutes. Audio
(identical silence packets) is counted, not matched.

Over a window of `--seconds` (after every viewer has its first video packet, and 2 s more):
- added latency of hop k = arrival at the viewer of worker k − arrival at the viewer of worker
  k − 1, for the video packets that reached the origin's viewer in the window: p50/p95/p99/max
  on each clock ("missing": packets viewer k − 1 got that viewer k did not, 1 s allowed). The
  goal (≤ 50 ms per hop) is judged on the kernel times at p95;
- CPU of each worker = Δ(utime + stime of its pid, /proc/<pid>/stat, all threads, 10 ms ticks):
  µs per packet out = CPU / Δ RTP packets it sent to its viewers and relays
  (`confbridge_sfu_packets_forwarded` on its /metrics); µs per packet in = CPU / Δ packets the
  publisher sent (every worker takes each programme packet in once, from the publisher or from
  the relay). The origin and edge 1 each feed one viewer and one relay with `--hops 2` and
  no `--viewers`: their figures are then like for like. Also each worker's cores;
- delivered = Δ packets (video + audio) at each timing viewer / Δ packets the publisher sent
  (`getStats().packetsSent`); packets in flight at the window's edges can move it a little
  around 100 %.

Everything runs on one shared 2-core machine over loopback: there is no network delay, so a
hop's latency is the edge's processing plus scheduling delay (workers, viewers, publisher and
control plane compete for the two cores, with whatever else runs on the machine). The CPU of
the client processes and of this process over the window is printed too.

    .venv/bin/python bench/cascade.py [--seconds 10] [--hops 1|2] [--viewers 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import itertools
import multiprocessing as mp
import os
import re
import shutil
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from aiortc import RTCDtlsTransport, RTCPeerConnection
from aiortc.rtp import RtpPacket
from fanout import (
    CLK_TCK,
    NODE_SECRET,
    Client,
    Publisher,
    Stack,
    delete,
    encode_loop,
    offer,
    pct,
    proc_cpu_s,
    start_clients,
    start_stack,
    wait_connected,
)

from sfu.rtc.ice import use_host_addresses
from sfu.rtc.ingest import RtpIngest
from sfu.rtc.observe import set_receive_filter
from tests.support.peers import loopback_peer

GOAL_MS = 50.0  # per hop, at p95
CONNECT_TIMEOUT_S = 20.0
FIRST_PACKET_TIMEOUT_S = 15.0
SETTLE_S = 2.0
GRACE_S = 1.0  # a packet seen at the origin's viewer at the window's end may still be on its way
STAMP_LIMIT = 4096  # unclaimed datagram stamps (RTX, never matched) are dropped past this
READER = {"Authorization": f"Bearer {NODE_SECRET}"}  # /rooms and /metrics
SIOCGSTAMPNS = 0x8907  # <linux/sockios.h>


class BenchError(RuntimeError):
    """A step failed: the run stops without figures."""


# ---------------------------------------------------------------------------------------------
# timing viewers (client process)


def is_rtp(data: bytes) -> bool:
    """RTP rather than RTCP (RFC 5761 demultiplexing): version 2, payload type not 64..95."""
    return len(data) > 12 and 128 <= data[0] < 192 and not 64 <= (data[1] & 0x7F) < 96


class KernelClock:
    """When the kernel queued the datagram last read from one peer's socket (SIOCGSTAMPNS).

    On loopback that is within the sender's `sendto`, so it does not depend on when the
    viewers' process gets to read. Nanoseconds of CLOCK_REALTIME, the same clock for all.
    """

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        # touches aioice's Connection._protocols: one StunProtocol (socket) per local candidate
        protocols = dtls.transport._connection._protocols
        if len(protocols) != 1:
            raise RuntimeError(f"expected one local candidate (127.0.0.1), got {len(protocols)}")
        self._fd = protocols[0].transport.get_extra_info("socket").fileno()
        with contextlib.suppress(FileNotFoundError):
            # the first call turns stamping on for this socket (nothing read yet: ENOENT)
            fcntl.ioctl(self._fd, SIOCGSTAMPNS, bytes(16))

    def last_read(self) -> int | None:
        try:
            sec, nsec = struct.unpack("qq", fcntl.ioctl(self._fd, SIOCGSTAMPNS, bytes(16)))
        except OSError:
            return None
        return sec * 1_000_000_000 + nsec


Arrival = tuple[int | None, int]
"""(kernel receive time, or None if it has none; time.monotonic_ns() in the RTP callback)."""
KERNEL, CLIENT = 0, 1


class TimingViewer:
    """WHEP peer that notes when each video packet arrived, keyed by its payload."""

    def __init__(self) -> None:
        self.pc: RTCPeerConnection = loopback_peer()
        self.location: str | None = None
        self.packets = 0
        self.first_video_at: float | None = None
        # payload hash → arrival, while a window is recorded
        self.arrivals: dict[int, Arrival] | None = None
        # (SSRC, sequence number) → kernel receive time, until SRTP is undone
        self._stamps: dict[tuple[int, int], int | None] = {}
        self._clock: KernelClock | None = None
        self._closers: list[Callable[[], None]] = []
        video = self.pc.addTransceiver("video", direction="recvonly")
        audio = self.pc.addTransceiver("audio", direction="recvonly")
        self._closers.append(RtpIngest(video, self._on_video).close)
        self._closers.append(RtpIngest(audio, self._on_audio).close)

    def _stamp(self, data: bytes) -> bool:
        # called right after the datagram's recvfrom, so the socket's stamp is this datagram's
        if is_rtp(data) and self._clock is not None:
            if len(self._stamps) > STAMP_LIMIT:
                self._stamps.clear()
            key = (int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big"))
            self._stamps[key] = self._clock.last_read()
        return False  # observe only: every datagram goes on to aiortc

    def _on_video(self, packet: RtpPacket) -> None:
        at = time.monotonic_ns()
        # an unwrapped RTX repair is stamped under the RTX numbers: no kernel time for it
        kernel = self._stamps.pop((packet.ssrc, packet.sequence_number), None)
        self.packets += 1
        if self.first_video_at is None:
            self.first_video_at = time.monotonic()
        if self.arrivals is not None and packet.payload:
            # the first copy counts; a duplicate or late repair keeps it
            self.arrivals.setdefault(hash(packet.payload), (kernel, at))

    def _on_audio(self, packet: RtpPacket) -> None:
        self._stamps.pop((packet.ssrc, packet.sequence_number), None)
        self.packets += 1

    async def start(self, url: str, token: str) -> None:
        self.location = await offer(self.pc, url, token)
        # after the answer: the transports are bundled onto the first transceiver's by now
        dtls = self.pc.getTransceivers()[0].receiver.transport
        self._clock = KernelClock(dtls)
        set_receive_filter(dtls, self._stamp)
        self._closers.append(lambda: set_receive_filter(dtls, None))

    async def stop(self, token: str) -> None:
        await delete(self.location, token)
        for close in self._closers:
            with contextlib.suppress(Exception):
                close()
        with contextlib.suppress(Exception):
            await self.pc.close()


def timing_main(conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent shuts us down
    use_host_addresses(["127.0.0.1"])
    asyncio.run(_timing_loop(conn))


async def _join_all(viewers: list[TimingViewer], urls: list[str], token: str) -> dict[str, Any]:
    """Join each viewer in turn; stop at the first that does not connect or get video."""
    firsts: list[float] = []
    for url in urls:
        viewer = TimingViewer()
        viewers.append(viewer)
        posted = time.monotonic()
        try:
            await viewer.start(url, token)
            await wait_connected(viewer.pc, CONNECT_TIMEOUT_S)
        except Exception as exc:
            return {"error": f"{url}: {type(exc).__name__}: {exc}"}
        deadline = time.monotonic() + FIRST_PACKET_TIMEOUT_S
        while viewer.first_video_at is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if viewer.first_video_at is None:
            return {
                "error": f"{url}: connected, but no video packet within "
                f"{FIRST_PACKET_TIMEOUT_S:.0f} s ({viewer.packets} audio packets)"
            }
        firsts.append(viewer.first_video_at - posted)
    return {"first_video_s": firsts}


def _latencies(
    upper: TimingViewer, lower: TimingViewer, window: list[int]
) -> dict[str, list[float] | int]:
    """arrival at `lower` − arrival at `upper` in ms, on each clock, of the `window` packets
    `upper` got; "missing": those `upper` got and `lower` never did."""
    above, below = upper.arrivals or {}, lower.arrivals or {}
    seen = [key for key in window if key in above]
    both = [(above[key], below[key]) for key in seen if key in below]
    return {
        "kernel": [
            (b[KERNEL] - a[KERNEL]) / 1e6
            for a, b in both
            if a[KERNEL] is not None and b[KERNEL] is not None
        ],
        "client": [(b[CLIENT] - a[CLIENT]) / 1e6 for a, b in both],
        "missing": len(seen) - len(both),
    }


def _window_latencies(
    viewers: list[TimingViewer], begin_ns: int, end_ns: int
) -> list[dict[str, list[float] | int]]:
    """Each hop's latencies, then (with two hops or more) origin → last edge, of the video
    packets that reached the origin's viewer in [begin_ns, end_ns] (monotonic)."""
    origin = viewers[0].arrivals or {}
    window = [key for key, at in origin.items() if begin_ns <= at[CLIENT] <= end_ns]
    hops = [_latencies(upper, lower, window) for upper, lower in itertools.pairwise(viewers)]
    if len(viewers) > 2:
        hops.append(_latencies(viewers[0], viewers[-1], window))
    return hops


async def _timing_loop(conn: Any) -> None:
    loop = asyncio.get_running_loop()
    viewers: list[TimingViewer] = []
    token = ""
    begin_ns = 0
    try:
        while True:
            if not await loop.run_in_executor(None, conn.poll, 1.0):
                continue
            command, *args = conn.recv()
            if command == "join":
                urls, token = args
                conn.send(await _join_all(viewers, urls, token))
            elif command == "begin":
                begin_ns = time.monotonic_ns()
                for viewer in viewers:
                    viewer.arrivals = {}
                conn.send({"packets": [v.packets for v in viewers]})
            elif command == "end":
                end_ns = time.monotonic_ns()
                packets = [v.packets for v in viewers]
                await asyncio.sleep(GRACE_S)
                latencies = _window_latencies(viewers, begin_ns, end_ns)
                for viewer in viewers:
                    viewer.arrivals = None
                conn.send(
                    {
                        "packets": packets,
                        "connected": [v.pc.connectionState == "connected" for v in viewers],
                        "latencies": latencies,
                    }
                )
            elif command == "stop":
                break
    finally:
        await asyncio.gather(
            *(asyncio.wait_for(v.stop(token), 10) for v in viewers), return_exceptions=True
        )
        with contextlib.suppress(Exception):
            conn.send("stopped")


def start_timing_client() -> Client:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=timing_main, args=(child,), daemon=True)
    process.start()
    return Client(process, parent)


async def ask(client: Client, message: tuple[Any, ...], timeout_s: float) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, client.ask, message, timeout_s)


# ---------------------------------------------------------------------------------------------
# the cascade


@dataclass
class Node:
    role: str  # "origin", "edge 1", "edge 2"
    url: str
    pid: int
    node_id: str
    egress: int = 0  # viewers and relays it feeds


def relay_token(data_dir: Path, occurrence_id: int, node_id: str, chair_site_id: int) -> str:
    """A relay grant for `node_id`, minted and signed as the control plane does."""
    from confbridge.bridge.service import relay_grant
    from confbridge.db import Database
    from confbridge.meetings.models import Occurrence
    from confbridge.settings import Settings
    from confbridge.signing import signer_for
    from confbridge.timeutil import utcnow

    # the database and grant key `start_stack` made in data_dir
    settings = Settings(
        env="test", database_url=f"sqlite:///{data_dir / 'bench.sqlite3'}", data_dir=data_dir
    )
    database = Database(settings)
    try:
        with database.session() as session:
            occurrence = session.get(Occurrence, occurrence_id)
            if occurrence is None:
                raise BenchError(f"occurrence {occurrence_id} is not in the bench database")
            claims = relay_grant(
                occurrence=occurrence, node_id=node_id, chair_site=chair_site_id, now=utcnow()
            )
    finally:
        database.dispose()
    return signer_for(settings.grant_key_path).sign(claims)


def cascade(stack: Stack, room: str, upstream: Node, edge: Node, token: str) -> None:
    """Have `edge` relay the room from `upstream` (the control plane's cascade request)."""
    body = {
        "upstream_whep_url": f"{upstream.url}/whep/{room}",
        "token": token,
        "occurrence_id": stack.occurrence_id,
        "chair_site_id": stack.chair_site_id,
        "ends_at": stack.ends_at.isoformat(),
    }
    response = httpx.post(
        f"{edge.url}/rooms/{room}/cascade", json=body, headers=stack.admin(edge.url), timeout=20
    )
    if response.status_code != 200:
        raise BenchError(
            f"{edge.role} ({edge.url}) refused to relay from {upstream.role}: "
            f"{response.status_code} {response.text.strip()[:300]}"
        )


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def admin_get(node: Node, path: str) -> httpx.Response:
    """GET on the worker's admin API; a worker that is gone or fails stops the run."""
    try:
        response = httpx.get(f"{node.url}{path}", headers=READER, timeout=5)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise BenchError(
            f"{node.role} ({node.url}, pid {node.pid}{'' if running(node.pid) else ', exited'}): "
            f"GET {path}: {type(exc).__name__}: {exc}"
        ) from None
    return response


def describe(node: Node) -> dict[str, Any]:
    rooms: list[dict[str, Any]] = admin_get(node, "/rooms").json()["rooms"]
    return rooms[0] if rooms else {}


def wait_relay_connected(upstream: Node, edge: Node, timeout_s: float) -> None:
    """Until the upstream's room has a connected relay session (the edge's WHEP session)."""
    from confbridge_kernel.contracts import RELAY_SITE_ID

    deadline = time.monotonic() + timeout_s
    room: dict[str, Any] = {}
    while time.monotonic() < deadline:
        room = describe(upstream)
        if any(p["site_id"] == RELAY_SITE_ID and p["connected"] for p in room.get("peers", [])):
            return
        time.sleep(0.2)
    raise BenchError(
        f"the relay session of {edge.role} to {upstream.role} did not connect within "
        f"{timeout_s:.0f} s; {upstream.role} /rooms: {room}; {edge.role} /rooms: {describe(edge)}"
    )


def forwarded(node: Node) -> int:
    """`confbridge_sfu_packets_forwarded` of the worker: RTP packets sent to viewers and relays."""
    text = admin_get(node, "/metrics").text
    match = re.search(r"^confbridge_sfu_packets_forwarded_total (\S+)$", text, re.M)
    if match is None:
        raise BenchError(f"{node.role}: no confbridge_sfu_packets_forwarded in /metrics")
    return int(float(match.group(1)))


# ---------------------------------------------------------------------------------------------
# measuring and printing


@dataclass
class Figures:
    nodes: list[Node]
    seconds: float
    sent: int
    # per hop, then origin → last edge (two hops): {"kernel": ms, "client": ms, "missing": n}
    latencies: list[dict[str, Any]]
    viewer_packets: list[int]
    cpu_s: list[float]
    forwarded: list[int]
    client_cores: float
    main_cores: float
    load_delivered: list[float] = field(default_factory=list)
    load_connected: int = 0
    load_viewers: int = 0


nan = float("nan")


def fmt(value: float, spec: str = ".1f") -> str:
    return "—" if value != value else format(value, spec)


def per_packet_out(f: Figures) -> list[float]:
    """Each worker's CPU µs per RTP packet it sent."""
    return [
        cpu * 1e6 / sent if sent else float("nan")
        for cpu, sent in zip(f.cpu_s, f.forwarded, strict=True)
    ]


def print_figures(f: Figures) -> None:
    names = [n.role for n in f.nodes]
    labels = [f"{k + 1}: {names[k]} → {names[k + 1]}" for k in range(len(f.nodes) - 1)]
    if len(f.latencies) > len(labels):
        labels.append(f"all: {names[0]} → {names[-1]}")
    print()
    head = (
        f"{'hop':<24}{'timed by':<10}{'packets':>8}{'missing':>8}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'p99 ms':>8}{'max ms':>8}{'min ms':>8}"
    )
    print(head)
    print("-" * len(head))
    for label, hop in zip(labels, f.latencies, strict=True):
        for clock, name in (("kernel", "kernel"), ("client", "callback")):
            diffs: list[float] = hop[clock]
            print(
                f"{label if clock == 'kernel' else '':<24}{name:<10}{len(diffs):>8}"
                f"{hop['missing']:>8}{fmt(pct(diffs, 0.5), '.2f'):>8}"
                f"{fmt(pct(diffs, 0.95), '.2f'):>8}{fmt(pct(diffs, 0.99), '.2f'):>8}"
                f"{fmt(max(diffs, default=float('nan')), '.2f'):>8}"
                f"{fmt(min(diffs, default=float('nan')), '.2f'):>8}"
            )
    print()
    head = (
        f"{'worker':<9}{'node':<9}{'pid':>8}{'feeds':>6}{'cores':>7}{'µs/pkt in':>10}"
        f"{'pkts out':>10}{'µs/pkt out':>11}{'viewer pkts':>12}{'delivered':>10}"
    )
    print(head)
    print("-" * len(head))
    us_out = per_packet_out(f)
    for index, node in enumerate(f.nodes):
        us_in = f.cpu_s[index] * 1e6 / f.sent if f.sent else float("nan")
        delivered = f.viewer_packets[index] / f.sent if f.sent else float("nan")
        print(
            f"{node.role:<9}{node.node_id:<9}{node.pid:>8}{node.egress:>6}"
            f"{f.cpu_s[index] / f.seconds:>7.2f}{fmt(us_in):>10}{f.forwarded[index]:>10}"
            f"{fmt(us_out[index]):>11}{f.viewer_packets[index]:>12}"
            f"{fmt(delivered * 100, '.2f'):>9}%"
        )
    print(
        f"publisher: {f.sent} packets in {f.seconds:.1f} s ({f.sent / f.seconds:.0f}/s); "
        f"client processes {f.client_cores:.2f} cores, this process (publisher, control plane) "
        f"{f.main_cores:.2f} cores"
    )
    if f.load_viewers:
        print(
            f"extra viewers: {f.load_connected} of {f.load_viewers} connected, delivered "
            f"{fmt(pct(f.load_delivered, 0.5) * 100, '.2f')} % (median), "
            f"{fmt(min(f.load_delivered, default=float('nan')) * 100, '.2f')} % (worst)"
        )
    print()
    p95s = [pct(hop["kernel"], 0.95) for hop in f.latencies[: len(f.nodes) - 1]]
    met = all(p <= GOAL_MS for p in p95s)
    print(
        f"goal ≤ {GOAL_MS:.0f} ms added per hop (p95): {'met' if met else 'NOT met'} ("
        + ", ".join(f"hop {k + 1} p95 {p:.2f} ms" for k, p in enumerate(p95s))
        + ")"
    )
    print(
        "CPU per packet out: "
        + ", ".join(
            f"{n.role} {fmt(u)} µs (feeds {n.egress})" for n, u in zip(f.nodes, us_out, strict=True)
        )
        + (
            f"; edge 1 / origin = {fmt(us_out[1] / us_out[0] if us_out[0] else nan, '.2f')}×"
            if f.nodes[0].egress == f.nodes[1].egress
            else "; not like for like (the fan-outs differ): compare µs/pkt in"
        )
    )
    print(
        "\nhop: arrival at the viewer of the lower worker − at the viewer of the upper one, same "
        "video packet (payload), timed by the kernel as the datagram reached the viewer's socket "
        "(SIOCGSTAMPNS) or by the viewers' process in its RTP callback (after SRTP); packets: "
        "matched in the window; missing: seen above, never below; feeds: viewers and relay "
        "sessions the worker sends to; µs/pkt in: worker CPU (utime+stime) / programme packets "
        "(each worker takes each of the publisher's packets in once); µs/pkt out: worker CPU / "
        "RTP packets it sent (its /metrics); delivered: packets at the worker's timing viewer "
        "/ packets the publisher sent."
    )


async def run(args: argparse.Namespace, cleanup: list[Callable[[], None]]) -> Figures:
    use_host_addresses(["127.0.0.1"])
    t0 = time.process_time()
    packets = encode_loop()
    print(
        f"pre-encoded {len(packets)} VP8 frames in {time.process_time() - t0:.1f} s CPU",
        flush=True,
    )
    data_dir = Path(tempfile.mkdtemp(prefix="cascade-"))
    cleanup.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))

    def started() -> Stack:
        # registered from the thread itself: if the run is cancelled meanwhile (timeout,
        # Ctrl-C), asyncio.run still waits for this thread, and the cleanup then stops the stack
        stack = start_stack(data_dir, args.hops + 1)
        cleanup.append(stack.close)
        return stack

    stack = await asyncio.to_thread(started)
    chair = await asyncio.to_thread(stack.join, "hq")
    ward = await asyncio.to_thread(stack.join, "p1")
    room = f"occ-{stack.occurrence_id}"

    # the origin is the worker the control plane placed the room on; the others relay in turn
    origin_url = chair["whip_url"].split("/whip/", 1)[0]
    if origin_url not in stack.worker_urls:
        raise BenchError(f"the chair's WHIP URL {chair['whip_url']} is on no local worker")
    order = [origin_url] + [u for u in stack.worker_urls if u != origin_url]
    nodes = [
        Node(
            "origin" if k == 0 else f"edge {k}",
            url,
            stack.worker_pids[stack.worker_urls.index(url)],
            f"local-{stack.worker_urls.index(url)}",
        )
        for k, url in enumerate(order)
    ]

    publisher = Publisher(chair["whip_url"], chair["token"], packets)
    timing = start_timing_client()
    cleanup.append(timing.close)
    load: list[Client] = []
    try:
        await publisher.start()
        # each worker's timing viewer joins before the next worker relays from it, so that
        # worker sends each packet to its viewer first: a hop's figure includes that send
        firsts: list[float] = []
        for index, node in enumerate(nodes):
            if index > 0:
                upper = nodes[index - 1]
                token = await asyncio.to_thread(
                    relay_token, data_dir, stack.occurrence_id, node.node_id, stack.chair_site_id
                )
                await asyncio.to_thread(cascade, stack, room, upper, node, token)
                await asyncio.to_thread(wait_relay_connected, upper, node, CONNECT_TIMEOUT_S)
                print(f"{node.role} ({node.url}) relays the room from {upper.role}", flush=True)
            joined = await ask(timing, ("join", [f"{node.url}/whep/{room}"], ward["token"]), 60)
            if "error" in joined:
                raise BenchError(f"timing viewer on {node.role}: {joined['error']}")
            firsts += joined["first_video_s"]
        print(
            "first video packet after WHEP POST: "
            + ", ".join(f"{n.role} {s:.2f} s" for n, s in zip(nodes, firsts, strict=True)),
            flush=True,
        )
        if args.viewers:
            load[:] = start_clients(1)
            cleanup.append(lambda: [c.close() for c in load])
            for node in nodes[1:]:
                tokens = stack.viewer_grants(ward, args.viewers)  # a grant holds one session
                reply = await ask(load[0], ("add", f"{node.url}/whep/{room}", tokens), 180)
                if reply["failures"]:
                    raise BenchError(
                        f"{len(reply['failures'])} extra viewers on {node.role} failed to join, "
                        f"e.g. {reply['failures'][0]}"
                    )
        for index, node in enumerate(nodes):
            described = describe(node)
            peers = described.get("peers", [])
            node.egress = sum(p["direction"] == "egress" and p["connected"] for p in peers)
            if index > 0 and not described.get("upstream"):
                raise BenchError(f"{node.role} does not report an upstream: {described}")
        await asyncio.sleep(SETTLE_S)

        # the window; metrics are read outside the CPU readings (a scrape costs the worker CPU)
        fwd0 = [await asyncio.to_thread(forwarded, n) for n in nodes]
        cpu0 = [proc_cpu_s(n.pid) for n in nodes]
        cli0 = sum(proc_cpu_s(c.process.pid) for c in [timing, *load])
        main0 = sum(os.times()[:2])
        sent0 = await publisher.packets_sent()
        at0 = time.monotonic()
        # the viewers' counts right after the publisher's; "end" answers after GRACE_S
        begun = await ask(timing, ("begin",), 30)
        load0 = await ask(load[0], ("counts",), 30) if load else None
        await asyncio.sleep(args.seconds)
        cpu1 = [proc_cpu_s(n.pid) for n in nodes]
        cli1 = sum(proc_cpu_s(c.process.pid) for c in [timing, *load])
        main1 = sum(os.times()[:2])
        sent1 = await publisher.packets_sent()
        at1 = time.monotonic()
        load1 = await ask(load[0], ("counts",), 30) if load else None
        ended = await ask(timing, ("end",), 60)
        fwd1 = [await asyncio.to_thread(forwarded, n) for n in nodes]
    finally:
        with contextlib.suppress(Exception):
            await ask(timing, ("stop",), 30)
        for client in load:
            with contextlib.suppress(Exception):
                await ask(client, ("stop",), 60)
        with contextlib.suppress(Exception):
            await publisher.stop()

    viewer_packets = [b - a for a, b in zip(begun["packets"], ended["packets"], strict=True)]
    for node, count, connected in zip(nodes, viewer_packets, ended["connected"], strict=True):
        if not connected or count == 0:
            raise BenchError(
                f"the viewer on {node.role} got {count} packets in the window "
                f"(connection {'up' if connected else 'lost'})"
            )
    for k, hop in enumerate(ended["latencies"][: len(nodes) - 1]):
        if not hop["kernel"]:
            raise BenchError(
                f"hop {k + 1} ({nodes[k].role} → {nodes[k + 1].role}): no video packet of the "
                f"window matched at both viewers with kernel receive times ({len(hop['client'])} "
                f"matched, {hop['missing']} missing below)"
            )
    figures = Figures(
        nodes=nodes,
        seconds=at1 - at0,
        sent=sent1 - sent0,
        latencies=ended["latencies"],
        viewer_packets=viewer_packets,
        cpu_s=[b - a for a, b in zip(cpu0, cpu1, strict=True)],
        forwarded=[b - a for a, b in zip(fwd0, fwd1, strict=True)],
        client_cores=(cli1 - cli0) / (at1 - at0),
        main_cores=(main1 - main0) / (at1 - at0),
    )
    if load0 is not None and load1 is not None and figures.sent:
        per_viewer = zip(load1["per_viewer"], load0["per_viewer"], strict=True)
        figures.load_delivered = [(b - a) / figures.sent for b, a in per_viewer]
        figures.load_connected = load1["connected"]
        figures.load_viewers = args.viewers * (len(nodes) - 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window")
    parser.add_argument("--hops", type=int, default=2, choices=[1, 2], help="edges in a chain")
    parser.add_argument(
        "--viewers", type=int, default=0, help="extra cheap viewers on each edge (load)"
    )
    parser.add_argument("--timeout", type=float, default=240.0, help="bound on the whole run")
    args = parser.parse_args()
    if args.viewers < 0 or args.seconds <= 0:
        parser.error("--viewers must be ≥ 0 and --seconds > 0")

    def terminated(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)  # cleaned up as Ctrl-C is
    cleanup: list[Callable[[], None]] = []
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; CPU time from "
        f"/proc/<pid>/stat ({1000 // CLK_TCK} ms ticks)",
        flush=True,
    )
    figures: Figures | None = None
    status = 0
    try:
        figures = asyncio.run(asyncio.wait_for(run(args, cleanup), args.timeout))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    except BenchError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        status = 1
    except TimeoutError:
        print(f"failed: the run took longer than --timeout {args.timeout:.0f} s", file=sys.stderr)
        status = 1
    except Exception as exc:
        print(f"failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = 1
    finally:
        for step in reversed(cleanup):
            with contextlib.suppress(Exception):
                step()
    if figures is not None:
        print_figures(figures)
    sys.exit(status)


if __name__ == "__main__":
    main()
