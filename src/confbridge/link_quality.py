"""One definition of a link's quality, for the IT page, the chair console and the alerts.

A link is judged on its packet loss and its round-trip time (RTT); it is poor above the limits
IT staff set (`alerts.link_loss_ratio`, `alerts.link_rtt_ms`, which also raise the alerts),
fair above the fair limits below them, good otherwise. Nothing reported: no judgement.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

# A link below these is good: what a video call bears without anyone noticing.
FAIR_LOSS_RATIO = 0.01
FAIR_RTT_MS = 150.0


class Quality(StrEnum):
    good = "good"
    fair = "fair"
    poor = "poor"


class LinkSettings(Protocol):
    link_loss_ratio: float
    link_rtt_ms: float


@dataclass(frozen=True)
class LinkLimits:
    """The limits a link is judged by (poor above `poor_*`, fair above `fair_*`)."""

    poor_loss_ratio: float = 0.05
    poor_rtt_ms: float = 400.0
    fair_loss_ratio: float = FAIR_LOSS_RATIO
    fair_rtt_ms: float = FAIR_RTT_MS

    @classmethod
    def from_settings(cls, alerts: LinkSettings) -> LinkLimits:
        """The poor limits IT staff configured; the fair ones never above them."""
        return cls(
            poor_loss_ratio=alerts.link_loss_ratio,
            poor_rtt_ms=alerts.link_rtt_ms,
            fair_loss_ratio=min(FAIR_LOSS_RATIO, alerts.link_loss_ratio),
            fair_rtt_ms=min(FAIR_RTT_MS, alerts.link_rtt_ms),
        )

    def grade(self, loss_ratio: float | None, rtt_ms: float | None) -> Quality | None:
        """The quality of a link with this loss and RTT (None when neither was reported)."""
        if loss_ratio is None and rtt_ms is None:
            return None
        loss, rtt = loss_ratio or 0.0, rtt_ms or 0.0
        if loss > self.poor_loss_ratio or rtt > self.poor_rtt_ms:
            return Quality.poor
        if loss > self.fair_loss_ratio or rtt > self.fair_rtt_ms:
            return Quality.fair
        return Quality.good

    def is_poor(self, loss_ratio: float | None, rtt_ms: float | None) -> bool:
        return self.grade(loss_ratio, rtt_ms) is Quality.poor
