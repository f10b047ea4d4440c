"""Bandwidth adaptation: which layer of the speaker's camera each viewer receives.

Every hall publishes its camera twice (two video m-lines of one WHIP session, in that order):
the main stream and a thumbnail of about 320×180, ≤ 15 fps, ≤ `SMALL_MAX_BITRATE_BPS`. The
worker forwards either one into a viewer's single video slot, never decoding: a viewer whose
downlink cannot carry the main stream is moved to the thumbnail, and back when it recovers.

A `LayerPolicy` decides for one viewer from what it reports back about the slot (RTCP receiver
reports and REMB), fed with reports and a clock so it is tested without media, as
`sfu.voice.VoiceDetector` is:

- a report is *congested* when its fraction lost reaches `LOSS_CONGESTED`, when the round-trip
  time exceeds the lowest one seen by `QUEUE_DELAY_CONGESTED_S` (a queue building up), or when
  the viewer's REMB falls, below `REMB_CONGESTED_RATIO` of what the main layer sends now (an
  estimate ramping up after a switch is not a fall);
- main → small after `DOWN_AFTER_REPORTS` congested reports in a row;
- small → main is a probe: once the small layer has been clean for `PROBE_AFTER_S`, the viewer
  tries the main layer again; one congested report during the next `PROBE_HOLD_S` sends it back
  down and doubles the wait (up to `PROBE_AFTER_MAX_S`), a clean probe resets the wait. A
  receiver on the small layer cannot tell whether the main one would fit (its loss is nil and
  its bandwidth estimate follows what it receives), so going up has to be tried;
- reports within `SETTLE_S` of a switch are ignored: they count packets of the other layer;
- a move down restarts the viewer's numbering far ahead (`SKIP_AHEAD_PACKETS`) and asks the
  thumbnail for a keyframe again once the link has drained (`REFRESH_AFTER_S`), so the viewer
  decodes the thumbnail at once instead of waiting for what the saturated link lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAIN = "main"
SMALL = "small"
LAYERS = (MAIN, SMALL)
SMALL_VIDEO = "video-small"
"""Key of a publisher's thumbnail among its sources (`Peer.sources`, the room's sources)."""
SMALL_MAX_BITRATE_BPS = 200_000
"""The worker's bandwidth reports (REMB) ask a thumbnail's publisher for at most this."""

LAYER_TICK_INTERVAL_S = 0.5
"""How often a room reads its viewers' reports and reconsiders their layers."""
LOSS_CONGESTED = 0.08
"""A receiver report losing this fraction of packets or more is congested."""
QUEUE_DELAY_CONGESTED_S = 0.25
"""A round-trip time this much above the lowest one seen means a queue on the path."""
REMB_CONGESTED_RATIO = 0.6
"""A falling REMB below this share of the main layer's bitrate is congested."""
DOWN_AFTER_REPORTS = 2
"""Congested reports in a row that move a viewer from the main layer to the small one."""
PROBE_AFTER_S = 4.0
"""Clean time on the small layer before the main one is tried again (first try)."""
PROBE_AFTER_MAX_S = 12.0
"""The longest wait between two tries after failed ones (a lifted limit is seen within it)."""
PROBE_HOLD_S = 4.0
"""A try of the main layer that stays clean this long is kept."""
SETTLE_S = 1.0
"""Reports this soon after a switch are ignored (they describe the other layer); so is the
first report after it, whenever it comes."""
REFRESH_AFTER_S = (1.0, 2.5)
"""After a move down, the thumbnail's keyframe is asked for again this much later: the first
one met the saturated link and may have been lost, while the link has drained by then (a
receiver such as aiortc's drops a keyframe whose first packet is missing, and asks for no
other)."""
SKIP_AHEAD_PACKETS = 2048
"""How far ahead a viewer's sequence numbers jump when it moves down (`Slot.switch_to`).

Packets lost on the saturated link are not repaired in time, and a receiver waiting for them
would freeze on the thumbnail: aiortc's jitter buffer holds 512 video packets and blocks on a
gap until it overflows; Chromium drops its NACK list and asks for a keyframe past 1,000
missing packets. Beyond both, each drops what it waits for at once and decodes from the
thumbnail's keyframe. The receiver report right after counts the jump as lost (ignored)."""


@dataclass(frozen=True)
class LinkReport:
    """What a viewer reported about its video slot at monotonic time `at` (s).

    `main_bps` is what the speaker's main layer sends now (None if unknown)."""

    at: float
    fraction_lost: float | None = None
    rtt_s: float | None = None
    remb_bps: int | None = None
    main_bps: float | None = None


class LayerPolicy:
    """Main or small for one viewer, with hysteresis both ways (see the module docstring)."""

    def __init__(self, now: float) -> None:
        self.layer = MAIN
        self.switches = 0
        self.reports_seen = 0
        """How many receiver reports of the slot were already judged (the caller's counter)."""
        self._switched_at = now
        self._first_report = False
        self._congested_in_row = 0
        self._clean_since = now
        self._probe_after_s = PROBE_AFTER_S
        self._probing = False
        self._min_rtt_s: float | None = None
        self._last_remb_bps: int | None = None
        self._refresh_at: tuple[float, ...] = ()

    @property
    def probing(self) -> bool:
        """True while a try of the main layer is not yet confirmed."""
        return self._probing

    @property
    def probe_after_s(self) -> float:
        """The clean time on the small layer the next try waits for."""
        return self._probe_after_s

    def congested(self, report: LinkReport) -> bool:
        """Whether this report says the link does not carry what it is sent."""
        lost = report.fraction_lost is not None and report.fraction_lost >= LOSS_CONGESTED
        queued = False
        if report.rtt_s is not None:
            if self._min_rtt_s is None or report.rtt_s < self._min_rtt_s:
                self._min_rtt_s = report.rtt_s
            queued = report.rtt_s - self._min_rtt_s > QUEUE_DELAY_CONGESTED_S
        remb, previous = report.remb_bps, self._last_remb_bps
        self._last_remb_bps = remb if remb is not None else previous
        falling = remb is not None and previous is not None and remb < previous
        starved = (
            self.layer == MAIN
            and falling
            and bool(report.main_bps)
            and remb < REMB_CONGESTED_RATIO * report.main_bps  # type: ignore[operator]
        )
        return lost or queued or starved

    def report(self, report: LinkReport) -> str | None:
        """Judge one new report; returns the new layer if the viewer should switch now."""
        congested = self.congested(report)
        first, self._first_report = self._first_report, False
        if first or report.at - self._switched_at < SETTLE_S:
            return None
        if self.layer == SMALL:
            if congested:
                self._clean_since = report.at  # even the thumbnail struggles: wait longer
            return None
        if not congested:
            self._congested_in_row = 0
            return None
        self._congested_in_row += 1
        if self._probing:
            self._probe_after_s = min(self._probe_after_s * 2, PROBE_AFTER_MAX_S)
            return self._switch(SMALL, report.at)
        if self._congested_in_row >= DOWN_AFTER_REPORTS:
            return self._switch(SMALL, report.at)
        return None

    def keyframe_due(self, now: float) -> bool:
        """True at each of `REFRESH_AFTER_S` after a move down: ask the thumbnail for a
        keyframe."""
        due = bool(self._refresh_at) and now >= self._refresh_at[0]
        if due:
            self._refresh_at = self._refresh_at[1:]
        return due

    def tick(self, now: float) -> str | None:
        """Time passing: try the main layer when due, confirm a try that held."""
        if self.layer == SMALL and now - self._clean_since >= self._probe_after_s:
            self._probing = True
            return self._switch(MAIN, now)
        if self._probing and now - self._switched_at >= PROBE_HOLD_S:
            self._probing = False
            self._probe_after_s = PROBE_AFTER_S
        return None

    def _switch(self, layer: str, now: float) -> str:
        if layer == MAIN:
            # the estimate followed the thumbnail: only a fall from here on counts
            self._last_remb_bps = None
            self._refresh_at = ()
        else:
            self._probing = False
            self._refresh_at = tuple(now + after for after in REFRESH_AFTER_S)
        self.layer = layer
        self.switches += 1
        self._switched_at = now
        self._first_report = True
        self._clean_since = now
        self._congested_in_row = 0
        return layer


def count_layers(policies: Iterable[LayerPolicy]) -> dict[str, int]:
    """How many viewers are on each layer (every layer present, zeros included)."""
    counts = dict.fromkeys(LAYERS, 0)
    for policy in policies:
        counts[policy.layer] += 1
    return counts


class RateMeter:
    """Bitrates of byte counters sampled over time, by key (a source's main layer)."""

    def __init__(self) -> None:
        self._marks: dict[object, tuple[float, int, float | None]] = {}

    def rate(self, key: object, total_bytes: int, now: float) -> float | None:
        """Bits per second of `key` since its previous sample (the last rate if none passed)."""
        mark = self._marks.get(key)
        if mark is None:
            self._marks[key] = (now, total_bytes, None)
            return None
        at, before, last = mark
        if now - at < LAYER_TICK_INTERVAL_S:
            return last
        rate = max(total_bytes - before, 0) * 8 / (now - at)
        self._marks[key] = (now, total_bytes, rate)
        return rate

    def keep(self, keys: Iterable[object]) -> None:
        """Forget every key but these."""
        wanted = set(keys)
        for key in [k for k in self._marks if k not in wanted]:
            del self._marks[key]
