"""The health loop: silent nodes, growing spools and bad links become alerts, and clear."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from confbridge.alerts import service as alert_service
from confbridge.alerts.models import Alert
from confbridge.alerts.service import AlertKind
from confbridge.bridge import events as event_service
from confbridge.db import Database
from confbridge.monitor import Monitor
from confbridge.settings import AlertSettings
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import EventType, PeerStats, SfuEvent
from tests.support.factories import heartbeat


def open_alerts(session: Session, kind: AlertKind) -> list[Alert]:
    rows, _ = alert_service.list_(session=session, open_only=True, kind=kind, limit=50, offset=0)
    return rows


def test_monitor_node_down_then_back(database: Database) -> None:
    monitor = Monitor(database, AlertSettings(webhook_url="http://127.0.0.1:9/hook"))
    start = utcnow()
    with database.session() as session:
        heartbeat(session, "a", start)
    monitor.check(start + timedelta(seconds=10))
    with database.session() as session:
        assert open_alerts(session, AlertKind.node_down) == []
    monitor.check(start + timedelta(seconds=16))
    monitor.check(start + timedelta(seconds=21))  # still down: no second alert
    with database.session() as session:
        (alert,) = open_alerts(session, AlertKind.node_down)
        assert alert.node_id == "a" and alert.delivery_state == "pending"
        assert "a" in alert.message and alert.message_en.startswith("SFU node a is down")
        heartbeat(session, "a", start + timedelta(seconds=25))
    monitor.check(start + timedelta(seconds=26))
    with database.session() as session:
        assert open_alerts(session, AlertKind.node_down) == []
        resolved = session.get(Alert, alert.id)
        assert resolved is not None and resolved.resolved_at is not None


def test_monitor_spool_growing(database: Database) -> None:
    monitor = Monitor(database, AlertSettings(spool_events=100))
    now = utcnow()
    with database.session() as session:
        heartbeat(session, "a", now, spool_events=150)
    monitor.check(now)
    with database.session() as session:
        (alert,) = open_alerts(session, AlertKind.spool_growing)
        assert alert.details == {"spool_events": 150} and alert.delivery_state == "none"
        heartbeat(session, "a", now, spool_events=3)
    monitor.check(now)
    with database.session() as session:
        assert open_alerts(session, AlertKind.spool_growing) == []


def report(session: Session, at: datetime, site_id: int, loss: float, rtt_ms: float = 40) -> None:
    event = SfuEvent(
        id=uuid.uuid4().hex,
        type=EventType.stats,
        at=at,
        node_id="a",
        room="occ-7",
        occurrence_id=7,
        site_id=site_id,
        peer_id=f"peer-{site_id}",
        direction="egress",
        stats=PeerStats(loss_ratio=loss, rtt_ms=rtt_ms, packets=1000),
    )
    event_service.store_events(session=session, events=[event])
    session.commit()


def test_monitor_bad_link_for_30_s_raises_and_clears(database: Database) -> None:
    monitor = Monitor(database, AlertSettings())
    start = utcnow() - timedelta(minutes=2)
    with database.session() as session:
        # site 1: good, then 8 % loss reported every 10 s; site 2: a single bad report
        report(session, start, site_id=1, loss=0.0)
        for step in range(1, 4):
            report(session, start + timedelta(seconds=10 * step), site_id=1, loss=0.08)
        report(session, start + timedelta(seconds=30), site_id=2, loss=0.0, rtt_ms=900)
    monitor.check(start + timedelta(seconds=31))
    with database.session() as session:
        assert open_alerts(session, AlertKind.link_quality) == []  # bad for 30 s, not more
        report(session, start + timedelta(seconds=40), site_id=1, loss=0.08)
    monitor.check(start + timedelta(seconds=41))
    with database.session() as session:
        (alert,) = open_alerts(session, AlertKind.link_quality)
        assert (alert.occurrence_id, alert.site_id) == (7, 1)
        assert alert.details["loss_ratio"] == 0.08 and alert.details["bad_for_s"] == 40
        assert "8%" in alert.message_en
        report(session, start + timedelta(seconds=50), site_id=1, loss=0.01)
    monitor.check(start + timedelta(seconds=51))
    with database.session() as session:
        assert open_alerts(session, AlertKind.link_quality) == []


def test_monitor_rtt_counts_and_a_site_that_left_clears(database: Database) -> None:
    monitor = Monitor(database, AlertSettings(link_bad_for_s=20))
    start = utcnow() - timedelta(minutes=5)
    with database.session() as session:
        for step in range(4):
            report(session, start + timedelta(seconds=10 * step), site_id=3, loss=0, rtt_ms=650)
    monitor.check(start + timedelta(seconds=31))
    with database.session() as session:
        (alert,) = open_alerts(session, AlertKind.link_quality)
        assert alert.site_id == 3 and "650 ms" in alert.message_en
    # no report any more (the site left): the alert closes
    monitor.check(start + timedelta(minutes=4))
    with database.session() as session:
        assert open_alerts(session, AlertKind.link_quality) == []


def test_monitor_readiness_before_a_meeting(database: Database, sites: dict) -> None:
    """30 min before a meeting an invited hall without a terminal online is alerted; the alert
    resolves when its terminal reports, and at the end; in-person meetings are left alone."""
    from confbridge.auth.models import Terminal
    from confbridge.settings import Settings, TerminalSettings
    from confbridge.sites.models import Site
    from tests.support.factories import book_occurrence

    settings = Settings(env="test", secret_key="x" * 40)
    monitor = Monitor(database, AlertSettings(), TerminalSettings(offline_after_s=90))
    now = utcnow().replace(second=0, microsecond=0) + timedelta(days=1)
    start = now + timedelta(minutes=40)
    occurrence_id = book_occurrence(database, settings, sites, start, invited=("p1", "p2"))
    book_occurrence(database, settings, sites, start + timedelta(hours=2), mode="in_person")
    with database.session() as session:
        terminal_ids = {}
        for key in ("hq", "p1"):
            site = session.get(Site, sites[key].id)
            terminal_ids[key] = terminal_service.create_with_token(session=session, site=site)[0].id
        session.commit()

    def seen(key: str, at: datetime) -> None:
        with database.session() as session:
            terminal = session.get(Terminal, terminal_ids[key])
            assert terminal is not None
            terminal.last_seen_at = at
            session.commit()

    def open_sites() -> set[int]:
        with database.session() as session:
            return {a.site_id for a in open_alerts(session, AlertKind.terminal_offline)}

    seen("hq", now)
    monitor.check(now)  # 40 min ahead: not yet
    assert open_sites() == set()
    check_at = start - timedelta(minutes=29)
    seen("hq", check_at - timedelta(seconds=10))
    seen("p1", check_at - timedelta(seconds=91))  # silent too long
    monitor.check(check_at)
    # p1 offline, p2 has no terminal at all; hq is online
    assert open_sites() == {sites["p1"].id, sites["p2"].id}
    with database.session() as session:
        alerts = {a.site_id: a for a in open_alerts(session, AlertKind.terminal_offline)}
        # p2 never had a terminal: nothing "lost its connection" there
        assert alerts[sites["p2"].id].message_en.startswith("Site ")
        assert "has no terminal" in alerts[sites["p2"].id].message_en
        assert "mất kết nối" not in alerts[sites["p2"].id].message
        assert alerts[sites["p2"].id].details["no_terminal"] is True
        assert alerts[sites["p1"].id].message_en.startswith("No terminal of site")
        assert "mất kết nối" in alerts[sites["p1"].id].message
        assert alerts[sites["p1"].id].details["no_terminal"] is False
        assert alerts[sites["p1"].id].occurrence_id == occurrence_id
    seen("p1", check_at + timedelta(minutes=1))
    monitor.check(check_at + timedelta(minutes=1))
    assert open_sites() == {sites["p2"].id}
    # during the meeting it stays open; after the end it resolves
    monitor.check(start + timedelta(minutes=5))
    assert open_sites() == {sites["p2"].id}
    monitor.check(start + timedelta(minutes=61))
    assert open_sites() == set()
    # the in-person meeting two hours later raises nothing, although p2 is still offline
    monitor.check(start + timedelta(hours=2) - timedelta(minutes=10))
    assert open_sites() == set()


def test_monitor_readiness_leaves_room_systems_to_the_sip_check(
    database: Database, sites: dict
) -> None:
    """A site whose room system dials in (a `sip_uri`, no terminal) gets no
    `terminal_offline`; a hall beside it without a terminal does, and an alert left open for
    the site before it had a room system resolves."""
    from confbridge.settings import Settings, TerminalSettings
    from confbridge.sites.models import Site
    from tests.support.factories import book_occurrence

    settings = Settings(env="test", secret_key="x" * 40)
    monitor = Monitor(database, AlertSettings(), TerminalSettings(offline_after_s=90))
    start = utcnow().replace(second=0, microsecond=0) + timedelta(days=1)
    book_occurrence(database, settings, sites, start, invited=("p1", "p2", "dept"))

    def give_room_system(key: str) -> None:
        with database.session() as session:
            site = session.get(Site, sites[key].id)
            assert site is not None
            site.sip_uri = f"sip:phonghop@{key}.example.vn"
            session.commit()

    def open_sites() -> set[int]:
        with database.session() as session:
            return {a.site_id for a in open_alerts(session, AlertKind.terminal_offline)}

    give_room_system("dept")
    before = start - timedelta(minutes=20)
    monitor.check(before)
    assert open_sites() == {sites["hq"].id, sites["p1"].id, sites["p2"].id}
    give_room_system("p2")
    monitor.check(before + timedelta(minutes=1))
    assert open_sites() == {sites["hq"].id, sites["p1"].id}


def test_monitor_a_dead_nodes_sessions_end_at_its_last_heartbeat(database: Database) -> None:
    monitor = Monitor(database, AlertSettings())
    start = utcnow() - timedelta(minutes=5)

    def session_event(type_: EventType, peer: str, at: datetime, node: str = "a") -> SfuEvent:
        return SfuEvent(
            id=uuid.uuid4().hex,
            type=type_,
            at=at,
            node_id=node,
            room="occ-9",
            occurrence_id=9,
            site_id=int(peer[-1]),
            peer_id=peer,
            direction="ingest",
        )

    with database.session() as session:
        heartbeat(session, "a", start + timedelta(seconds=30))
        event_service.store_events(
            session=session,
            events=[
                session_event(EventType.joined, "peer-1", start),
                session_event(EventType.joined, "peer-2", start),
                session_event(EventType.left, "peer-2", start + timedelta(seconds=10)),
                session_event(EventType.joined, "peer-3", start, node="b"),
            ],
        )
        session.commit()
    monitor.check(start + timedelta(seconds=50))
    monitor.check(start + timedelta(seconds=60))  # once only
    with database.session() as session:
        rows, _ = event_service.list_events(
            session=session, occurrence_id=9, type_=EventType.left, limit=10, offset=0
        )
    ended = [(r.peer_id, r.at, r.payload["detail"]) for r in rows]
    assert ended == [
        ("peer-2", start + timedelta(seconds=10), {}),
        ("peer-1", start + timedelta(seconds=30), {"reason": "node_down"}),
    ]
