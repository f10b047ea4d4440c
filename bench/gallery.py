"""The chair's gallery under load: one console receiving a page of halls' thumbnails while the
halls watch the programme, through the real SFU worker process (prints figures).

`bench/fanout.py --gallery` runs it too. Setup (`fanout.start_stack`): a temporary SQLite
database, the control plane, one worker subprocess, an occurrence that is on now.

- Programme: `fanout.Publisher` as the chair site (pre-encoded 640×360 VP8 at 30 fps, Opus).
- Halls (`--halls`, default 100, in `--hall-clients` processes): aiortc WHIP peers that publish
  two video m-lines as the kiosk does: the camera, here silent (a parked track: no packet; the
  gallery never forwards a hall's main layer, and 100 real cameras would not fit the machine
  beside the worker), and the thumbnail, a pre-encoded 320×180 VP8 loop at 15 fps and about
  150 kbit/s (`THUMB_*`). Their grants are signed as the control plane signs them, one site id
  each.
- Viewers (`--viewers`, default the number of halls): `fanout.LeanViewer`s watching the
  programme (the halls' screens), in `--clients` processes.
- Console: one gallery session (this process) with the preview and `GALLERY_PAGE_TILES` tiles,
  pointed at the first page of halls with `POST {session}/layout`; RTP datagrams are counted
  (packets, bytes, SSRCs) at its DTLS transport and dropped before SRTP.

Two windows of `--seconds` each, on the same worker: the plain fan-out (halls publishing,
viewers watching, no console), then the same with the console. Per window: the worker's CPU
(/proc/<pid>/stat) per forwarded packet (`confbridge_sfu_packets_forwarded_total`, from its
/metrics); for the console: its download rate (UDP payload, SRTP as received) and the gallery's
marginal cost, Δ worker CPU / Δ forwarded packets between the two windows.

    .venv/bin/python bench/gallery.py [--halls 100] [--viewers 100] [--seconds 10]
    .venv/bin/python bench/fanout.py --gallery --halls 30 --viewers 30 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av
import httpx
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from fanout import (
    CLK_TCK,
    NODE_SECRET,
    Client,
    Publisher,
    Stack,
    ask_all,
    delete,
    encode_loop,
    offer,
    proc_cpu_s,
    start_clients,
    start_stack,
    test_card,
    wait_connected,
)

from confbridge_kernel.contracts import GALLERY_PAGE_TILES, GrantPurpose, PeerRole
from sfu.rtc.egress import ParkedTrack
from sfu.rtc.ice import use_host_addresses
from sfu.rtc.observe import set_receive_filter
from tests.support.peers import loopback_peer

THUMB_WIDTH, THUMB_HEIGHT, THUMB_FPS = 320, 180, 15
THUMB_BITRATE = 150_000
THUMB_LOOP_FRAMES = 75  # 5 s, then the loop restarts at its keyframe
HALL_JOIN_CONCURRENCY = 4  # per hall process
HALL_SITE_BASE = 1000  # hall i publishes as site HALL_SITE_BASE + i
STEP_TIMEOUT_S = 300.0
SETTLE_S = 2.0
GOALS = {"console_mbps": 8.0}


# ---------------------------------------------------------------------------------------------
# halls: a silent camera and a pre-encoded thumbnail each, in client processes


def encode_thumbnail_loop() -> list[av.Packet]:
    """THUMB_LOOP_FRAMES frames of the test card at thumbnail size, VP8, once."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = THUMB_WIDTH, THUMB_HEIGHT, "yuv420p"
    codec.bit_rate = THUMB_BITRATE
    codec.framerate = fractions.Fraction(THUMB_FPS, 1)
    codec.time_base = fractions.Fraction(1, THUMB_FPS)
    codec.gop_size = THUMB_LOOP_FRAMES * 2
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    packets: list[av.Packet] = []
    for index in range(THUMB_LOOP_FRAMES):
        frame = test_card(index, THUMB_WIDTH, THUMB_HEIGHT)
        frame.pts = index
        frame.time_base = codec.time_base
        packets.extend(codec.encode(frame))
    packets.extend(codec.encode(None))
    return packets[:THUMB_LOOP_FRAMES]


class ThumbnailVideo(MediaStreamTrack):
    """Serves the pre-encoded thumbnail loop at THUMB_FPS; `restart()` jumps to its keyframe."""

    kind = "video"

    def __init__(self, packets: list[av.Packet]) -> None:
        super().__init__()
        self._packets = packets
        self._index = 0
        self._sent = 0
        self._start: float | None = None

    def restart(self) -> None:
        self._index = 0

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._sent / THUMB_FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = self._packets[self._index]
        self._index = (self._index + 1) % len(self._packets)
        packet.pts = self._sent * (90000 // THUMB_FPS)
        packet.time_base = fractions.Fraction(1, 90000)
        self._sent += 1
        return packet


class Hall:
    """A hall's WHIP session: the camera m-line (silent), then its thumbnail."""

    def __init__(self, packets: list[av.Packet]) -> None:
        self.pc = loopback_peer()
        self.pc.addTransceiver(ParkedTrack("video"), direction="sendonly")
        self.thumbnail = ThumbnailVideo(packets)
        sender = self.pc.addTransceiver(self.thumbnail, direction="sendonly").sender
        # A PLI from the worker restarts the loop at its keyframe (no encoder here).
        sender._send_keyframe = self.thumbnail.restart  # type: ignore[method-assign]
        self.location: str | None = None

    async def start(self, url: str, token: str, http: httpx.AsyncClient) -> None:
        self.location = await offer(self.pc, url, token, http)
        await wait_connected(self.pc, 60)

    async def stop(self, token: str, http: httpx.AsyncClient) -> None:
        await delete(self.location, token, http)
        with contextlib.suppress(Exception):
            await self.pc.close()


def hall_main(conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent shuts us down
    use_host_addresses(["127.0.0.1"])
    asyncio.run(_hall_loop(conn))


async def _hall_loop(conn: Any) -> None:
    loop = asyncio.get_running_loop()
    packets = encode_thumbnail_loop()
    halls: list[tuple[Hall, str]] = []
    http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=None))
    try:
        while True:
            if not await loop.run_in_executor(None, conn.poll, 1.0):
                continue
            command, *args = conn.recv()
            if command == "publish":
                url, tokens = args
                sem = asyncio.Semaphore(HALL_JOIN_CONCURRENCY)
                failures: list[str] = []

                async def join_one(
                    token: str,
                    sem: asyncio.Semaphore = sem,
                    url: str = url,
                    failures: list[str] = failures,
                ) -> None:
                    async with sem:
                        hall = Hall(packets)
                        halls.append((hall, token))
                        try:
                            await hall.start(url, token, http)
                        except Exception as exc:
                            failures.append(f"{type(exc).__name__}: {exc}"[:160])

                await asyncio.gather(*(join_one(token) for token in tokens))
                conn.send({"failures": failures, "bitrate": _loop_bps(packets)})
            elif command == "stop":
                break
    finally:
        await asyncio.gather(
            *(asyncio.wait_for(h.stop(t, http), 10) for h, t in halls), return_exceptions=True
        )
        with contextlib.suppress(Exception):
            await http.aclose()
        with contextlib.suppress(Exception):
            conn.send("stopped")


def _loop_bps(packets: list[av.Packet]) -> float:
    return sum(p.size for p in packets) * 8 * THUMB_FPS / len(packets)


def start_hall_clients(count: int) -> list[Client]:
    ctx = mp.get_context("spawn")
    clients = []
    for _ in range(count):
        parent, child = ctx.Pipe()
        process = ctx.Process(target=hall_main, args=(child,), daemon=True)
        process.start()
        clients.append(Client(process, parent))
    return clients


# ---------------------------------------------------------------------------------------------
# grants, signed as the control plane signs them


def _signed_like(stack: Stack, grant: dict[str, Any], **changes: Any) -> str:
    from confbridge import signing
    from sfu.grants import GrantVerifier

    assert stack.grant_key_path is not None
    signer = signing.signer_for(stack.grant_key_path)
    claims = GrantVerifier(signer.public_pem.encode()).verify(
        grant["token"], room=grant["whep_url"].rsplit("/", 1)[1]
    )
    return signer.sign(claims.model_copy(update={"jti": uuid.uuid4().hex, **changes}))


def hall_grants(stack: Stack, chair: dict[str, Any], count: int) -> list[str]:
    """A WHIP grant per hall, each for a site of its own."""
    return [
        _signed_like(
            stack,
            chair,
            site_id=HALL_SITE_BASE + i,
            site_name=f"Hall {i + 1}",
            role=PeerRole.site,
        )
        for i in range(count)
    ]


def gallery_grant(stack: Stack, chair: dict[str, Any]) -> str:
    """The console's gallery grant (`bridge.service.gallery`: a viewer of no site)."""
    return _signed_like(
        stack,
        chair,
        site_id=0,
        site_name="Gallery (bench)",
        role=PeerRole.viewer,
        purpose=GrantPurpose.gallery,
    )


# ---------------------------------------------------------------------------------------------
# the console: a gallery session that counts what it receives


class GalleryConsole:
    """A gallery WHEP session (preview + tiles) counting RTP datagrams at its transport."""

    def __init__(self, tiles: int = GALLERY_PAGE_TILES) -> None:
        self.pc: RTCPeerConnection = loopback_peer()
        for _ in range(tiles + 1):
            self.pc.addTransceiver("video", direction="recvonly")
        self.packets = 0
        self.bytes = 0
        self.ssrcs: set[int] = set()
        self.location: str | None = None
        self.token = ""

    def _count(self, data: bytes) -> bool:
        # RTP (RFC 5761): version 2, payload type outside RTCP's 64..95; counted and dropped
        if len(data) > 12 and 128 <= data[0] < 192 and not 64 <= (data[1] & 0x7F) < 96:
            self.packets += 1
            self.bytes += len(data)
            self.ssrcs.add(int.from_bytes(data[8:12], "big"))
            return True
        return False

    async def start(self, url: str, token: str) -> None:
        self.token = token
        self.location = await offer(self.pc, url, token)
        await wait_connected(self.pc, 30)
        set_receive_filter(self.pc.getTransceivers()[0].receiver.transport, self._count)

    async def layout(self, tiles: list[int], preview: int | None = None) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                f"{self.location}/layout",
                json={"tiles": tiles, "preview": preview},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        if response.status_code != 200:
            raise RuntimeError(f"layout: {response.status_code} {response.text[:200]}")
        return response.json()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            set_receive_filter(self.pc.getTransceivers()[0].receiver.transport, None)
        await delete(self.location, self.token)
        with contextlib.suppress(Exception):
            await self.pc.close()


# ---------------------------------------------------------------------------------------------
# measuring


def forwarded_total(worker_url: str) -> float:
    text = httpx.get(
        f"{worker_url}/metrics", headers={"Authorization": f"Bearer {NODE_SECRET}"}, timeout=10
    ).text
    for line in text.splitlines():
        if line.startswith("confbridge_sfu_packets_forwarded_total "):
            return float(line.split()[1])
    raise RuntimeError("the worker's /metrics has no confbridge_sfu_packets_forwarded_total")


@dataclass
class Window:
    """One measured window: rates over `seconds`."""

    label: str
    seconds: float = 0.0
    worker_cores: float = 0.0
    forwarded_pps: float = 0.0
    programme_pps: float = 0.0
    console_mbps: float = 0.0
    console_pps: float = 0.0
    console_streams: int = 0

    @property
    def us_per_packet(self) -> float:
        if not self.forwarded_pps:
            return float("nan")
        return self.worker_cores * 1e6 / self.forwarded_pps


async def measure(
    label: str,
    seconds: float,
    stack: Stack,
    publisher: Publisher,
    console: GalleryConsole | None,
) -> Window:
    pid, url = stack.worker_pid, stack.worker_urls[0]

    async def snap() -> tuple[float, float, float, int, int, int]:
        return (
            time.monotonic(),
            proc_cpu_s(pid),
            await asyncio.to_thread(forwarded_total, url),
            await publisher.packets_sent(),
            console.packets if console else 0,
            console.bytes if console else 0,
        )

    before = await snap()
    await asyncio.sleep(seconds)
    after = await snap()
    elapsed = after[0] - before[0]
    window = Window(label, elapsed)
    window.worker_cores = (after[1] - before[1]) / elapsed
    window.forwarded_pps = (after[2] - before[2]) / elapsed
    window.programme_pps = (after[3] - before[3]) / elapsed
    window.console_pps = (after[4] - before[4]) / elapsed
    window.console_mbps = (after[5] - before[5]) * 8 / elapsed / 1e6
    window.console_streams = len(console.ssrcs) if console is not None else 0
    return window


async def run(args: argparse.Namespace, cleanup: list, windows: list[Window]) -> None:
    use_host_addresses(["127.0.0.1"])
    packets = encode_loop()
    data_dir = Path(tempfile.mkdtemp(prefix="gallery-"))
    cleanup.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    # the worker first: client processes starting beside it slow its start on a busy machine
    stack = await asyncio.to_thread(start_stack, data_dir, 1)
    cleanup.append(stack.close)
    viewer_clients = start_clients(args.clients)
    cleanup.append(lambda: [c.close() for c in viewer_clients])
    hall_clients = start_hall_clients(args.hall_clients)
    cleanup.append(lambda: [c.close() for c in hall_clients])
    chair = stack.join("hq")
    ward = stack.join("p1")
    publisher = Publisher(chair["whip_url"], chair["token"], packets)
    console: GalleryConsole | None = None
    try:
        await publisher.start()
        # the halls publish their camera and thumbnail
        tokens = hall_grants(stack, chair, args.halls)
        shares = [tokens[i :: len(hall_clients)] for i in range(len(hall_clients))]
        t0 = time.monotonic()
        replies = await ask_all(
            hall_clients,
            [("publish", chair["whip_url"], share) for share in shares],
            STEP_TIMEOUT_S,
        )
        failures = [f for r in replies for f in r["failures"]]
        print(
            f"{args.halls} halls publishing in {time.monotonic() - t0:.1f} s "
            f"(thumbnail loop {replies[0]['bitrate'] / 1e3:.0f} kbit/s at {THUMB_FPS} fps"
            f"{'; failures: ' + '; '.join(failures[:3]) if failures else ''})",
            flush=True,
        )
        # the halls' screens watch the programme
        t0 = time.monotonic()
        viewer_shares = [
            args.viewers // len(viewer_clients) + (i < args.viewers % len(viewer_clients))
            for i in range(len(viewer_clients))
        ]
        replies = await ask_all(
            viewer_clients,
            [
                ("add", ward["whep_url"], stack.viewer_grants(ward, share), "lean")
                for share in viewer_shares
            ],
            STEP_TIMEOUT_S,
        )
        failures = [f for r in replies for f in r["failures"]]
        print(
            f"{args.viewers} programme viewers joined in {time.monotonic() - t0:.1f} s"
            f"{'; failures: ' + '; '.join(failures[:3]) if failures else ''}",
            flush=True,
        )
        await asyncio.sleep(SETTLE_S)
        plain = await measure("plain fan-out", args.seconds, stack, publisher, None)
        windows.append(plain)

        # the console opens the gallery on the first page
        console = GalleryConsole()
        await console.start(ward["whep_url"], gallery_grant(stack, chair))
        page = [HALL_SITE_BASE + i for i in range(min(args.halls, GALLERY_PAGE_TILES))]
        shown = await console.layout(page)
        live = sum(tile["live"] for tile in shown["tiles"])
        t0 = time.monotonic()
        while len(console.ssrcs) < len(page) and time.monotonic() - t0 < 20:
            await asyncio.sleep(0.1)
        print(
            f"console: {live} of {len(page)} tiles live, {len(console.ssrcs)} receiving after "
            f"{time.monotonic() - t0:.1f} s",
            flush=True,
        )
        await asyncio.sleep(SETTLE_S)
        gallery = await measure(
            f"+ gallery ({len(page)} tiles)", args.seconds, stack, publisher, console
        )
        windows.append(gallery)
    finally:
        if console is not None:
            await console.stop()
        await ask_all(viewer_clients, [("stop",)] * len(viewer_clients), 60)
        await ask_all(hall_clients, [("stop",)] * len(hall_clients), 60)
        await publisher.stop()
        stack.close()


def report(windows: list[Window], args: argparse.Namespace) -> bool:
    """Print the windows and the goals; True if every goal is met."""
    print()
    print(
        f"{'window':<26}{'worker cores':>13}{'fwd pkt/s':>11}{'µs/pkt':>8}"
        f"{'console Mbit/s':>16}{'console pkt/s':>15}{'streams':>9}"
    )
    for w in windows:
        print(
            f"{w.label:<26}{w.worker_cores:>13.2f}{w.forwarded_pps:>11.0f}"
            f"{w.us_per_packet:>8.1f}{w.console_mbps:>16.2f}{w.console_pps:>15.0f}"
            f"{w.console_streams:>9}"
        )
    if len(windows) < 2:
        return False
    plain, gallery = windows
    extra_pps = gallery.forwarded_pps - plain.forwarded_pps
    marginal = (
        (gallery.worker_cores - plain.worker_cores) * 1e6 / extra_pps
        if extra_pps > 0
        else float("nan")
    )
    # met only with every tile of the page received: a console receiving nothing is no pass
    page = min(args.halls, GALLERY_PAGE_TILES)
    download_ok = (
        gallery.console_streams >= page and 0 < gallery.console_mbps <= GOALS["console_mbps"]
    )
    # µs/pkt is the worker's whole CPU (its halls' ingest included) over what it forwards
    cpu_ok = plain.forwarded_pps > 0 and gallery.us_per_packet <= plain.us_per_packet
    print(
        f"\nconsole download for a {GALLERY_PAGE_TILES}-tile page: "
        f"{gallery.console_mbps:.2f} Mbit/s from {gallery.console_streams} of {page} tiles "
        f"(goal ≤ {GOALS['console_mbps']:g}): "
        f"{'met' if download_ok else 'NOT met'}"
    )
    print(
        f"worker µs per forwarded packet: {gallery.us_per_packet:.1f} with the gallery, "
        f"{plain.us_per_packet:.1f} plain (goal: no worse): {'met' if cpu_ok else 'NOT met'}; "
        f"marginal cost of the gallery's packets {marginal:.1f} µs/pkt "
        f"(+{extra_pps:.0f} pkt/s)"
    )
    print(
        f"\n{args.halls} halls publish a thumbnail each (camera silent), {args.viewers} lean "
        "viewers watch the programme, one console views one page; worker CPU from "
        f"/proc/<pid>/stat ({1000 // CLK_TCK} ms ticks) over each window, forwarded packets "
        "from its /metrics; the console's rate counts UDP payload bytes of RTP (SRTP as "
        "received). Every process shares the machine."
    )
    return download_ok and cpu_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--halls", type=int, default=100, help="halls publishing a thumbnail")
    parser.add_argument(
        "--viewers", type=int, default=None, help="programme viewers (default: --halls)"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2, help="processes for the viewers")
    parser.add_argument("--hall-clients", type=int, default=2, help="processes for the halls")
    parser.add_argument("--timeout", type=float, default=1200.0, help="bound on the whole run")
    args = parser.parse_args()
    if args.halls < 1 or args.clients < 1 or args.hall_clients < 1:
        parser.error("--halls, --clients and --hall-clients must be at least 1")
    if args.viewers is None:
        args.viewers = args.halls
    os.environ.setdefault("FANOUT_LEAN_POLL_MS", "50")
    cleanup: list = []
    windows: list[Window] = []
    failed = ""
    try:
        asyncio.run(asyncio.wait_for(run(args, cleanup, windows), args.timeout))
    except KeyboardInterrupt:
        failed = "interrupted"
    except Exception as exc:
        failed = f"stopped: {type(exc).__name__}: {exc or 'the run took too long'}"
    finally:
        for step in reversed(cleanup):
            with contextlib.suppress(Exception):
                step()
    met = report(windows, args) if windows else False
    if failed:
        print(f"\nFAILED: {failed}", file=sys.stderr)
        sys.exit(1)
    if not met:
        sys.exit(2)


if __name__ == "__main__":
    main()
