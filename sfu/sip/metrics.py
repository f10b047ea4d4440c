"""Prometheus metrics of a worker's SIP legs: calls open and ended (by direction and why),
the codecs of the calls open, and the loss the room systems report in their RTCP receiver
reports of what the worker sends them.

Like `sfu.metrics`, counts are read from the live legs at scrape time plus what closed legs
had counted; only the loss histogram is fed as the reports arrive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sfu.metrics import LOSS_BUCKETS
from sfu.sip.leg import SipLeg
from sfu.sip.transport import RemoteReport

DIRECTIONS = ("in", "out")
MEDIA = ("audio", "video")

# Why a call ended, as a bounded label: the gateway's and the worker's reasons are free text
# (attendance keeps them whole), a metric label must not be.
END_REASONS = (
    ("the room system hung up", "far_end_hung_up"),
    ("hangup", "far_end_hung_up"),
    ("the room system cancelled", "cancelled"),
    ("not answered", "not_answered"),
    ("no ack", "no_ack"),
    ("no pin", "no_pin"),
    ("wrong pin", "wrong_pin"),
    ("no media", "no_media"),
    ("room closed", "room_closed"),
    ("revoked", "revoked"),
    ("refused", "refused"),
    ("media not acceptable", "refused"),
    ("could not join", "admission_failed"),
    ("worker stopped", "shutdown"),
    ("the bridge is shutting down", "shutdown"),
)


def end_reason(reason: str) -> str:
    """The label of a free-text end reason (`other` for one not known here)."""
    text = reason.strip().lower()
    for prefix, label in END_REASONS:
        if text.startswith(prefix):
            return label
    return "other"


class SipLegMetrics(Collector):
    """Registered in the worker's registry by `SipLegs`, which tells it of legs opening and
    closing; reads the live legs through `legs()` when scraped."""

    def __init__(self, registry: CollectorRegistry, legs: Callable[[], Iterable[SipLeg]]) -> None:
        self._legs = legs
        self.opened: Counter[str] = Counter()
        self.ended: Counter[tuple[str, str]] = Counter()
        self._retired_lost: Counter[str] = Counter()
        self.loss = Histogram(
            "confbridge_sfu_sip_loss_ratio",
            "fraction of the packets sent to a SIP leg that its far end reports lost, "
            "per RTCP receiver report",
            ["media"],
            buckets=LOSS_BUCKETS,
            registry=registry,
        )
        registry.register(self)

    def leg_opened(self, leg: SipLeg) -> None:
        self.opened[leg.direction] += 1
        leg.on_report = self.report

    def leg_closed(self, leg: SipLeg, reason: str) -> None:
        self.ended[(leg.direction, end_reason(reason))] += 1
        for media, lost in _packets_lost(leg):
            self._retired_lost[media] += lost

    def report(self, media: str, report: RemoteReport) -> None:
        """A receiver report of the far end about the audio or video we send it."""
        if report.fraction_lost is not None:
            self.loss.labels(media).observe(report.fraction_lost)

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())

    def _collect(self) -> Iterator[Metric]:
        legs = list(self._legs())
        active = GaugeMetricFamily(
            "confbridge_sfu_sip_legs", "SIP calls open on this worker", labels=["direction"]
        )
        by_direction = Counter(leg.direction for leg in legs)
        for direction in DIRECTIONS:
            active.add_metric([direction], by_direction[direction])
        yield active
        opened = CounterMetricFamily(
            "confbridge_sfu_sip_legs_opened", "SIP calls opened", labels=["direction"]
        )
        for direction in DIRECTIONS:
            opened.add_metric([direction], self.opened[direction])
        yield opened
        ended = CounterMetricFamily(
            "confbridge_sfu_sip_legs_ended",
            "SIP calls ended, by why",
            labels=["direction", "reason"],
        )
        for (direction, reason), count in sorted(self.ended.items()):
            ended.add_metric([direction, reason], count)
        yield ended
        yield self._codecs(legs)
        lost = CounterMetricFamily(
            "confbridge_sfu_sip_packets_lost",
            "packets sent to SIP legs that their far ends report lost (RTCP, cumulative)",
            labels=["media"],
        )
        totals = Counter(self._retired_lost)
        for leg in legs:
            for media, count in _packets_lost(leg):
                totals[media] += count
        for media in MEDIA:
            lost.add_metric([media], totals[media])
        yield lost

    def _codecs(self, legs: list[SipLeg]) -> Metric:
        codecs = GaugeMetricFamily(
            "confbridge_sfu_sip_leg_codecs",
            "SIP calls open, by the codec of their audio and of their video",
            labels=["media", "codec"],
        )
        counted: Counter[tuple[str, str]] = Counter()
        for leg in legs:
            if leg.codec_name:
                counted[("audio", leg.codec_name)] += 1
            if leg.video_codec_name:
                counted[("video", leg.video_codec_name)] += 1
        for (media, codec), count in sorted(counted.items()):
            codecs.add_metric([media, codec], count)
        return codecs


def _packets_lost(leg: SipLeg) -> Iterator[tuple[str, int]]:
    """The cumulative loss of each of the leg's streams, as its far end last reported."""
    transports = [("audio", leg.transport), ("video", leg.video_transport)]
    for media, transport in transports:
        if transport is not None and transport.remote_report.packets_lost is not None:
            yield media, max(0, transport.remote_report.packets_lost)
