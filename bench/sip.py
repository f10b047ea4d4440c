"""SIP legs on a real worker: CPU per leg beside WebRTC viewers; time to media dialling out.

Part A, CPU (one worker process, one room; `fanout.py`'s stack, publisher and lean viewers):
the occurrence invites `--legs` room-system sites (a `sip_uri` each), so every WebRTC session
in it sends H.264 from the start (`bridge.service.expects_room_systems`), the same in every
phase. The chair publishes `fanout`'s test card pre-encoded in H.264 (640×360, ~1 Mbit/s, 30
fps) and aiortc's Opus silence over WHIP. Four phases, each measured over `--windows` windows
of `--seconds` after `--settle` seconds; a phase's figures are those of its window with the
median worker CPU (a burst of other work on the shared machine moves one window, not the
median), and the range over its windows is printed:

  P0  the publisher alone;
  P1  + `--viewers` lean WHEP viewers (`fanout.LeanViewer`, in `--clients` processes);
  P2  + `--legs` SIP legs (`sip_media`: room systems on plain RTP in a process of their own,
      opened on the worker's `/sip-legs` with the join grants the gateway gets for a call out,
      `sip.admission.due_dial_outs` + `prepare_dial`): each sends a tone in `--leg-codec` every
      20 ms and the same H.264 loop at 30 fps, and gets the room's audio transcoded to its codec
      and the room's H.264 forwarded;
  P3  the viewers gone: the publisher and the legs.

Worker CPU is utime + stime of the worker process (all threads, `/proc/<pid>/stat`) over the
window, as a share of one core ("cores"). Derived figures (every one from this run):
  - CPU per leg = (P2 − P1) / legs, and (P3 − P0) / legs without viewers; goal ≤ 2 %.
  - viewers' cost per packet = the viewers' share of the worker's CPU / packets forwarded to
    them (the publisher's RTP packets × viewers, as `fanout.py` counts): (P1 − P0) in P1
    without legs, (P2 − P3) in P2 with legs; the ratio of the two should be ≈ 1 (goal:
    unchanged). `fanout.py`'s figure (all of the worker's CPU / packets forwarded) is printed
    for P1 and P2 too. "delivered" is what the viewers counted / packets forwarded (above 100 %:
    a client process read its sockets late at the window's start).
  - for comparison, `sfu.sip.audio.measure_cpu` (what `sip_legs.py` prints: one leg's audio
    transcoding alone, in this process, before the stack starts).
The legs' packets received from the worker per second are printed, so that a leg that got no
audio or no video shows. Viewers, legs and the publisher share the machine with the worker;
nothing is subtracted from the worker's figures. With fewer viewers than asked (a join that
failed), the figures are for the viewers that joined and the output says so.

Part B, dial-out time (`--dials` calls, after part A, on the same stack): the SIP gateway
(`SipService`, `sip.dial_out_lead_min` = 0: a call is due at the occurrence's start) and a
room system (`baresip`, `tests.support.sip_agents.Baresip`) as an invited site's `sip_uri`.
Each call: an occurrence is booked to start `--dial-lead` seconds ahead plus a random fraction
of the gateway's polling interval (real starts fall at any phase of it), the chair joins early
and publishes a 400 Hz tone; the times from the occurrence's start to baresip's log lines (the
INVITE answered, "Call established", the first RTP of the call's audio) and to the first 20 ms
of the chair's tone in what baresip decoded (its `sndfile` WAV), all polled every 20 ms, are
recorded; then baresip hangs up and the occurrence ends. p50 and p95 (nearest rank) of the
first RTP and of the tone; goal p95 ≤ 3 s. The gateway asks for due calls every
`DialOuts.interval_s` (printed): a call waits up to that long for the tick. With the default
`dial_out_lead_min` (1 min) the call is placed a minute before the start.

    .venv/bin/python bench/sip.py [--viewers 100] [--legs 20] [--leg-codec G722]
                                  [--seconds 6] [--windows 3] [--dials 20] [--skip-dial-out]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from fanout import (
    VIDEO_BITRATE,
    Client,
    Publisher,
    Stack,
    ask_all,
    proc_cpu_s,
    start_clients,
    start_stack,
)
from sip_dial import DialTiming, run_dial_outs
from sip_media import (
    CODECS,
    GOAL_CORE_PER_LEG,
    codec_named,
    encode_h264_loop,
    h264_rtp_frames,
    leg_main,
    tone_payloads,
)

from sfu.rtc.ice import use_host_addresses
from sfu.sip.audio import measure_cpu

STEP_TIMEOUT_S = 240.0
GOAL_PACKET_RATIO = 1.10  # "unchanged": within the noise of this shared machine


@dataclass
class Sample:
    at: float
    cpu_s: float
    viewer_packets: int
    publisher_packets: int
    legs: dict[str, Any] | None
    room_systems_cpu_s: float = 0.0  # the legs' far ends (their process), for context


@dataclass
class Phase:
    name: str
    viewers: int
    legs: int
    seconds: float
    cores: float
    viewer_pps: float
    publisher_pps: float
    leg_audio_pps: float = 0.0  # per leg, received from the worker
    leg_video_pps: float = 0.0
    leg_sent_pps: float = 0.0  # per leg, sent to the worker (audio + video)
    room_systems_cores: float = 0.0
    spread: tuple[float, float] = (0.0, 0.0)  # worker cores, lowest and highest window

    @property
    def forwarded_pps(self) -> float:
        """Packets the worker forwards to the viewers: the publisher's, once per viewer (as
        `fanout.py` counts them; the viewers' own counts move with their read scheduling)."""
        return self.publisher_pps * self.viewers


@dataclass
class Run:
    """What part A needs while it runs, and closes at the end."""

    stack: Stack
    publisher: Publisher
    clients: list[Client] = field(default_factory=list)
    legs: Client | None = None
    viewers: int = 0
    leg_count: int = 0


# ---------------------------------------------------------------------------------------------
# the room systems' sites and their grants


def add_leg_sites(stack: Stack, count: int) -> None:
    """`count` room-system sites (a `sip_uri` each) booked in the stack's occurrence."""
    from confbridge.meetings.models import Booking, Occurrence
    from confbridge.sites import service as site_service
    from confbridge.sites.models import Site

    with stack.database.session() as session:
        occurrence = session.get(Occurrence, stack.occurrence_id)
        hq = session.get(Site, stack.chair_site_id)
        for index in range(count):
            site = site_service.create_site(
                session=session,
                name=f"Phòng họp truyền hình {index + 1}",
                unit_id=hq.unit_id,
                sip_uri=f"sip:phonghop{index + 1}@127.0.0.1:9",
            )
            session.add(
                Booking(
                    occurrence_id=occurrence.id,
                    site_id=site.id,
                    start_at=occurrence.start_at,
                    end_at=occurrence.end_at,
                )
            )
        session.commit()


def leg_grants(stack: Stack) -> list[str]:
    """The join grants the gateway gets to call each room system of the occurrence."""
    from confbridge.signing import signer_for
    from confbridge.sip import admission
    from confbridge.timeutil import utcnow

    signer = signer_for(stack.settings.grant_key_path)
    targets = admission.due_dial_outs(stack.database, stack.settings, now=utcnow())
    tokens = []
    for target in targets:
        if target.occurrence_id == stack.occurrence_id and target.site_id is not None:
            admitted = admission.prepare_dial(
                stack.database, stack.settings, signer, target=target, now=utcnow()
            )
            assert admitted.token is not None
            tokens.append(admitted.token)
    return tokens


# ---------------------------------------------------------------------------------------------
# measuring


async def sample(run: Run) -> Sample:
    loop = asyncio.get_running_loop()
    counts = await ask_all(run.clients, [("counts",)] * len(run.clients), 30)
    legs = None
    room_systems_cpu_s = 0.0
    if run.legs is not None:
        legs = await loop.run_in_executor(None, run.legs.ask, ("counts",), 30)
        room_systems_cpu_s = proc_cpu_s(run.legs.process.pid)
    return Sample(
        at=time.monotonic(),
        cpu_s=proc_cpu_s(run.stack.worker_pid),
        viewer_packets=sum(c["packets"] for c in counts),
        publisher_packets=await run.publisher.packets_sent(),
        legs=legs,
        room_systems_cpu_s=room_systems_cpu_s,
    )


def _leg_rates(before: dict[str, Any], after: dict[str, Any], seconds: float) -> list[float]:
    legs, video_legs = max(1, after["legs"]), max(1, after["video_legs"])
    audio = sum(after["audio_rx"]) - sum(before["audio_rx"])
    video = sum(after["video_rx"]) - sum(before["video_rx"])
    sent = after["audio_tx"] + after["video_tx"] - before["audio_tx"] - before["video_tx"]
    return [audio / legs / seconds, video / video_legs / seconds, sent / legs / seconds]


def _window(run: Run, name: str, first: Sample, last: Sample) -> Phase:
    window = last.at - first.at
    phase = Phase(
        name=name,
        viewers=run.viewers,
        legs=run.leg_count,
        seconds=window,
        cores=(last.cpu_s - first.cpu_s) / window,
        viewer_pps=(last.viewer_packets - first.viewer_packets) / window,
        publisher_pps=(last.publisher_packets - first.publisher_packets) / window,
        room_systems_cores=(last.room_systems_cpu_s - first.room_systems_cpu_s) / window,
    )
    if first.legs is not None and last.legs is not None:
        phase.leg_audio_pps, phase.leg_video_pps, phase.leg_sent_pps = _leg_rates(
            first.legs, last.legs, window
        )
    return phase


def _median_phase(windows: list[Phase]) -> Phase:
    """The window of median worker CPU, its figures as measured; its `spread` the range."""
    ordered = sorted(windows, key=lambda w: w.cores)
    middle = ordered[len(ordered) // 2]
    middle.spread = (ordered[0].cores, ordered[-1].cores)
    middle.seconds = sum(w.seconds for w in windows)
    return middle


async def measure(run: Run, name: str, args: argparse.Namespace) -> Phase:
    """`args.windows` windows of `args.seconds` after `args.settle`: the median one."""
    await asyncio.sleep(args.settle)
    windows = []
    last = await sample(run)
    for _ in range(args.windows):
        first = last
        await asyncio.sleep(args.seconds)
        last = await sample(run)
        windows.append(_window(run, name, first, last))
    phase = _median_phase(windows)
    low, high = phase.spread
    print(
        f"  {name:22} worker {phase.cores:6.1%} of a core ({low:.1%}–{high:.1%}), viewers got"
        f" {phase.viewer_pps:6.0f} pkt/s, publisher sent {phase.publisher_pps:3.0f} pkt/s;"
        f" room systems {phase.room_systems_cores:.1%}, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return phase


# ---------------------------------------------------------------------------------------------
# part A steps


def negotiated_video(publisher: Publisher) -> str:
    """The publisher's negotiated video codec, from the worker's answer."""
    sdp = publisher.pc.remoteDescription.sdp
    video = sdp[sdp.index("m=video") :].splitlines()
    first_pt = video[0].split()[3]
    rtpmap = next(line for line in video if line.startswith(f"a=rtpmap:{first_pt} "))
    return rtpmap.split()[1].split("/")[0]


async def add_viewers(run: Run, count: int, client_count: int) -> None:
    run.clients = start_clients(client_count)
    ward = run.stack.join("p1")
    tokens = run.stack.viewer_grants(ward, count)
    parts = [tokens[i::client_count] for i in range(client_count)]
    messages = [("add", ward["whep_url"], part, "lean") for part in parts]
    answers = await ask_all(run.clients, messages, STEP_TIMEOUT_S)
    failures = [f for answer in answers for f in answer["failures"]]
    counts = await ask_all(run.clients, [("counts",)] * client_count, 30)
    run.viewers = sum(c["connected"] for c in counts)
    print(f"  {run.viewers} of {count} viewers connected", flush=True)
    for failure in failures[:5]:
        print(f"    failed: {failure}", flush=True)


async def open_legs(run: Run, codec_name: str, media: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    parent, child = mp.get_context("spawn").Pipe()
    process = mp.get_context("spawn").Process(target=leg_main, args=(child,), daemon=True)
    process.start()
    run.legs = Client(process, parent)
    stack = run.stack
    url = stack.worker_urls[0]
    tokens = await asyncio.to_thread(leg_grants, stack)
    message = ("open", url, stack.admin(url), tokens, codec_name, media)
    answer = await loop.run_in_executor(None, run.legs.ask, message, STEP_TIMEOUT_S)
    run.leg_count = answer["opened"]
    async with httpx.AsyncClient(timeout=10) as http:
        rooms = (await http.get(f"{url}/rooms", headers=stack.admin(url))).json()["rooms"]
    sip_peers = sum(1 for r in rooms for p in r.get("peers", []) if p.get("transport") == "sip")
    print(
        f"  {run.leg_count} of {len(tokens)} legs opened ({sip_peers} SIP peers in the room)",
        flush=True,
    )
    for failure in answer["failures"][:5]:
        print(f"    failed: {failure}", flush=True)


def close_viewers(run: Run) -> None:
    for client in run.clients:
        client.close()
    run.clients, run.viewers = [], 0


async def part_a(args: argparse.Namespace, stack: Stack) -> list[Phase]:
    codec = codec_named(args.leg_codec)
    add_leg_sites(stack, args.legs)
    started = time.process_time()
    h264 = encode_h264_loop(VIDEO_BITRATE)
    size = sum(p.size for p in h264)
    print(
        f"pre-encoded {len(h264)} H.264 frames in {time.process_time() - started:.1f} s CPU, "
        f"{size * 8 * 30 / len(h264) / 1e6:.2f} Mbit/s",
        flush=True,
    )
    media = {
        "tone": tone_payloads(codec),
        "h264": h264_rtp_frames(h264) if not args.no_leg_video else [],
        "video": not args.no_leg_video,
    }
    chair = stack.join("hq")
    run = Run(stack, Publisher(chair["whip_url"], chair["token"], h264))
    phases: list[Phase] = []
    try:
        await run.publisher.start()
        print(f"publisher's video: {negotiated_video(run.publisher)}", flush=True)
        phases.append(await measure(run, "P0 publisher", args))
        await add_viewers(run, args.viewers, args.clients)
        phases.append(await measure(run, "P1 + viewers", args))
        await open_legs(run, codec.name, media)
        phases.append(await measure(run, "P2 + legs", args))
        await asyncio.to_thread(close_viewers, run)
        phases.append(await measure(run, "P3 legs, no viewers", args))
    finally:
        await asyncio.to_thread(close_viewers, run)
        if run.legs is not None:
            await asyncio.to_thread(run.legs.close)
        await run.publisher.stop()
    return phases


# ---------------------------------------------------------------------------------------------
# report


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def print_part_a(
    phases: list[Phase], asked: tuple[int, int], audio_alone: float, codec: str, video: bool
) -> None:
    """The phases' table and the goals; `asked`: the viewers and legs asked for."""
    p0, p1, p2, p3 = phases
    print()
    print(f"{'phase':22} {'viewers':>7} {'legs':>5} {'worker':>8} {'(range)':>13}"
          f" {'viewer pkt/s':>12} {'delivered':>9} {'leg rx audio/video pkt/s':>25}"
          f" {'leg tx pkt/s':>12}")  # fmt: skip
    for p in phases:
        delivered = f"{p.viewer_pps / p.forwarded_pps:.1%}" if p.forwarded_pps else "—"
        print(
            f"{p.name:22} {p.viewers:7d} {p.legs:5d} {p.cores:8.1%}"
            f" {f'{p.spread[0]:.1%}–{p.spread[1]:.1%}':>13} {p.viewer_pps:12.0f}"
            f" {delivered:>9} {p.leg_audio_pps:12.1f} / {p.leg_video_pps:10.1f}"
            f" {p.leg_sent_pps:12.1f}"
        )
    legs = p2.legs or 1
    with_viewers = (p2.cores - p1.cores) / legs
    without_viewers = (p3.cores - p0.cores) / legs
    before = _ratio(p1.cores - p0.cores, p1.forwarded_pps) * 1e6
    after = _ratio(p2.cores - p3.cores, p2.forwarded_pps) * 1e6
    print()
    if p2.legs < asked[1] or p1.viewers < asked[0] or p1.viewers != p2.viewers:
        print(
            f"note: asked for {asked[0]} viewers and {asked[1]} legs; {p1.viewers} viewers in"
            f" P1, {p2.viewers} viewers and {p2.legs} legs in P2"
        )
    media = f"{codec} ⇄ Opus" + (", H.264 both ways" if video else ", no video")
    print(f"CPU per SIP leg ({media}), share of one core:")
    print(f"  with {p2.viewers} viewers (P2 − P1) / {legs}:   {with_viewers:6.2%}")
    print(f"  without viewers (P3 − P0) / {legs}:   {without_viewers:6.2%}")
    print(f"  audio transcoding alone (sip_legs.py, this process): {audio_alone:6.2%}")
    verdict = "ok" if max(with_viewers, without_viewers) <= GOAL_CORE_PER_LEG else "over"
    print(f"  goal ≤ {GOAL_CORE_PER_LEG:.0%} per leg: {verdict}")
    print("viewers' worker CPU per packet forwarded to them, µs:")
    for label, figure, phase in (("without legs (P1 − P0) / P1", before, p1),
                                 ("with legs    (P2 − P3) / P2", after, p2)):  # fmt: skip
        whole = _ratio(phase.cores, phase.forwarded_pps) * 1e6
        print(f"  {label} packets: {figure:6.1f}   (fanout.py's all-CPU figure: {whole:.1f})")
    ratio = _ratio(after, before)
    verdict = "ok" if ratio <= GOAL_PACKET_RATIO else "over"
    print(f"  ratio with / without legs: {ratio:.2f}  (goal ≈ 1, ≤ {GOAL_PACKET_RATIO}): {verdict}")


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


def print_part_b(timings: list[DialTiming], interval_s: float, asked: int) -> None:
    print()
    print(f"dial-out at the occurrence's start ({len(timings)} of {asked} calls reached media):")
    print("  call  INVITE s  established s  first RTP s  tone heard s")
    for number, t in enumerate(timings, 1):
        print(
            f"  {number:4d}  {t.invited_s:8.2f}  {t.established_s:13.2f}  {t.rtp_s:11.2f}"
            f"  {t.media_s:12.2f}"
        )
    media = [t.media_s for t in timings]
    if not media:
        print("  no call reached media")
        return
    for label, values in (
        ("first RTP", [t.rtp_s for t in timings]),
        ("tone heard (decoded)", media),
    ):
        p95 = nearest_rank(values, 0.95)
        print(
            f"  {label} after start: p50 {statistics.median(values):.2f} s, p95 {p95:.2f} s,"
            f" max {max(values):.2f} s; goal p95 ≤ 3 s: {'ok' if p95 <= 3.0 else 'over'}"
        )
    invited = [t.invited_s for t in timings]
    set_up = [t.media_s - t.invited_s for t in timings]
    print(
        f"  INVITE at the room system after start: p50 {statistics.median(invited):.2f} s, max"
        f" {max(invited):.2f} s (the gateway looks for due calls every {interval_s:.1f} s)"
    )
    print(
        f"  INVITE → media: p50 {statistics.median(set_up):.2f} s,"
        f" p95 {nearest_rank(set_up, 0.95):.2f} s"
    )


# ---------------------------------------------------------------------------------------------
# main


async def run_all(args: argparse.Namespace, cleanup: list[Callable[[], Any]]) -> int:
    use_host_addresses(["127.0.0.1"])
    codec = codec_named(args.leg_codec)
    audio_alone = measure_cpu(codec, seconds=5.0, slots=2)
    data_dir = Path(tempfile.mkdtemp(prefix="sip-bench-"))
    cleanup.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    stack = await asyncio.to_thread(start_stack, data_dir, 1)
    cleanup.append(stack.close)
    status = 0
    if not args.skip_legs:
        print(
            f"part A: {args.viewers} viewers, {args.legs} legs, {args.windows} windows of"
            f" {args.seconds:.0f} s per phase"
        )
        phases = await part_a(args, stack)
        asked = (args.viewers, args.legs)
        print_part_a(phases, asked, audio_alone, codec.name, not args.no_leg_video)
        # figures for fewer viewers or legs than asked are printed, but the run did not pass
        status = 0 if (phases[1].viewers, phases[2].legs) == asked else 1
    if not args.skip_dial_out:
        print(f"\npart B: {args.dials} calls out to a baresip room system")
        try:
            timings, interval_s = await run_dial_outs(stack, data_dir, args.dials, args.dial_lead)
        except RuntimeError as exc:
            print(f"  part B stopped: {exc}")
            return 1
        print_part_b(timings, interval_s, args.dials)
        status = status if len(timings) == args.dials else 1
    return status


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=100, help="lean WebRTC viewers")
    parser.add_argument("--clients", type=int, default=2, help="viewer processes")
    parser.add_argument("--legs", type=int, default=20, help="SIP legs")
    parser.add_argument("--leg-codec", default="G722", choices=[c.name for c in CODECS])
    parser.add_argument("--no-leg-video", action="store_true", help="legs without video")
    parser.add_argument("--seconds", type=float, default=6.0, help="one window")
    parser.add_argument("--windows", type=int, default=3, help="windows per phase (median)")
    parser.add_argument("--settle", type=float, default=3.0, help="wait before each window")
    parser.add_argument("--dials", type=int, default=20, help="calls out timed in part B")
    parser.add_argument(
        "--dial-lead", type=float, default=4.0, help="seconds from booking to the start"
    )
    parser.add_argument("--skip-legs", action="store_true", help="part B only")
    parser.add_argument("--skip-dial-out", action="store_true", help="part A only")
    args = parser.parse_args()
    for name in ("viewers", "legs", "windows", "clients"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.seconds <= 0 or args.dials < 0:
        parser.error("--seconds must be positive and --dials not negative")
    return args


def main() -> None:
    args = parse_args()
    cleanup: list[Callable[[], Any]] = []
    try:
        status = asyncio.run(run_all(args, cleanup))
    finally:
        for step in reversed(cleanup):
            with contextlib.suppress(Exception):
                step()
    sys.exit(status)


if __name__ == "__main__":
    main()
