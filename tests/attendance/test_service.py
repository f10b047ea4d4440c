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


def replay(
    *events: tuple[str, float, str], rule: AttendanceRule = RULE, media: bool = True
) -> SiteFigures:
    """Events as (type, minutes after the start, peer); figures of the one site.

    With `media`, each connected peer also reports rising packets every half minute, as a
    worker does while the hall's camera and the programme flow; "stats" events in `events`
    report packets that did not rise (a stalled link).
    """
    run = OccurrenceReplay(OccurrenceWindow(1, START, END), [SITE])
    timeline = sorted(events, key=lambda e: e[1])
    packets: dict[str, int] = {}
    connected: set[str] = set()
    last = timeline[0][1] if timeline else 0.0
    for kind, minutes, peer in timeline:
        if media:  # reports between the previous event and this one
            tick = last + 0.5
            while tick <= minutes:
                for name in sorted(connected):
                    packets[name] = packets.get(name, 0) + 50
                    run.feed(SITE, name, "stats", at(tick), packets=packets[name], interval_s=30)
                tick += 0.5
        last = minutes
        if kind == "stats":
            run.feed(SITE, peer, kind, at(minutes), packets=packets.get(peer, 0), interval_s=30)
            continue
        run.feed(SITE, peer, kind, at(minutes), reason=f"{kind}-{peer}")
        if kind == "joined":
            connected.add(peer)
        elif kind == "left":
            connected.discard(peer)
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
    run.feed(SITE, "i", "stats", at(29.8), packets=900, interval_s=10)
    (figures,) = run.figures(RULE, until_at=at(30))
    assert figures.connected_s == 30 * 60 and figures.status is AttendanceStatus.partial
    assert figures.media_s == 20  # two reporting intervals back at most


# --- media: a connection is not attendance ---------------------------------------------------


def test_replay_connected_without_media_is_absent() -> None:
    """An ICE session that carries nothing (no camera, no programme) is not attendance."""
    figures = replay(("joined", 0, "i"), ("left", 100, "i"), media=False)
    assert figures.connected_s == 100 * 60 and figures.media_s == 0
    assert figures.status is AttendanceStatus.absent and figures.first_join_at == at(0)


def test_replay_reports_without_rising_packets_are_no_media() -> None:
    run = OccurrenceReplay(OccurrenceWindow(1, START, END), [SITE])
    run.feed(SITE, "i", "joined", at(0))
    for minute in range(1, 101):
        run.feed(SITE, "i", "stats", at(minute), packets=0, interval_s=60)
    run.feed(SITE, "i", "left", at(100))
    (figures,) = run.figures(RULE, until_at=END)
    assert (figures.media_s, figures.status) == (0, AttendanceStatus.absent)


def test_replay_media_spans_follow_the_reports() -> None:
    """Packets rising from 0 to 50 minutes, stalled from 50 to 70, rising again to 100."""
    run = OccurrenceReplay(OccurrenceWindow(1, START, END), [SITE])
    run.feed(SITE, "i", "joined", at(0))
    packets = 0
    for minute in range(1, 101):
        if not 50 < minute <= 70:
            packets += 100
        run.feed(SITE, "i", "stats", at(minute), packets=packets, interval_s=60)
    run.feed(SITE, "i", "left", at(100))
    (figures,) = run.figures(RULE, until_at=END)
    assert figures.media_s == 80 * 60 and figures.status is AttendanceStatus.present


def test_replay_media_is_credited_two_intervals_back_at_most() -> None:
    """Reports lost on the way: one report of rising packets after 30 silent minutes proves
    a packet, not half an hour of meeting."""
    run = OccurrenceReplay(OccurrenceWindow(1, START, END), [SITE])
    run.feed(SITE, "i", "joined", at(0))
    run.feed(SITE, "i", "stats", at(30), packets=5, interval_s=10)
    run.feed(SITE, "i", "stats", at(40), packets=9)  # no interval given: 10 s by default
    (figures,) = run.figures(RULE, until_at=END)
    assert figures.media_s == 40


def test_replay_media_of_two_peers_is_counted_once() -> None:
    """The hall's camera (ingest) and the programme it receives (egress) flow together."""
    figures = replay(("joined", 0, "i"), ("joined", 0, "e"), ("left", 60, "i"), ("left", 90, "e"))
    assert figures.media_s == 90 * 60 and figures.status is AttendanceStatus.present


def test_replay_reports_of_a_peer_that_left_are_ignored() -> None:
    run = OccurrenceReplay(OccurrenceWindow(1, START, END), [SITE])
    run.feed(SITE, "i", "joined", at(0))
    run.feed(SITE, "i", "left", at(10))
    run.feed(SITE, "i", "stats", at(11), packets=500, interval_s=600)
    (figures,) = run.figures(RULE, until_at=END)
    assert figures.media_s == 0
