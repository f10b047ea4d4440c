"""Prometheus metrics of one worker, read from its rooms when scraped.

Counters are summed from the live sources and slots plus what peers that left had counted, so
nothing is counted on the forwarding path itself. Link-quality histograms are fed from the
periodic per-peer stats, one series per room, removed when the room closes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from confbridge_kernel.contracts import PeerStats
from sfu.layers import count_layers
from sfu.rtc.ice import shared_port

if TYPE_CHECKING:
    from sfu.admission import JoinGate
    from sfu.events import EventReporter
    from sfu.forwarding import Source
    from sfu.room import Peer, Room


class ObservedWorker(Protocol):
    """What metrics read of a worker: its rooms and its event spool (not `sfu.worker.Worker`
    itself, which builds them)."""

    @property
    def rooms(self) -> Mapping[str, Room]: ...

    @property
    def reporter(self) -> EventReporter | None: ...

    @property
    def gate(self) -> JoinGate: ...


RTT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
LOSS_BUCKETS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
JITTER_BUCKETS_S = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)


@dataclass
class ForwardingTotals:
    """Counters of a set of peers: the sources they published and the slots they viewed."""

    packets_received: int = 0
    bytes_received: int = 0
    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    packets_dropped: int = 0
    packets_retransmitted: int = 0
    keyframe_requests_sent: int = 0
    keyframe_requests_received: int = 0

    def add_sources(self, sources: Iterable[Source]) -> None:
        for source in sources:
            stats = source.stats()
            self.packets_received += stats.packets_received
            self.bytes_received += stats.bytes_received
            self.keyframe_requests_sent += stats.keyframe_requests_sent

    def add_peer(self, peer: Peer) -> None:
        self.add_sources(_sources_of(peer))
        for slot in peer.slots:
            slot_stats = slot.stats()
            self.packets_forwarded += slot_stats.packets_sent
            self.bytes_forwarded += slot_stats.bytes_sent
            self.packets_dropped += slot_stats.packets_dropped
            self.packets_retransmitted += slot_stats.packets_retransmitted
            self.keyframe_requests_received += slot_stats.keyframe_requests_received

    def plus(self, other: ForwardingTotals) -> ForwardingTotals:
        return ForwardingTotals(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


_COUNTERS = {
    "packets_received": (
        "confbridge_sfu_packets_received",
        "RTP packets received from publishers (or, on an edge, from its upstream)",
    ),
    "bytes_received": (
        "confbridge_sfu_received_bytes",
        "RTP payload bytes from publishers (or, on an edge, from its upstream)",
    ),
    "packets_forwarded": ("confbridge_sfu_packets_forwarded", "RTP packets sent to viewers"),
    "bytes_forwarded": ("confbridge_sfu_forwarded_bytes", "RTP payload bytes sent to viewers"),
    "packets_dropped": (
        "confbridge_sfu_packets_dropped",
        "packets not sent to a viewer (slow link, switching)",
    ),
    "packets_retransmitted": (
        "confbridge_sfu_packets_retransmitted",
        "packets resent to viewers after a NACK",
    ),
    "keyframe_requests_sent": (
        "confbridge_sfu_keyframe_requests_sent",
        "keyframe requests (PLI) sent to publishers",
    ),
    "keyframe_requests_received": (
        "confbridge_sfu_keyframe_requests_received",
        "keyframe requests (PLI/FIR) received from viewers",
    ),
}


class WorkerMetrics(Collector):
    """The worker's registry: scrape-time gauges and counters, plus link-quality histograms."""

    def __init__(self, worker: ObservedWorker) -> None:
        self._worker = worker
        self.retired = ForwardingTotals()
        self.registry = CollectorRegistry(auto_describe=True)
        self.rtt = Histogram(
            "confbridge_sfu_rtt_seconds",
            "round-trip time of viewers, per stats report",
            ["room"],
            buckets=RTT_BUCKETS_S,
            registry=self.registry,
        )
        self.loss = Histogram(
            "confbridge_sfu_loss_ratio",
            "fraction of packets lost, per stats report (direction upstream: an edge's feed)",
            ["room", "direction"],
            buckets=LOSS_BUCKETS,
            registry=self.registry,
        )
        self.jitter = Histogram(
            "confbridge_sfu_jitter_seconds",
            "interarrival jitter, per stats report (direction upstream: an edge's feed)",
            ["room", "direction"],
            buckets=JITTER_BUCKETS_S,
            registry=self.registry,
        )
        self._cpu_mark = (time.process_time(), 0)
        self.cpu_per_packet_s: float | None = None
        self.registry.register(self)

    def retire(self, peer: Peer) -> None:
        """Keep what a leaving peer counted, so counters never go back."""
        self.retired.add_peer(peer)

    def retire_sources(self, sources: Iterable[Source]) -> None:
        """Keep what an edge's closing feed (pipe or upstream session) counted."""
        self.retired.add_sources(sources)

    def room_closed(self, room: str) -> None:
        """Drop the room's histogram series (room names never come back)."""
        series = [(self.rtt, (room,))] + [
            (histogram, (room, direction))
            for histogram in (self.loss, self.jitter)
            for direction in ("ingest", "egress", "upstream")
        ]
        for histogram, labels in series:
            with suppress(KeyError):
                histogram.remove(*labels)

    def observe(self, room: str, direction: str, stats: PeerStats) -> None:
        if stats.rtt_ms is not None:
            self.rtt.labels(room).observe(stats.rtt_ms / 1000)
        if stats.loss_ratio is not None:
            self.loss.labels(room, direction).observe(stats.loss_ratio)
        if stats.jitter_ms is not None:
            self.jitter.labels(room, direction).observe(stats.jitter_ms / 1000)

    def totals(self) -> ForwardingTotals:
        live = ForwardingTotals()
        for room in self._worker.rooms.values():
            for peer in room.peers.values():
                live.add_peer(peer)
            live.add_sources(room.feed_sources())
        return self.retired.plus(live)

    def sample_cpu(self) -> None:
        """Process CPU per forwarded packet since the previous sample (the stats interval)."""
        cpu, packets = time.process_time(), self.totals().packets_forwarded
        last_cpu, last_packets = self._cpu_mark
        if packets > last_packets:
            self.cpu_per_packet_s = (cpu - last_cpu) / (packets - last_packets)
        self._cpu_mark = (cpu, packets)

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())

    def _collect(self) -> Iterator[Metric]:
        worker = self._worker
        rooms = GaugeMetricFamily("confbridge_sfu_rooms", "open rooms")
        rooms.add_metric([], len(worker.rooms))
        yield rooms
        peers = GaugeMetricFamily(
            "confbridge_sfu_peers", "connected sessions", labels=["direction", "role"]
        )
        counts: dict[tuple[str, str], int] = {}
        for room in worker.rooms.values():
            for peer in room.peers.values():
                if peer.connected:
                    key = (peer.direction, peer.role.value)
                    counts[key] = counts.get(key, 0) + 1
        for (direction, role), count in sorted(counts.items()):
            peers.add_metric([direction, role], count)
        yield peers
        yield self._viewers_by_layer()
        totals = self.totals()
        for attribute, (name, documentation) in _COUNTERS.items():
            counter = CounterMetricFamily(name, documentation)
            counter.add_metric([], getattr(totals, attribute))
            yield counter
        if self.cpu_per_packet_s is not None:
            cpu = GaugeMetricFamily(
                "confbridge_sfu_cpu_per_packet_seconds",
                "worker CPU time per forwarded packet over the last stats interval",
            )
            cpu.add_metric([], self.cpu_per_packet_s)
            yield cpu
        yield from self._admission(worker.gate)
        yield from _media_port_drops()
        reporter = worker.reporter
        if reporter is not None:
            spool = GaugeMetricFamily(
                "confbridge_sfu_event_spool_events", "events waiting for the control plane"
            )
            spool.add_metric([], reporter.depth)
            yield spool
            dropped = CounterMetricFamily(
                "confbridge_sfu_events_dropped", "events dropped because the spool was full"
            )
            dropped.add_metric([], reporter.dropped)
            yield dropped

    @staticmethod
    def _admission(gate: JoinGate) -> Iterator[Metric]:
        """How the worker paces joins (sfu.admission): refusals tell a storm from a quiet day."""
        handshakes = GaugeMetricFamily(
            "confbridge_sfu_handshakes", "sessions admitted and not yet connected"
        )
        handshakes.add_metric([], gate.in_flight)
        yield handshakes
        for name, documentation, value in (
            ("confbridge_sfu_joins_admitted", "new sessions admitted", gate.admitted),
            ("confbridge_sfu_joins_refused", "new sessions refused with 503", gate.refused),
        ):
            counter = CounterMetricFamily(name, documentation)
            counter.add_metric([], value)
            yield counter
        by_reason = CounterMetricFamily(
            "confbridge_sfu_joins_refused_by",
            "new sessions refused with 503, by what held the gate shut: handshakes, rate, "
            "loop lag, queue full",
            labels=["reason"],
        )
        for reason, count in sorted(gate.refused_by.items()):
            by_reason.add_metric([reason], count)
        yield by_reason
        lag = GaugeMetricFamily(
            "confbridge_sfu_loop_lag_seconds", "how late the event loop runs (smoothed)"
        )
        lag.add_metric([], gate.lag.lag_s)
        yield lag

    def _viewers_by_layer(self) -> Metric:
        viewers = GaugeMetricFamily(
            "confbridge_sfu_viewer_layer_peers",
            "connected hall viewers by the layer of the speaker's camera they receive",
            labels=["layer"],
        )
        policies = [
            peer.layer
            for room in self._worker.rooms.values()
            for peer in room.peers.values()
            if peer.connected and peer.layer is not None
        ]
        for layer, count in count_layers(policies).items():
            viewers.add_metric([layer], count)
        return viewers


def _media_port_drops() -> Iterator[Metric]:
    """Datagrams the shared media port (single-port mode) gave to no session, by reason
    (`sfu.rtc.udpmux.DROP_REASONS`): scans, stale peers, forged checks."""
    port = shared_port()
    if port is None:
        return
    dropped = CounterMetricFamily(
        "confbridge_sfu_media_port_dropped",
        "datagrams on the worker's shared UDP port that reached no session: from an unknown "
        "address, naming an unknown ICE ufrag, or a check failing integrity (answered 401)",
        labels=["reason"],
    )
    for reason, count in port.drops.items():
        dropped.add_metric([reason], count)
    yield dropped


def received_stats(sources: Iterable[Source]) -> tuple[PeerStats, int]:
    """Loss, jitter and packets of incoming tracks; and their payload bytes."""
    counted = [source.stats() for source in sources]
    received = sum(s.packets_received for s in counted)
    lost = sum(s.packets_lost for s in counted)
    stats = PeerStats(
        loss_ratio=lost / (received + lost) if received + lost else None,
        jitter_ms=max((s.jitter_s for s in counted), default=0.0) * 1000,
        packets=received,
    )
    return stats, sum(s.bytes_received for s in counted)


def peer_stats(peer: Peer, interval_s: float) -> PeerStats:
    """Link quality of one session since the previous report, `interval_s` ago."""
    if peer.direction == "ingest":
        stats, total = received_stats(_sources_of(peer))
    else:
        slots = [s.stats() for s in peer.slots]
        total = sum(s.bytes_sent for s in slots)
        rtts = [s.rtt_s for s in slots if s.rtt_s is not None]
        losses = [s.fraction_lost for s in slots if s.fraction_lost is not None]
        jitters = [s.jitter_s for s in slots if s.jitter_s is not None]
        stats = PeerStats(
            rtt_ms=max(rtts) * 1000 if rtts else None,
            loss_ratio=max(losses) if losses else None,
            jitter_ms=max(jitters) * 1000 if jitters else None,
            packets=sum(s.packets_sent for s in slots),
        )
    if peer.layer is not None:
        stats.layer = peer.layer.layer  # type: ignore[assignment]
    if peer.measure is not None:
        peer.measure(stats)
    stats.bitrate_kbps = max(0, total - peer.last_bytes) * 8 / 1000 / interval_s
    stats.interval_s = interval_s  # attendance credits media at most two intervals back
    peer.last_bytes = total
    return stats


def _sources_of(peer: Peer) -> list[Source]:
    """A peer's camera and microphone, or its presentation (sfu.content)."""
    content = [peer.content_source] if peer.content_source is not None else []
    return [*peer.sources.values(), *content]
