"""Bandwidth adaptation: the layer policy on a simulated clock, and a room moving a viewer's
slot between the speaker's main and small sources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
    SETTLE_S,
    SMALL,
    SMALL_VIDEO,
    LayerPolicy,
    LinkReport,
    RateMeter,
    count_layers,
)
from sfu.pipe import PipeEgress
from sfu.room import Peer, PipedRoomInfo, Room

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
