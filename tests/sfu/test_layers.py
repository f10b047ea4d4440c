"""Bandwidth adaptation: the layer policy on a simulated clock, and a room moving a viewer's
slot between the speaker's main and small sources."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiortc.rtp import RtpPacket
from prometheus_client.parser import text_string_to_metric_families

from confbridge_kernel.contracts import FloorAction, FloorCommand, PeerRole
from sfu.codecs import VP8, RtpCodec
from sfu.forwarding import Slot, Source
from sfu.layers import (
    DOWN_AFTER_REPORTS,
    LAYER_TICK_INTERVAL_S,
    LOSS_CONGESTED,
    MAIN,
    PROBE_AFTER_MAX_S,
    PROBE_AFTER_S,
    PROBE_HOLD_S,
    QUEUE_DELAY_CONGESTED_S,
    REFRESH_AFTER_S,
    SETTLE_S,
    SKIP_AHEAD_PACKETS,
    SMALL,
    SMALL_VIDEO,
    LayerPolicy,
    LinkReport,
    RateMeter,
    count_layers,
)
from sfu.pipe import PipeEgress
from sfu.room import Peer, PipedRoomInfo, Room
from sfu.rtc.egress import EgressStats
from sfu.rtc.sdp import NegotiatedRtp
from tests.support.netns import Hosts, hosts, netns_missing
from tests.support.peers import WhipPublisher, until
from tests.support.servers import NODE_SECRET, Stack
from tests.support.viewer_process import ScreenProcess

REPORT_S = 1.0  # a viewer's receiver reports come about once a second
CLEAN = 0.0
LOSSY = 0.3  # a link policed below the main layer's bitrate


class Viewer:
    """A policy fed one receiver report a second (with ticks in between), as a room does."""

    def __init__(self) -> None:
        self.now = 100.0
        self.policy = LayerPolicy(self.now)
        self.switches: list[tuple[float, str]] = []

    def run(self, seconds: float, loss: float, **report: float | None) -> None:
        ticks_per_report = round(REPORT_S / LAYER_TICK_INTERVAL_S)
        for tick in range(round(seconds / LAYER_TICK_INTERVAL_S)):
            self.now += LAYER_TICK_INTERVAL_S
            choice = None
            if tick % ticks_per_report == ticks_per_report - 1:
                choice = self.policy.report(
                    LinkReport(self.now, fraction_lost=loss, **report)  # type: ignore[arg-type]
                )
            choice = choice or self.policy.tick(self.now)
            if choice is not None:
                self.switches.append((self.now, choice))

    @property
    def layer(self) -> str:
        return self.policy.layer


def test_layers_a_clean_viewer_stays_on_the_main_layer() -> None:
    viewer = Viewer()
    viewer.run(60.0, CLEAN, rtt_s=0.05)
    assert viewer.layer == MAIN and viewer.switches == []


def test_layers_one_lossy_report_is_not_enough_to_go_down() -> None:
    viewer = Viewer()
    viewer.run(5.0, CLEAN)
    viewer.run(REPORT_S, LOSSY)  # a burst
    viewer.run(10.0, CLEAN)
    assert viewer.switches == []
    assert DOWN_AFTER_REPORTS >= 2


def test_layers_congested_viewer_goes_down_then_up_when_the_link_recovers() -> None:
    viewer = Viewer()
    viewer.run(5.0, CLEAN)
    viewer.run(DOWN_AFTER_REPORTS * REPORT_S, LOSSY)
    assert viewer.layer == SMALL
    went_down_at = viewer.switches[-1][0]
    # on the thumbnail the link is clean: the main layer is tried after PROBE_AFTER_S
    viewer.run(PROBE_AFTER_S - REPORT_S, CLEAN)
    assert viewer.layer == SMALL
    viewer.run(2 * REPORT_S, CLEAN)
    assert viewer.layer == MAIN and viewer.policy.probing
    assert viewer.switches[-1][0] - went_down_at >= PROBE_AFTER_S
    viewer.run(PROBE_HOLD_S + REPORT_S, CLEAN)
    assert viewer.layer == MAIN and not viewer.policy.probing
    assert [layer for _at, layer in viewer.switches] == [SMALL, MAIN]


def test_layers_failed_tries_back_off_and_a_lifted_limit_is_found_in_time() -> None:
    viewer = Viewer()
    viewer.run(DOWN_AFTER_REPORTS * REPORT_S + SETTLE_S, LOSSY)
    assert viewer.layer == SMALL
    # The limit stays: the thumbnail is clean, every try of the main layer loses packets.
    waits = []
    for _ in range(5):
        viewer.run(viewer.policy.probe_after_s + REPORT_S, CLEAN)
        assert viewer.layer == MAIN
        waits.append(viewer.policy.probe_after_s)
        viewer.run(SETTLE_S + 2 * REPORT_S, LOSSY)
        assert viewer.layer == SMALL  # one congested report during a try is enough
    assert waits[0] == PROBE_AFTER_S
    assert max(waits) == PROBE_AFTER_MAX_S and waits == sorted(waits)
    # The limit is lifted: the next try happens within the longest wait and is kept.
    lifted_at = viewer.now
    viewer.run(PROBE_AFTER_MAX_S + PROBE_HOLD_S + 2 * REPORT_S, CLEAN)
    assert viewer.layer == MAIN and not viewer.policy.probing
    assert viewer.switches[-1][0] - lifted_at <= PROBE_AFTER_MAX_S + REPORT_S
    assert viewer.policy.probe_after_s == PROBE_AFTER_S  # a kept try resets the wait


def test_layers_a_struggling_thumbnail_delays_the_next_try() -> None:
    viewer = Viewer()
    viewer.run(DOWN_AFTER_REPORTS * REPORT_S + SETTLE_S, LOSSY)
    assert viewer.layer == SMALL
    viewer.run(3 * PROBE_AFTER_S, LOSSY)  # even the small layer loses packets
    assert viewer.layer == SMALL


def test_layers_reports_right_after_a_switch_are_ignored() -> None:
    policy = LayerPolicy(0.0)
    for at in (0.2, 0.5, 0.8):
        assert policy.report(LinkReport(at, fraction_lost=LOSSY)) is None
    assert policy.layer == MAIN
    assert policy.report(LinkReport(SETTLE_S + 0.1, fraction_lost=LOSSY)) is None
    assert policy.report(LinkReport(SETTLE_S + 1.1, fraction_lost=LOSSY)) == SMALL


def test_layers_a_growing_round_trip_time_is_congestion() -> None:
    viewer = Viewer()
    viewer.run(5.0, CLEAN, rtt_s=0.08)
    viewer.run(4.0, CLEAN, rtt_s=0.08 + QUEUE_DELAY_CONGESTED_S - 0.05)
    assert viewer.layer == MAIN  # some jitter in the round trip is no queue
    viewer.run(3.0, CLEAN, rtt_s=0.08 + QUEUE_DELAY_CONGESTED_S + 0.1)
    assert viewer.layer == SMALL


def test_layers_a_falling_bandwidth_estimate_below_the_main_layer_is_congestion() -> None:
    viewer = Viewer()
    viewer.run(5.0, CLEAN, remb_bps=1_500_000, main_bps=1_000_000)
    # an estimate that is low but rising (ramping up) is not a fall
    for remb in (300_000, 400_000, 500_000):
        viewer.run(REPORT_S, CLEAN, remb_bps=remb, main_bps=1_000_000)
    assert viewer.layer == MAIN
    for remb in (450_000, 400_000, 350_000):
        viewer.run(REPORT_S, CLEAN, remb_bps=remb, main_bps=1_000_000)
    assert viewer.layer == SMALL


def test_layers_a_move_down_asks_for_the_thumbnails_keyframe_again() -> None:
    policy = LayerPolicy(0.0)
    for at in (2.0, 3.0):
        policy.report(LinkReport(at, fraction_lost=LOSSY))
    assert policy.layer == SMALL
    due = [at / 10 for at in range(30, 80) if policy.keyframe_due(at / 10)]
    assert due == [3.0 + after for after in REFRESH_AFTER_S]
    assert policy.tick(8.0) == MAIN  # a try of the main layer needs no refresh
    assert not any(policy.keyframe_due(at) for at in (9.0, 10.0, 12.0))


def test_layers_loss_threshold_is_inclusive() -> None:
    policy = LayerPolicy(0.0)
    assert policy.congested(LinkReport(5.0, fraction_lost=LOSS_CONGESTED))
    assert not policy.congested(LinkReport(6.0, fraction_lost=LOSS_CONGESTED / 2))
    assert not policy.congested(LinkReport(7.0))


def test_layers_rate_meter_and_counts() -> None:
    meter = RateMeter()
    assert meter.rate("a", 0, 10.0) is None
    assert meter.rate("a", 125_000, 11.0) == 1_000_000
    assert meter.rate("a", 130_000, 11.1) == 1_000_000  # too soon: the last rate
    meter.keep([])
    assert meter.rate("a", 0, 12.0) is None
    policies = [LayerPolicy(0.0), LayerPolicy(0.0)]
    policies[1].layer = SMALL
    assert count_layers(policies) == {MAIN: 1, SMALL: 1}
    assert count_layers([]) == {MAIN: 0, SMALL: 0}


VP8_CODEC = RtpCodec(VP8, 90_000, 96)


class Out:
    """A slot's transport: the datagrams it would send."""

    def __init__(self) -> None:
        self.transport = self
        self.edge_addr = ("127.0.0.1", 9)

    def sendto(self, data: bytes, _addr: tuple[str, int]) -> None:
        pass


def _peer(peer_id: str, direction: str, site_id: int, **fields: object) -> Peer:
    return Peer(
        id=peer_id,
        direction=direction,
        room_name="occ-7",
        site_id=site_id,
        site_name=f"site {site_id}",
        role=PeerRole.site,
        pc=None,
        remote_ufrags=set(),
        etag="",
        created_at=datetime.now(UTC),
        connected=True,
        **fields,  # type: ignore[arg-type]
    )


def test_layers_room_feeds_a_small_layer_viewer_from_the_speakers_thumbnail() -> None:
    """The room routes by layer: the main source by default, the thumbnail for a viewer on
    the small layer, the main one again for a speaker without a thumbnail; thumbnails are
    not piped to edges."""
    info = PipedRoomInfo("occ-7", 7, 1, datetime.now(UTC) + timedelta(hours=1))
    room = Room(info, on_floor_changed=lambda _room: None)
    main, small = Source("video", [VP8_CODEC]), Source("video", [VP8_CODEC])
    room.add(_peer("chair-in", "ingest", 1, sources={"video": main, SMALL_VIDEO: small}))
    slot = Slot(PipeEgress(Out(), "video", (VP8_CODEC,)))  # type: ignore[arg-type]
    viewer = _peer("ward-out", "egress", 2, video_slots=[slot], layer=LayerPolicy(0.0))
    room.add(viewer)
    assert slot.source is main
    assert viewer.layer is not None
    viewer.layer.layer = SMALL
    room.reroute()
    assert slot.source is small
    assert [source for _site, source in room.pipe_sources()] == [main]
    plain = Source("video", [VP8_CODEC])
    room.add(_peer("ward3-in", "ingest", 3, sources={"video": plain}))
    room.apply_floor(FloorCommand(action=FloorAction.give, site_id=3, by="test"))
    assert slot.source is plain  # no thumbnail from site 3: its main stream


# --- a viewer on a policed link, through the worker ------------------------------------------

READER = {"Authorization": f"Bearer {NODE_SECRET}"}
MAIN_WIDTH, SMALL_WIDTH = 640, 320
# The hall's downlink is policed below the main layer (aiortc encodes random pixels at 0.5 to
# 1.5 Mbit/s) and above the thumbnail with the sound (aiortc's floor of 250 kbit/s + Opus).
POLICED = "meta l4proto udp limit rate over 50 kbytes/second burst 64 kbytes drop"
BACK_WITHIN_S = 20.0
MAX_FREEZE_S = 2.0


@pytest.fixture
def hall_netns() -> Iterator[Hosts]:
    """A hall in its own network namespace, on a bridge to this one."""
    reason = netns_missing() or (None if shutil.which("nft") else "nftables (nft) is missing")
    if reason:
        pytest.skip(reason)
    with hosts(["hall"]) as made:
        yield made


@pytest.fixture
def stack_options(hall_netns: Hosts, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # the worker reports stats at every housekeeping round (5 s)
    monkeypatch.setenv("CONFBRIDGE_SFU_STATS_INTERVAL_S", "1")
    # media on the bridge's address: reachable from the hall and from this process
    return {"sfu": {"media_ip": hall_netns.gateway}}


async def _reported_layers(stack: Stack, site_id: int) -> list[str | None]:
    """The layers in the site's viewing stats events so far (what the IT page shows)."""
    return [
        event["stats"].get("layer")
        for event in await stack.events()
        if event["type"] == "stats"
        and event["site_id"] == site_id
        and event["direction"] == "egress"
    ]


def _police(hall: Hosts, on: bool) -> None:
    if on:
        argv = [
            "nft",
            "add table inet shape; "
            "add chain inet shape downlink { type filter hook input priority 0; }; "
            f"add rule inet shape downlink {POLICED}",
        ]
    else:
        argv = ["nft", "delete", "table", "inet", "shape"]
    subprocess.run(hall.command("hall", argv), check=True, capture_output=True)


async def _layer_of(stack: Stack, site_id: int) -> str | None:
    async with httpx.AsyncClient(timeout=10) as http:
        rooms = (await http.get(f"{stack.worker}/rooms", headers=READER)).json()["rooms"]
    layers = [
        peer["layer"]
        for room in rooms
        for peer in room["peers"]
        if peer["site_id"] == site_id and peer["direction"] == "egress"
    ]
    return layers[0] if layers else None


async def _viewers_by_layer(stack: Stack) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{stack.worker}/metrics", headers=READER)).text
    return {
        sample.labels["layer"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "confbridge_sfu_viewer_layer_peers"
    }


async def _until_layer(stack: Stack, site_id: int, layer: str, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while (current := await _layer_of(stack, site_id)) != layer:
        assert time.monotonic() < deadline, f"still on the {current} layer"
        await asyncio.sleep(0.25)
    return time.monotonic()


async def test_layers_a_policed_viewer_gets_the_thumbnail_then_the_main_layer_back(
    hall_netns: Hosts, stack: Stack, peers: list, sites: dict
) -> None:
    """A hall whose downlink is policed below the main layer (nftables in its namespace) is
    moved to the speaker's thumbnail and keeps decoding; once the limit is lifted it gets
    the main layer again within 20 s."""
    chair = await stack.join("hq")
    camera = WhipPublisher(
        chair["whip_url"],
        chair["token"],
        width=MAIN_WIDTH,
        height=360,
        thumbnail=True,
        noisy=True,
    )
    peers.append(camera)
    assert (await camera.start()).status_code == 201
    grant = await stack.join("p1")
    screen = await ScreenProcess.start(hall_netns, "hall", grant["whep_url"], grant["token"])
    try:
        ward = sites["p1"].id
        started = time.monotonic()
        await until(lambda: MAIN_WIDTH in screen.widths_since(started), timeout_s=30)
        assert await _layer_of(stack, ward) == "main"
        await asyncio.sleep(3)  # the main layer's encoder ramps up
        assert set(screen.widths_since(time.monotonic() - 2)) == {MAIN_WIDTH}

        _police(hall_netns, True)
        moved = await _until_layer(stack, ward, "small", timeout_s=20)
        assert (await _viewers_by_layer(stack)) == {"main": 0, "small": 1}
        await until(lambda: SMALL_WIDTH in screen.widths_since(moved), timeout_s=10)
        shown = time.monotonic()
        await asyncio.sleep(3)
        thumbnails = screen.widths_since(shown)
        assert thumbnails.count(SMALL_WIDTH) >= 3 * 10, thumbnails  # 15 fps, some slack
        arrivals = [shown] + [at for at, _width in screen.frames if at >= shown]
        assert max(b - a for a, b in itertools.pairwise(arrivals)) < MAX_FREEZE_S
        # the control plane hears of it (the IT page's "picture received")
        deadline = time.monotonic() + 20
        while "small" not in (reported := await _reported_layers(stack, ward)):
            assert time.monotonic() < deadline, reported
            await asyncio.sleep(0.5)

        _police(hall_netns, False)
        lifted = time.monotonic()
        back = await _until_layer(stack, ward, "main", timeout_s=BACK_WITHIN_S)
        await until(lambda: MAIN_WIDTH in screen.widths_since(back), timeout_s=5)
        assert time.monotonic() - lifted <= BACK_WITHIN_S
        await asyncio.sleep(6)  # the try of the main layer holds
        assert await _layer_of(stack, ward) == "main"
        assert set(screen.widths_since(time.monotonic() - 2)) == {MAIN_WIDTH}
    finally:
        await screen.stop()


class ReportingEgress:
    """A viewer's transport whose receiver reports the test writes (`report()`)."""

    def __init__(self) -> None:
        self.kind = "video"
        self.ssrc = 0x1234
        self.params = NegotiatedRtp("video", "0", (VP8_CODEC,))
        self.clock_rate = 90_000
        self.ready = True
        self.on_keyframe_request = lambda: None
        self.seqs: list[int] = []
        self._reports = 0
        self._fraction_lost = 0.0

    def report(self, fraction_lost: float) -> None:
        self._reports += 1
        self._fraction_lost = fraction_lost

    def send(self, header: bytes, payload: bytes, seq: int, rtp_ts: int, now: float) -> bool:
        self.seqs.append(seq)
        return True

    def stats(self) -> EgressStats:
        return replace(
            EgressStats.plain(packets_sent=len(self.seqs), bytes_sent=0),
            fraction_lost=self._fraction_lost,
            reports_received=self._reports,
        )

    def close(self) -> None:
        pass


def test_layers_room_moves_a_congested_viewer_to_the_thumbnail_and_back() -> None:
    """`Room.adapt_layers` on a simulated clock: two lossy reports move the viewer's slot to
    the speaker's thumbnail (numbering far ahead), a clean thumbnail gets the main layer back
    after PROBE_AFTER_S; a speaker without a thumbnail is not switched."""
    info = PipedRoomInfo("occ-7", 7, 1, datetime.now(UTC) + timedelta(hours=1))
    room = Room(info, on_floor_changed=lambda _room: None)
    main, small = Source("video", [VP8_CODEC]), Source("video", [VP8_CODEC])
    room.add(_peer("chair-in", "ingest", 1, sources={"video": main, SMALL_VIDEO: small}))
    egress = ReportingEgress()
    slot = Slot(egress)
    viewer = _peer(
        "ward-out", "egress", 2, video_slots=[slot], video_link=egress.stats, layer=LayerPolicy(0.0)
    )
    room.add(viewer)
    keyframe, delta = b"\x10\x00", b"\x10\x01"

    def push(source: Source, seq: int, payload: bytes) -> None:
        source.push(RtpPacket(payload_type=96, sequence_number=seq, ssrc=5, payload=payload))

    push(main, 1, keyframe)
    now = 10.0
    for _ in range(DOWN_AFTER_REPORTS):
        egress.report(LOSSY)
        now += REPORT_S
        room.adapt_layers(now)
    assert slot.source is small and viewer.layer is not None and viewer.layer.layer == SMALL
    push(main, 2, delta)  # the main layer until the thumbnail's keyframe
    push(small, 900, keyframe)
    assert (egress.seqs[-1] - egress.seqs[-2]) & 0xFFFF == SKIP_AHEAD_PACKETS
    assert slot.active_source is small
    for _ in range(round(PROBE_AFTER_S / REPORT_S) + 1):
        egress.report(CLEAN)
        now += REPORT_S
        room.adapt_layers(now)
    assert slot.source is main and viewer.layer.layer == MAIN

    # a room system without a thumbnail takes the floor: a congested viewer keeps its stream
    plain = Source("video", [VP8_CODEC])
    room.add(_peer("sip-in", "ingest", 3, sources={"video": plain}))
    room.apply_floor(FloorCommand(action=FloorAction.give, site_id=3, by="test"))
    push(plain, 50, keyframe)
    sent = len(egress.seqs)
    now += PROBE_HOLD_S
    for _ in range(DOWN_AFTER_REPORTS + 1):
        egress.report(LOSSY)
        now += REPORT_S
        room.adapt_layers(now)
    assert viewer.layer.layer == SMALL and slot.source is plain
    push(plain, 51, delta)
    assert len(egress.seqs) == sent + 1 and (egress.seqs[-1] - egress.seqs[-2]) & 0xFFFF == 1
    # nothing jumped: the chair's thumbnail follows on when the chair takes the floor back
    room.apply_floor(FloorCommand(action=FloorAction.take, by="test"))
    assert slot.source is small
    push(small, 901, keyframe)
    assert (egress.seqs[-1] - egress.seqs[-2]) & 0xFFFF == 1


class Numbers:
    """A slot's transport that keeps the sequence number of each datagram."""

    def __init__(self) -> None:
        self.transport = self
        self.edge_addr = ("127.0.0.1", 9)
        self.seqs: list[int] = []

    def sendto(self, data: bytes, _addr: tuple[str, int]) -> None:
        self.seqs.append(int.from_bytes(data[2:4], "big"))


def test_layers_switch_with_skip_jumps_the_numbers_at_the_next_source() -> None:
    """Packets of the source still feeding follow on; the new source's keyframe starts
    SKIP_AHEAD_PACKETS further, then numbering is continuous again."""
    out = Numbers()
    slot = Slot(PipeEgress(out, "video", (VP8_CODEC,)))  # type: ignore[arg-type]
    main, small = Source("video", [VP8_CODEC]), Source("video", [VP8_CODEC])
    keyframe, delta = b"\x10\x00", b"\x10\x01"  # VP8 descriptor, then a key or inter frame

    def push(source: Source, seq: int, payload: bytes) -> None:
        source.push(RtpPacket(payload_type=96, sequence_number=seq, ssrc=5, payload=payload))

    slot.switch_to(main)
    push(main, 100, keyframe)
    push(main, 101, delta)
    slot.switch_to(small, skip=SKIP_AHEAD_PACKETS)
    push(main, 102, delta)  # until the thumbnail's keyframe: the main layer, following on
    push(small, 7000, delta)  # not a keyframe: nothing yet
    push(small, 7001, keyframe)
    push(small, 7002, delta)
    first = out.seqs[0]
    assert [(seq - first) & 0xFFFF for seq in out.seqs] == [
        0,
        1,
        2,
        2 + SKIP_AHEAD_PACKETS,
        3 + SKIP_AHEAD_PACKETS,
    ]
