"""Things the tests build, as plain functions: settings, a province with its sites, users,
series and occurrences, terminals, SFU nodes. Fixtures call these; so do tests that need a
variant, and the benchmarks."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from confbridge.alerts.service import AlertIn, AlertKind, Severity
from confbridge.auth import service as auth_service
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Booking, Occurrence
from confbridge.nodes import placement
from confbridge.nodes import service as node_service
from confbridge.settings import MeetingSettings, Settings
from confbridge.sites import service as site_service
from confbridge.sites.models import Site, Unit, UnitKind
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import NodeHeartbeat, NodeLoad

TEST_SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
PASSWORD = "correct-horse"
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
COMMUNES = ("Xã An Bình", "Xã Phú Lộc", "Xã Tân Hòa")
# The small province's sites by a short name (`make_province`, `province_sites`).
PROVINCE_SITE_NAMES = {
    "hq": "Hội trường UBND tỉnh Thử",
    "p1": "Hội trường UBND Phường Một",
    "p2": "Hội trường UBND Phường Hai",
    "dept": "Phòng họp Sở",
}


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: its database, its data directory, the test secret."""
    return Settings(
        env="test",
        database_url=database_url,
        data_dir=data_dir,
        secret_key=TEST_SECRET,
        **overrides,
    )


def make_province(session: Session) -> Unit:
    """A small province: two wards, a department, a site each (committed)."""
    unit = site_service.create_unit(session=session, name="Tỉnh Thử", kind=UnitKind.province)
    site_service.create_site(session=session, name=PROVINCE_SITE_NAMES["hq"], unit_id=unit.id)
    for name in ("Phường Một", "Phường Hai"):
        ward = site_service.create_unit(
            session=session, name=name, kind=UnitKind.ward, parent_id=unit.id
        )
        site_service.create_site(session=session, name=f"Hội trường UBND {name}", unit_id=ward.id)
    dept = site_service.create_unit(
        session=session, name="Sở Thông tin", kind=UnitKind.department, parent_id=unit.id
    )
    site_service.create_site(session=session, name=PROVINCE_SITE_NAMES["dept"], unit_id=dept.id)
    session.commit()
    return unit


def province_sites(session: Session) -> dict[str, Site]:
    """The sites of `make_province` by a short name: hq, p1, p2, dept."""
    found = {s.name: s for s in session.query(Site).all()}
    return {key: found[name] for key, name in PROVINCE_SITE_NAMES.items()}


def make_commune_province(session: Session) -> dict[str, int]:
    """A province with its hall, a department and three communes with a hall each; site ids
    (and `province_unit`, the province's unit id)."""
    province = site_service.create_unit(session=session, name="Tỉnh Thử", kind=UnitKind.province)
    ids = {
        "hq": site_service.create_site(
            session=session, name="Hội trường UBND tỉnh", unit_id=province.id
        ).id,
        "province_unit": province.id,
    }
    department = site_service.create_unit(
        session=session, name="Sở Nội vụ", kind=UnitKind.department, parent_id=province.id
    )
    ids["dept"] = site_service.create_site(
        session=session, name="Phòng họp Sở Nội vụ", unit_id=department.id
    ).id
    for index, name in enumerate(COMMUNES):
        commune = site_service.create_unit(
            session=session, name=name, kind=UnitKind.commune, parent_id=province.id
        )
        ids[f"c{index}"] = site_service.create_site(
            session=session, name=f"Hội trường UBND {name}", unit_id=commune.id
        ).id
    session.commit()
    return ids


def create_user(
    database: Database, username: str, role: Role | str, password: str = PASSWORD
) -> None:
    """An active user with `role` and a password that needs no change."""
    with database.session() as session:
        auth_service.create(session=session, username=username, password=password, role=Role(role))
        session.commit()


def make_occurrences(session: Session, sites: dict[str, Site], *, count: int) -> list[Occurrence]:
    """`count` daily occurrences of a briefing chaired by `hq`, the first one on now."""
    start = (utcnow() - timedelta(minutes=1)).astimezone(LOCAL_TZ)
    series = meeting_service.create(
        session=session,
        series_in={
            "title": "Giao ban",
            "kind": "giao_ban",
            "mode": "online",
            "rrule": f"FREQ=DAILY;COUNT={count}",
            "dtstart": start.replace(tzinfo=None).isoformat(timespec="minutes"),
            "duration_min": 60,
            "chair_site_id": sites["hq"].id,
            "site_ids": [sites["p1"].id, sites["p2"].id],
            "skip_holidays": False,
        },
        settings=MeetingSettings(),
        now=utcnow(),
    )
    session.commit()
    return list(series.occurrences)


def open_occurrence(
    database: Database,
    settings: Settings,
    sites: Mapping[str, Site | int],
    *,
    invited: tuple[str, ...] = ("p1", "p2"),
    duration_min: int = 60,
    title: str = "Giao ban trực tuyến",
) -> tuple[int, dict[str, str]]:
    """A briefing that started a minute ago (chair hq, with `invited`), and a terminal token
    for each of its sites (by the same short names)."""
    site_ids = {key: site if isinstance(site, int) else site.id for key, site in sites.items()}
    local_start = (utcnow() - timedelta(minutes=1)).astimezone(LOCAL_TZ)
    with database.session() as session:
        series = meeting_service.create(
            session=session,
            series_in={
                "title": title,
                "kind": "giao_ban",
                "mode": "online",
                "rrule": "FREQ=DAILY;COUNT=1",
                "dtstart": local_start.replace(tzinfo=None).isoformat(timespec="minutes"),
                "duration_min": duration_min,
                "chair_site_id": site_ids["hq"],
                "site_ids": [site_ids[key] for key in invited],
                "skip_holidays": False,
            },
            settings=settings.meetings,
            now=utcnow(),
        )
        tokens = {}
        for key in ("hq", *invited):
            site = session.get(Site, site_ids[key])
            assert site is not None
            _terminal, tokens[key] = terminal_service.create_with_token(session=session, site=site)
        session.commit()
        occurrence_id = series.occurrences[0].id
    return occurrence_id, tokens


def move_occurrence(
    database: Database,
    occurrence_id: int,
    start_at: datetime,
    duration: timedelta = timedelta(hours=1),
) -> datetime:
    """Let an occurrence start at `start_at` (seconds matter here) for `duration`; its end."""
    end_at = start_at + duration
    with database.session() as session:
        occurrence = session.get(Occurrence, occurrence_id)
        assert occurrence is not None
        occurrence.start_at, occurrence.end_at = start_at, end_at
        for booking in session.query(Booking).filter_by(occurrence_id=occurrence_id):
            booking.start_at, booking.end_at = start_at, end_at
        session.commit()
    return end_at


def soon(seconds: float) -> datetime:
    """Now plus `seconds`, in whole seconds."""
    return (utcnow() + timedelta(seconds=seconds)).replace(microsecond=0)


def enrol_node(
    database: Database,
    node_id: str = "node-a",
    *,
    allow_loopback: bool = True,
    rotate: bool = False,
) -> dict[str, str]:
    """Enrol an SFU node as an admin would (`rotate`: again, with a new key); the
    Authorization headers of its own key."""
    with database.session() as session:
        _enrolment, key = node_service.enrol(
            session=session,
            node_id=node_id,
            by="test",
            now=utcnow(),
            allow_loopback=allow_loopback,
            rotate=rotate,
        )
        session.commit()
    return {"Authorization": f"Bearer {key}"}


def register_node(
    database: Database,
    node_id: str = "node-a",
    *,
    public_url: str = "http://127.0.0.1:8001",
    internal_url: str | None = None,
) -> None:
    """An SFU node up now, as its heartbeat registers it (joins are placed on it)."""
    with database.session() as session:
        node_service.heartbeat(
            session=session,
            beat=NodeHeartbeat(
                node_id=node_id,
                public_url=public_url,
                internal_url=internal_url or public_url,
                capacity_peers=1000,
            ),
            now=utcnow(),
        )
        session.commit()


def let_node_hold(database: Database, node_id: str, *occurrence_ids: int) -> None:
    """Record that `node_id` held these occurrences' rooms (as placing them would), so that
    it may report their events."""
    with database.session() as session:
        for occurrence_id in occurrence_ids:
            placement.record_host(
                session=session, occurrence_id=occurrence_id, node_id=node_id, now=utcnow()
            )
        session.commit()


def heartbeat(session: Session, node_id: str, at: datetime, spool_events: int = 0) -> None:
    """A node's heartbeat received `at` (committed), with `spool_events` waiting."""
    node_service.heartbeat(
        session=session,
        beat=NodeHeartbeat(
            node_id=node_id,
            public_url="http://127.0.0.1:9001",
            internal_url="http://127.0.0.1:9001",
            capacity_peers=100,
            load=NodeLoad(spool_events=spool_events),
        ),
        now=at,
    )
    session.commit()


def node_down(node_id: str = "a") -> AlertIn:
    """The alert the health loop raises for a silent node."""
    return AlertIn(
        kind=AlertKind.node_down,
        severity=Severity.critical,
        subject=f"node:{node_id}",
        node_id=node_id,
        message=f"Máy chủ {node_id} không còn hoạt động",
        message_en=f"SFU node {node_id} is down",
    )


def book_occurrence(
    database: Database,
    settings: Settings,
    sites: dict[str, Site],
    start_at: datetime,
    *,
    mode: str = "online",
    invited: tuple[str, ...] = ("p1",),
    duration_min: int = 60,
    record_past: bool = False,
) -> int:
    """One occurrence chaired by hq at `start_at` (whole minutes), inviting `invited`
    (`record_past`: a meeting that is over, recorded as having taken place)."""
    local = start_at.astimezone(LOCAL_TZ).replace(tzinfo=None)
    with database.session() as session:
        series = meeting_service.create(
            session=session,
            series_in={
                "title": "Giao ban tuần",
                "kind": "giao_ban",
                "mode": mode,
                "rrule": "FREQ=DAILY;COUNT=1",
                "dtstart": local.isoformat(timespec="minutes"),
                "duration_min": duration_min,
                "chair_site_id": sites["hq"].id,
                "site_ids": [sites[k].id for k in invited],
                "skip_holidays": False,
                "record_past": record_past,
            },
            settings=settings.meetings,
            now=utcnow(),
        )
        session.commit()
        return series.occurrences[0].id
