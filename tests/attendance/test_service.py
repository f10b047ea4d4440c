"""Replaying one occurrence's events into per-site attendance figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from confbridge.attendance.models import AttendanceStatus
from confbridge.attendance.service import OccurrenceReplay, OccurrenceWindow, SiteFigures
from confbridge.settings import AttendanceRule

START = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
END = START + timedelta(minutes=100)
SITE = 7
RULE = AttendanceRule()


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def replay(*events: tuple[str, float, str], rule: AttendanceRule = RULE) -> SiteFigures:
    """Events as (type, minutes after the start, peer); figures of the one site."""
    run = OccurrenceReplay(OccurrenceWindow(1, START, END), [SITE])
    for kind, minutes, peer in events:
        run.feed(SITE, peer, kind, at(minutes), reason=f"{kind}-{peer}")
    (figures,) = run.figures(rule, until_at=END)
    return figures


def test_replay_never_joined_is_absent() -> None:
    figures = replay()
    assert figures.status is AttendanceStatus.absent
    assert (figures.connected_s, figures.first_join_at, figures.joined_late) == (0, None, False)


def test_replay_whole_meeting_is_present() -> None:
    figures = replay(("joined", -5, "i"), ("left", 102, "i"))
    assert figures.status is AttendanceStatus.present
    # Only the scheduled meeting counts: joined 5 minutes early, left 2 minutes late.
    assert figures.connected_s == 100 * 60
    assert figures.first_join_at == at(-5) and figures.last_leave_at == at(102)
    assert (figures.joined_late, figures.left_early, figures.reconnects) == (False, False, 0)


def test_replay_site_is_connected_while_any_peer_is() -> None:
    figures = replay(
        ("joined", 0, "i"),
        ("joined", 0, "e"),
        ("left", 30, "e"),
        ("joined", 40, "e"),
        ("left", 100, "i"),
        ("left", 100, "e"),
    )
    assert figures.connected_s == 100 * 60 and figures.reconnects == 0


def test_replay_drop_and_rejoin_counts_a_reconnect() -> None:
    figures = replay(
        ("joined", 0, "i"),
        ("left", 30, "i"),
        ("joined", 40, "i2"),
        ("left", 50, "i2"),
        ("joined", 55, "i3"),
        ("left", 100, "i3"),
    )
    assert figures.reconnects == 2
    assert figures.connected_s == (30 + 10 + 45) * 60
    assert figures.status is AttendanceStatus.present  # 85 of 100 minutes
    assert figures.last_leave_reason == "left-i3"


def test_replay_still_connected_has_no_last_leave() -> None:
    figures = replay(("joined", 3, "i"))
    assert figures.last_leave_at is None and figures.left_early is False
    assert figures.connected_s == 97 * 60


@pytest.mark.parametrize(
    ("minutes_connected", "status"),
    [
        (80, AttendanceStatus.present),
        (79.9, AttendanceStatus.partial),
        (0.5, AttendanceStatus.partial),
    ],
)
def test_replay_present_threshold_is_80_percent(
    minutes_connected: float, status: AttendanceStatus
) -> None:
    figures = replay(("joined", 100 - minutes_connected, "i"), ("left", 100, "i"))
    assert figures.status == status


def test_replay_rule_is_configurable() -> None:
    rule = AttendanceRule(present_min_ratio=0.5, late_grace_min=30, early_leave_grace_min=0)
    figures = replay(("joined", 25, "i"), ("left", 99, "i"), rule=rule)
    assert figures.status is AttendanceStatus.present
    assert (figures.joined_late, figures.left_early) == (False, True)


def test_replay_late_and_early_graces_are_exclusive() -> None:
    on_the_edge = replay(("joined", 5, "i"), ("left", 95, "i"))
    assert (on_the_edge.joined_late, on_the_edge.left_early) == (False, False)
    past_it = replay(("joined", 5.1, "i"), ("left", 94.9, "i"))
    assert (past_it.joined_late, past_it.left_early) == (True, True)


def test_replay_ignores_a_leave_without_its_join_and_repeated_joins() -> None:
    figures = replay(
        ("left", 10, "ghost"),
        ("joined", 20, "i"),
        ("joined", 25, "i"),
        ("left", 60, "i"),
    )
    assert figures.connected_s == 40 * 60 and figures.reconnects == 0
    assert figures.first_join_at == at(20)


def test_replay_link_quality_median_and_worst_loss() -> None:
    run = OccurrenceReplay(OccurrenceWindow(1, START, END), [SITE])
    for rtt, loss in ((30.0, 0.0), (50.0, 0.2), (400.0, None), (45.0, 0.01)):
        run.feed(SITE, "i", "stats", at(10), rtt_ms=rtt, loss_ratio=loss)
    (figures,) = run.figures(RULE, until_at=END)
    assert (figures.rtt_median_ms, figures.loss_max) == (47.5, 0.2)


def test_replay_ignores_sites_not_invited() -> None:
    run = OccurrenceReplay(OccurrenceWindow(1, START, END), [SITE])
    run.feed(SITE + 1, "x", "joined", at(0))
    assert [f.site_id for f in run.figures(RULE, until_at=END)] == [SITE]


def test_replay_running_meeting_counts_up_to_now() -> None:
    run = OccurrenceReplay(OccurrenceWindow(1, START, END), [SITE])
    run.feed(SITE, "i", "joined", at(0))
    (figures,) = run.figures(RULE, until_at=at(30))
    assert figures.connected_s == 30 * 60 and figures.status is AttendanceStatus.partial
