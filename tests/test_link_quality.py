"""One judgement of a link for the IT page, the console and the alerts."""

from __future__ import annotations

from confbridge.link_quality import LinkLimits, Quality
from confbridge.settings import AlertSettings


def test_link_quality_grades_by_loss_and_rtt() -> None:
    limits = LinkLimits()
    assert limits.grade(None, None) is None
    assert limits.grade(0.0, 3.0) is Quality.good
    assert limits.grade(0.02, None) is Quality.fair
    assert limits.grade(None, 200.0) is Quality.fair
    assert limits.grade(0.0, 401.0) is Quality.poor
    assert limits.grade(0.08, 3.0) is Quality.poor
    assert limits.is_poor(0.06, None) and not limits.is_poor(0.05, 400.0)


def test_link_quality_poor_limits_are_the_alerts_settings() -> None:
    limits = LinkLimits.from_settings(AlertSettings(link_loss_ratio=0.1, link_rtt_ms=100.0))
    assert limits.grade(0.08, 10.0) is Quality.fair
    assert limits.grade(0.0, 120.0) is Quality.poor
    # the fair limit never sits above the poor one
    assert limits.fair_rtt_ms == 100.0 and limits.grade(0.0, 90.0) is Quality.good
