"""A join storm: N halls join within W seconds while a publisher is live (prints figures).

The stack, publisher, viewers and CPU readings are bench/fanout.py's (imported, not copied):
the control plane and `--workers` local workers on a fresh SQLite database, the pre-encoded
640×360 VP8 publisher (the chair, over WHIP), and the room extended to every worker.

Before the storm, the existing viewers join and receive: 2 decoding viewers (stock aiortc,
this process) and 10 viewers that send RTCP like browsers (`CheapViewer`: RR and NACK, no
decoding), in a process of their own, as browsers in other halls watch from machines of their
own (`--existing with-halls` puts them in the halls' client processes instead, whose event
loops the halls' handshakes keep busy). Then N lean halls (`LeanViewer`, client processes)
each start at a random moment of the first W seconds and join through worker i mod
`--workers`; a 503 is waited out as its Retry-After says, plus up to 20 % and 0.2 s of jitter,
and the same grant is offered again (as the kiosk and the agent do).

Printed per run (admission control on, then off in the same run: `join_max_handshakes` 0):
- joined: halls connected at the end / N, and how many 503s they were given;
- first frame: from a hall's first POST to its first VP8 keyframe packet, p50/p95/max (halls
  that never got one count as missing);
- existing viewers: the largest gap between packets (RTCP viewers, at the socket) and between
  decoded frames (decoding viewers) from the storm's start to its end;
- publisher: still connected, and its largest gap between RTP packets sent;
- workers: CPU cores (utime + stime of both worker processes over the storm), and the CPU of
  every other process of the benchmark over the storm (control plane, publisher, clients, this
  process) with the load average.

Layout (`--layout`): `separate` (the default) runs the control plane (uvicorn, the local
workers' supervisor) in a process of its own, as `confbridge serve` does, and the publisher in
another, so that what is measured is the product and not the benchmark's own process: this
process keeps only the 2 decoding viewers. `in-process` keeps the control plane (a thread) and
the publisher in this process, as earlier versions of this benchmark did.

    .venv/bin/python bench/joinstorm.py [--halls 100] [--window 30] [--workers 2] [--clients 2]
        [--ice-lite on|off] [--layout separate|in-process] [--existing own-process|with-halls]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import multiprocessing as mp
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription

from bench import fanout
from bench.fanout import (
    CheapViewer,
    Client,
    DecodingViewer,
    LeanViewer,
    Publisher,
    encode_loop,
    pct,
    proc_cpu_s,
    start_stack,
)
from bench.storm_procs import PublisherProcess, StackProcess
from sfu.rtc.ice import use_host_addresses
from sfu.rtc.observe import set_receive_filter

EXISTING_RTCP_VIEWERS = 10
DECODING_VIEWERS = 2
JOIN_DEADLINE_S = 120.0
SETTLE_S = 3.0
GOALS = {"first_p95_s": 1.5, "gap_s": 0.5}


# ---------------------------------------------------------------------------------------------
# joining as a hall does under a storm


@dataclass
class Refusals:
    """503s received by the halls of one process."""

    count: int = 0
    retry_after_s: list[float] = field(default_factory=list)


REFUSALS = Refusals()


async def offer_waiting_as_told(
    pc: RTCPeerConnection, url: str, token: str, http: httpx.AsyncClient | None = None
) -> str | None:
    """`fanout.offer`, but a 503 with Retry-After is waited out (with jitter) and the same offer
    and grant are POSTed again, until `JOIN_DEADLINE_S`."""
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + JOIN_DEADLINE_S
    async with contextlib.AsyncExitStack() as stack:
        if http is None:
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        while True:
            response = await http.post(url, content=pc.localDescription.sdp, headers=headers)
            told = response.headers.get("retry-after")
            if response.status_code != 503 or told is None or time.monotonic() > deadline:
                break
            REFUSALS.count += 1
            REFUSALS.retry_after_s.append(float(told))
            await asyncio.sleep(float(told) * (1 + 0.2 * random.random()) + 0.2 * random.random())
    if response.status_code != 201:
        raise RuntimeError(f"{url}: {response.status_code} {response.text.strip()[:200]}")
    await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    return str(httpx.URL(url).join(response.headers["location"]))


class GapViewer(CheapViewer):
    """A `CheapViewer` (RTCP like a browser) that notes the largest gap between RTP packets."""

    def __init__(self) -> None:
        super().__init__()
        self.last_at = 0.0
        self.max_gap_s = 0.0

    def _install_filter(self) -> None:
        dtls = self.pc.getTransceivers()[0].receiver.transport
        viewer = self

        def note(data: bytes) -> bool:
            if len(data) > 12 and 128 <= data[0] < 192 and not 64 <= (data[1] & 0x7F) < 96:
                now = time.monotonic()
                if viewer.last_at:
                    viewer.max_gap_s = max(viewer.max_gap_s, now - viewer.last_at)
                viewer.last_at = now
                viewer.packets += 1
                return True
            return False

        self._filtered = True
        set_receive_filter(dtls, note)
        self._closers.append(lambda: set_receive_filter(dtls, None))


class WaitingDecodingViewer(DecodingViewer):
    """A `DecodingViewer` whose POST waits out a 503 as the halls do."""

    async def start(self, url: str, token: str) -> None:
        self.posted_at = time.monotonic()
        self.location = await offer_waiting_as_told(self.pc, url, token)


def max_frame_gap_s(frames: list[float], since: float, until: float) -> float:
    during = [t for t in frames if since <= t <= until]
    return max((b - a for a, b in itertools.pairwise(during)), default=float("nan"))


# ---------------------------------------------------------------------------------------------
# client processes


def storm_client_main(conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    use_host_addresses(["127.0.0.1"])
    fanout.offer = offer_waiting_as_told  # LeanViewer/CheapViewer.start POST through it
    asyncio.run(_storm_client(conn))


async def _storm_client(conn: Any) -> None:
    loop = asyncio.get_running_loop()
    viewers: list[tuple[Any, str]] = []
    rtcp: list[GapViewer] = []
    http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=None))
    try:
        while True:
            if not await loop.run_in_executor(None, conn.poll, 1.0):
                continue
            command, *args = conn.recv()
            if command == "existing":
                url, tokens = args
                new = [GapViewer() for _ in tokens]
                rtcp.extend(new)
                viewers.extend(zip(new, tokens, strict=True))
                await asyncio.gather(*(v.start(url, t) for v, t in zip(new, tokens, strict=True)))
                await asyncio.sleep(5)
                conn.send({"keyframes": sum(v.first_keyframe_s is not None for v in new)})
            elif command == "reset_gaps":
                for viewer in rtcp:
                    viewer.max_gap_s = 0.0
                conn.send("ok")
            elif command == "gaps":
                conn.send(
                    {
                        "rtcp_gaps": [v.max_gap_s for v in rtcp],
                        "rtcp_connected": sum(v.pc.connectionState == "connected" for v in rtcp),
                    }
                )
            elif command == "storm":
                url, tokens, window_s = args
                REFUSALS.count = 0
                halls = [LeanViewer(http) for _ in tokens]
                viewers.extend(zip(halls, tokens, strict=True))
                failures: list[str] = []
                await asyncio.gather(
                    *(
                        _join_at_random(hall, url, token, window_s, failures)
                        for hall, token in zip(halls, tokens, strict=True)
                    )
                )
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and any(
                    h.first_keyframe_s is None and h.pc.connectionState == "connected"
                    for h in halls
                ):
                    await asyncio.sleep(0.1)
                conn.send(
                    {
                        "connected": sum(h.pc.connectionState == "connected" for h in halls),
                        "first_s": [h.first_keyframe_s for h in halls],
                        "failures": failures,
                        "refusals": REFUSALS.count,
                    }
                )
            elif command == "stop":
                break
    finally:
        await asyncio.gather(
            *(asyncio.wait_for(v.stop(t), 10) for v, t in viewers), return_exceptions=True
        )
        await http.aclose()
        with contextlib.suppress(Exception):
            conn.send("stopped")


async def _join_at_random(
    hall: LeanViewer, url: str, token: str, window_s: float, failures: list[str]
) -> None:
    """Join at a random moment of the window (a hall's clock and network at 07:29)."""
    await asyncio.sleep(random.uniform(0, window_s))
    try:
        await hall.start(url, token)
    except Exception as exc:
        failures.append(f"{type(exc).__name__}: {exc}"[:160])


def start_storm_clients(count: int) -> list[Client]:
    ctx = mp.get_context("spawn")
    clients = []
    for _ in range(count):
        parent, child = ctx.Pipe()
        process = ctx.Process(target=storm_client_main, args=(child,), daemon=True)
        process.start()
        clients.append(Client(process, parent))
    return clients


# ---------------------------------------------------------------------------------------------
# one run


@dataclass
class Result:
    label: str
    halls: int
    joined: int = 0
    refusals: int = 0
    first_s: list[float] = field(default_factory=list)
    missing_first: int = 0
    rtcp_gap_s: float = float("nan")
    rtcp_connected: int = 0
    decoded_gap_s: float = float("nan")
    publisher_connected: bool = False
    publisher_gap_s: float = float("nan")
    worker_cores: float = float("nan")
    storm_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    cores: dict[str, float] = field(default_factory=dict)  # CPU over the storm, by process
    keyframes: int = 0  # keyframes the publisher sent when asked, over the storm
    refused_by: dict[str, float] = field(default_factory=dict)  # the workers' 503s, by reason
    load: tuple[float, float] = (float("nan"), float("nan"))  # 1-min load, storm start / end


async def publisher_gaps(publisher: Publisher, stop: asyncio.Event) -> float:
    """The largest time between two readings of the publisher's packets sent that saw none
    sent (readings every 50 ms)."""
    last_count, last_change, largest = -1, time.monotonic(), 0.0
    while not stop.is_set():
        count = await publisher.packets_sent()
        now = time.monotonic()
        if count != last_count:
            largest = max(largest, now - last_change)
            last_count, last_change = count, now
        await asyncio.sleep(0.05)
    return max(largest, time.monotonic() - last_change)


class LocalPublisher:
    """The publisher in this process (`--layout in-process`)."""

    def __init__(self, url: str, token: str, packets: list) -> None:
        self.publisher = Publisher(url, token, packets)
        self.pid = os.getpid()
        self._stop = asyncio.Event()
        self._watching: asyncio.Task[float] | None = None

    async def start(self) -> None:
        await self.publisher.start()

    async def watch(self) -> None:
        self._restarts = self._keyframes()
        self._watching = asyncio.create_task(publisher_gaps(self.publisher, self._stop))

    def _keyframes(self) -> int:
        video = self.publisher.video
        return video.restarts if video is not None else 0

    async def result(self) -> tuple[float, bool, int]:
        """(largest time nothing was sent since `watch`, still connected, keyframes sent when
        asked since `watch`)."""
        self._stop.set()
        gap = await self._watching if self._watching is not None else float("nan")
        connected = self.publisher.pc.connectionState == "connected"
        return gap, connected, self._keyframes() - self._restarts

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.publisher.stop()


class RemotePublisher:
    """The publisher in a process of its own (`--layout separate`)."""

    def __init__(self, url: str, token: str) -> None:
        self.process = PublisherProcess(url, token)
        self.pid = self.process.pid

    async def start(self) -> None:
        await asyncio.to_thread(self.process.wait_live)

    async def watch(self) -> None:
        await asyncio.to_thread(self.process.ask, "watch")

    async def result(self) -> tuple[float, bool, int]:
        answer = await asyncio.to_thread(self.process.ask, "gaps")
        return answer["largest_s"], answer["connected"], answer["restarts"]

    async def close(self) -> None:
        await asyncio.to_thread(self.process.close)


def refusal_reasons(stack: fanout.Stack) -> dict[str, float]:
    """The workers' refusals by reason (`confbridge_sfu_joins_refused_by` of their /metrics)."""
    reasons: dict[str, float] = {}
    for url in stack.worker_urls:
        with contextlib.suppress(httpx.HTTPError):
            text = httpx.get(
                f"{url}/metrics",
                headers={"Authorization": f"Bearer {fanout.NODE_SECRET}"},
                timeout=10,
            ).text
            for line in text.splitlines():
                if line.startswith("confbridge_sfu_joins_refused_by_total{"):
                    reason = line.split('reason="', 1)[1].split('"', 1)[0]
                    reasons[reason] = reasons.get(reason, 0.0) + float(line.rsplit(" ", 1)[1])
    return reasons


def process_cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (utime + stime) of each process named; NaN for one gone."""
    readings = {}
    for name, pid in pids.items():
        try:
            readings[name] = proc_cpu_s(pid)
        except OSError:
            readings[name] = float("nan")
    return readings


async def start_live(
    args: argparse.Namespace, data_dir: Path, packets: list, cleanup: contextlib.AsyncExitStack
) -> tuple[fanout.Stack, LocalPublisher | RemotePublisher, dict[str, int], str]:
    """The stack and the live publisher in the layout asked for; the processes to watch; the
    publisher's WHIP URL."""
    pids: dict[str, int] = {}
    if args.layout == "separate":
        control = await asyncio.to_thread(
            StackProcess, data_dir, args.workers, args.ice_lite == "on"
        )
        cleanup.callback(control.close)
        stack = control.stack()
        pids["control plane"] = control.pid
    else:
        stack = await asyncio.to_thread(
            start_stack, data_dir, args.workers, "single", args.ice_lite == "on"
        )
        cleanup.callback(stack.close)
    for index, pid in enumerate(stack.worker_pids):
        pids[f"worker {index}"] = pid
    chair = stack.join("hq")
    publisher: LocalPublisher | RemotePublisher
    if args.layout == "separate":
        publisher = RemotePublisher(chair["whip_url"], chair["token"])
        pids["publisher"] = publisher.pid
    else:
        publisher = LocalPublisher(chair["whip_url"], chair["token"], packets)
    cleanup.push_async_callback(publisher.close)
    await publisher.start()
    pids["this process" if args.layout == "separate" else "this process (all)"] = os.getpid()
    return stack, publisher, pids, chair["whip_url"]


async def join_existing(
    stack: fanout.Stack, chair_url: str, watchers: list[Client], decoders: list
) -> tuple[list[str], Any]:
    """Extend the room to every worker and let the existing viewers in; (WHEP URLs, grants).
    The RTCP viewers go to the processes `watchers`, spread over the workers."""
    ward = stack.join("p1")
    origin = chair_url.split("/whip/", 1)[0]
    urls = [ward["whep_url"]]
    for edge in stack.worker_urls:
        if edge != origin:
            await asyncio.to_thread(stack.extend, origin, edge)
            urls.append(f"{edge}/whep/occ-{stack.occurrence_id}")
    grants = functools.partial(stack.viewer_grants, ward)
    decoders.extend(WaitingDecodingViewer() for _ in range(DECODING_VIEWERS))
    for index, (viewer, token) in enumerate(zip(decoders, grants(DECODING_VIEWERS), strict=True)):
        await viewer.start(urls[index % len(urls)], token)
    groups = max(len(watchers), len(urls))
    # one question per process at a time: a process with several groups takes them in turn
    for first in range(0, groups, len(watchers)):
        batch = range(first, min(groups, first + len(watchers)))
        await fanout.ask_all(
            [watchers[i % len(watchers)] for i in batch],
            [
                ("existing", urls[i % len(urls)], grants(EXISTING_RTCP_VIEWERS // groups))
                for i in batch
            ],
            120,
        )
    await fanout.ask_all(watchers, [("reset_gaps",)] * len(watchers), 30)
    return urls, grants


async def run_once(args: argparse.Namespace, admission: bool, packets: list) -> Result:
    label = "admission on" if admission else "admission off"
    result = Result(label, args.halls)
    if admission:
        os.environ.pop("CONFBRIDGE_SFU_JOIN_MAX_HANDSHAKES", None)
    else:
        os.environ["CONFBRIDGE_SFU_JOIN_MAX_HANDSHAKES"] = "0"  # inherited by the workers
    clients = start_storm_clients(args.clients)
    # browsers already in watch from machines of their own; `with-halls` puts them on the
    # halls' event loops, where the halls' own handshakes delay what they read
    watchers = clients if args.existing == "with-halls" else start_storm_clients(1)
    everyone = clients if watchers is clients else [*clients, *watchers]
    data_dir = Path(tempfile.mkdtemp(prefix="joinstorm-"))
    decoders: list[WaitingDecodingViewer] = []
    async with contextlib.AsyncExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, data_dir, ignore_errors=True)
        cleanup.callback(lambda: [client.close() for client in everyone])
        stack, publisher, pids, chair_url = await start_live(args, data_dir, packets, cleanup)
        cleanup.push_async_callback(stop_viewers, everyone, decoders)
        urls, grants = await join_existing(stack, chair_url, watchers, decoders)
        for index, client in enumerate(clients):
            pids[f"client {index}"] = client.process.pid
        if watchers is not clients:
            pids["existing viewers"] = watchers[0].process.pid
        await publisher.watch()
        shares = [
            args.halls // len(clients) + (i < args.halls % len(clients))
            for i in range(len(clients))
        ]
        cpu0, load0 = process_cpu(pids), os.getloadavg()[0]
        started = time.monotonic()
        print(f"{label}: {args.halls} halls joining within {args.window:g} s", flush=True)
        replies = await fanout.ask_all(
            clients,
            [("storm", urls[i % len(urls)], grants(n), args.window) for i, n in enumerate(shares)],
            args.window + JOIN_DEADLINE_S + 60,
        )
        ended = time.monotonic()
        cpu1, load1 = process_cpu(pids), os.getloadavg()[0]
        watched = await fanout.ask_all(watchers, [("gaps",)] * len(watchers), 30)
        await asyncio.sleep(SETTLE_S)
        (
            result.publisher_gap_s,
            result.publisher_connected,
            result.keyframes,
        ) = await publisher.result()
        result.refused_by = await asyncio.to_thread(refusal_reasons, stack)
        result.storm_s = ended - started
        result.cores = {name: (cpu1[name] - cpu0[name]) / result.storm_s for name in pids}
        result.worker_cores = sum(c for n, c in result.cores.items() if n.startswith("worker"))
        result.load = (load0, load1)
        collect(result, replies, watched, decoders, (started, ended))
    return result


def collect(
    result: Result, replies: list, watched: list, decoders: list, storm: tuple[float, float]
) -> None:
    """The halls' and existing viewers' figures of one storm, into `result`."""
    result.joined = sum(r["connected"] for r in replies)
    result.refusals = sum(r["refusals"] for r in replies)
    firsts = [f for r in replies for f in r["first_s"]]
    result.first_s = [f for f in firsts if f is not None]
    result.missing_first = len(firsts) - len(result.first_s)
    result.failures = [f for r in replies for f in r["failures"]]
    result.rtcp_gap_s = max((g for r in watched for g in r["rtcp_gaps"]), default=float("nan"))
    result.rtcp_connected = sum(r["rtcp_connected"] for r in watched)
    result.decoded_gap_s = max(max_frame_gap_s(v.frames, *storm) for v in decoders)


async def stop_viewers(clients: list[Client], decoders: list) -> None:
    for viewer in decoders:
        with contextlib.suppress(Exception):
            await viewer.stop("")
    with contextlib.suppress(Exception):
        await fanout.ask_all(clients, [("stop",)] * len(clients), 120)
    for client in clients:
        client.close()


def fmt(value: float, spec: str = ".2f") -> str:
    return "—" if value != value else format(value, spec)


def report(results: list[Result], args: argparse.Namespace) -> None:
    print()
    print(
        f"{os.cpu_count()} CPUs, {args.workers} worker(s), {args.halls} lean halls within "
        f"{args.window:g} s, {EXISTING_RTCP_VIEWERS} RTCP viewers and {DECODING_VIEWERS} "
        f"decoding viewers joined before, ICE-lite {args.ice_lite}, layout {args.layout}"
    )
    head = (
        f"{'run':<15}{'joined':>10}{'503s':>6}{'1st p50':>9}{'1st p95':>9}{'1st max':>9}"
        f"{'gap rtcp':>10}{'gap dec':>9}{'pub gap':>9}{'pub':>6}{'wrk core':>10}{'storm s':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.label:<15}{f'{r.joined}/{r.halls}':>10}{r.refusals:>6}"
            f"{fmt(pct(r.first_s, 0.5)):>9}{fmt(pct(r.first_s, 0.95)):>9}"
            f"{fmt(max(r.first_s, default=float('nan'))):>9}{fmt(r.rtcp_gap_s):>10}"
            f"{fmt(r.decoded_gap_s):>9}{fmt(r.publisher_gap_s):>9}"
            f"{'up' if r.publisher_connected else 'LOST':>6}{fmt(r.worker_cores):>10}"
            f"{r.storm_s:>9.1f}"
        )
    for r in results:
        cores = ", ".join(f"{name} {fmt(c)}" for name, c in r.cores.items())
        print(
            f"  {r.label}: CPU over the storm (cores): {cores}; load average {r.load[0]:.2f} at "
            f"the start, {r.load[1]:.2f} at the end; keyframes the publisher was asked for: "
            f"{r.keyframes}; 503s by reason: "
            + (", ".join(f"{k} {v:g}" for k, v in sorted(r.refused_by.items())) or "none")
        )
        if r.failures:
            print(f"  {r.label}: {len(r.failures)} failed joins, e.g. {r.failures[0]}")
        if r.missing_first:
            print(f"  {r.label}: {r.missing_first} halls without a first frame")
    print(
        "\n1st: from a hall's first POST (503 waits included) to its first keyframe packet, s; "
        "gap rtcp / gap dec: the largest gap between packets at the RTCP viewers / between "
        "decoded frames at the decoding viewers during the storm, s; pub gap: the largest "
        "time the publisher sent nothing; wrk core: CPU of the workers over the storm."
    )
    on = next((r for r in results if r.label == "admission on"), None)
    if on is not None:
        ok = lambda b: "met" if b else "NOT met"  # noqa: E731
        p95 = pct(on.first_s, 0.95)
        gap = max(on.rtcp_gap_s, on.decoded_gap_s)
        print(
            f"goals (admission on): 100 % joined {ok(on.joined == on.halls)}; first frame p95 ≤ "
            f"{GOALS['first_p95_s']} s {ok(p95 <= GOALS['first_p95_s'])}; no gap > "
            f"{GOALS['gap_s']} s {ok(gap <= GOALS['gap_s'])}; publisher never lost "
            f"{ok(on.publisher_connected)}"
        )


async def run(args: argparse.Namespace) -> list[Result]:
    use_host_addresses(["127.0.0.1"])
    packets = encode_loop() if args.layout == "in-process" else []
    results = []
    for admission in args.modes:
        try:
            results.append(await run_once(args, admission, packets))
        except Exception as exc:
            print(f"{'on' if admission else 'off'}: {type(exc).__name__}: {exc}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--halls", type=int, default=100)
    parser.add_argument("--window", type=float, default=30.0, help="seconds the joins spread over")
    parser.add_argument("--workers", type=int, default=2, choices=[1, 2])
    parser.add_argument("--clients", type=int, default=2, help="client processes for viewers")
    parser.add_argument(
        "--modes", default="on,off", help="admission control in each run: on, off or both"
    )
    parser.add_argument(
        "--layout",
        default="separate",
        choices=["separate", "in-process"],
        help="control plane and publisher in processes of their own, or in this one",
    )
    parser.add_argument(
        "--existing",
        default="own-process",
        choices=["own-process", "with-halls"],
        help="the 10 RTCP viewers already in: in a process of their own, or in the halls'",
    )
    parser.add_argument(
        "--ice-lite", default="on", choices=["on", "off"], help="workers as ICE-lite agents"
    )
    args = parser.parse_args()
    args.modes = [m.strip() == "on" for m in args.modes.split(",") if m.strip()]
    results = asyncio.run(run(args))
    if results:
        report(results, args)
    if len(results) < len(args.modes):
        sys.exit(1)


if __name__ == "__main__":
    main()
