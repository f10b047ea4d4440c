"""A realistic year (2025) of Quảng Ninh's meetings, driven through the real HTTP API.

Quảng Ninh (the province hall and its 54 communes, imported from the vietnam-provinces data)
holds a weekly online briefing, Mondays 08:00–09:30, chaired by the province hall; the SFU's
join/leave/stats events for it are posted to `POST /api/v1/sfu/events` with the node secret,
as a worker would. Mondays that are public holidays are skipped (27 January: Tết; 7 April:
Hùng Kings; 1 September: National Day), and 28 July is cancelled: 48 briefings are held.

Everyone joins at 07:55 (the chair at 07:50) with an ingest and an egress peer, and leaves at
09:32 (09:35); media flows while a site is connected (its ingest peer reports rising packets
every half hour), except (communes in name order, c0 first):
- c0 is absent from the 3 January briefings and from the January review;
- c1 is absent from the briefings of index 9, 19, 29 and 39;
- c2 joins at 08:20 at briefings 4–8: 70 of 90 minutes, partial and late (5 times);
- c3 joins at 08:10 every week: 80 of 90 minutes, present but late (48 times);
- c4 drops at 08:30 and rejoins at 08:35 at briefing 10: 85 minutes, one reconnect;
- c5 leaves for good at 09:00 at briefing 11: 60 minutes, partial, left early;
- c6's egress peer leaves at 08:30 at briefing 12 while its ingest peer stays: present;
- c7 reports link statistics at briefing 0: RTT 40, 60, 200 ms, loss 1 % and 5 %.

Reviews (sơ kết) on the last Friday of each month, 14:00–16:00: online in odd months, where
every site joins (but c0 in January), in person in even months (no events). Training (tập
huấn): hybrid on 10 March and 10 September, 14:00–17:00, everyone joins; in person on 18 June.

Another province, "Tỉnh Khác", has one ward and holds 4 in-person briefings in January.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from confbridge.auth import service as auth_service
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.sites import service as site_service
from confbridge.sites.divisions import import_province
from confbridge.sites.models import Site, Unit, UnitKind
from confbridge_kernel.contracts import EventType, PeerStats, SfuEvent, room_name
from tests.support.factories import enrol_node, let_node_hold

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NODE_SECRET = "node-secret-for-report-tests-0123456789"
NODE_ID = "node-qn"
EVENT_BATCH = 1000
CANCELLED_DATE = date(2025, 7, 28)
BRIEFING_MIN, REVIEW_MIN, TRAINING_MIN = 90, 120, 180
MEDIA_REPORT_EVERY = timedelta(minutes=30)

Headers = dict[str, str]


def local(day: date, clock: str) -> datetime:
    hour, minute = map(int, clock.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


@dataclass
class Occ:
    id: int
    day: date


@dataclass
class Year:
    province_id: int
    other_province_id: int
    chair_site_id: int
    communes: list[Site]  # in name order: c0, c1, ...
    briefings: list[Occ]  # held, in date order
    cancelled: Occ
    reviews_online: list[Occ]
    reviews_in_person: list[Occ]
    trainings_hybrid: list[Occ]
    training_in_person: Occ
    secretariat: Headers
    viewer: Headers
    events_posted: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def c(self, index: int) -> int:
        return self.communes[index].id


class EventWriter:
    """Builds SFU events with unique ids and posts them in batches, as a worker does."""

    def __init__(self, client: TestClient, database: Database) -> None:
        self.client = client
        self.database = database
        self.node = enrol_node(database, NODE_ID)
        self.pending: list[SfuEvent] = []
        self.count = 0
        self.posted = 0
        self.media_reports = 0

    def add(
        self,
        occurrence_id: int,
        site_id: int,
        kind: EventType,
        at: datetime,
        peer: str,
        *,
        reason: str | None = None,
        stats: PeerStats | None = None,
    ) -> None:
        self.count += 1
        direction = "egress" if peer.endswith("e") else "ingest"
        self.pending.append(
            SfuEvent(
                id=f"year-{self.count:08d}",
                type=kind,
                at=at,
                node_id=NODE_ID,
                room=room_name(occurrence_id),
                occurrence_id=occurrence_id,
                site_id=site_id,
                peer_id=f"{site_id}-{occurrence_id}-{peer}",
                direction=direction,
                stats=stats,
                detail={"reason": reason} if reason else {},
            )
        )
        if len(self.pending) >= EVENT_BATCH:
            self.flush()

    def session(
        self,
        occurrence_id: int,
        site_id: int,
        join_at: datetime,
        leave_at: datetime,
        *,
        reason: str = "meeting_ended",
        round_: int = 0,
    ) -> None:
        """Both peers of a site join at `join_at` and leave at `leave_at`; media flows."""
        for peer in (f"{round_}i", f"{round_}e"):
            self.add(occurrence_id, site_id, EventType.joined, join_at, peer)
        self.media(occurrence_id, site_id, join_at, leave_at, f"{round_}i")
        for peer in (f"{round_}i", f"{round_}e"):
            self.add(occurrence_id, site_id, EventType.left, leave_at, peer, reason=reason)

    def media(
        self, occurrence_id: int, site_id: int, start: datetime, end: datetime, peer: str
    ) -> None:
        """The peer's stats reports, packets rising, every half hour and just before `end`
        (a worker reports every few seconds; fewer reports with a long interval say the
        same and keep the year small)."""
        moments = []
        moment = start + MEDIA_REPORT_EVERY
        while moment < end:
            moments.append(moment)
            moment += MEDIA_REPORT_EVERY
        moments.append(end - timedelta(seconds=1))
        self.media_reports += len(moments)
        for number, when in enumerate(moments, start=1):
            stats = PeerStats(packets=number * 1000, interval_s=MEDIA_REPORT_EVERY.total_seconds())
            self.add(occurrence_id, site_id, EventType.stats, when, peer, stats=stats)

    def flush(self) -> None:
        if not self.pending:
            return
        # the node held these rooms (placed there at their first join)
        let_node_hold(self.database, NODE_ID, *{e.occurrence_id for e in self.pending})
        body = {"events": [json.loads(e.model_dump_json()) for e in self.pending]}
        response = self.client.post("/api/v1/sfu/events", json=body, headers=self.node)
        assert response.status_code == 200, response.text
        assert response.json() == {"stored": len(self.pending), "duplicates": 0}
        self.posted += len(self.pending)
        self.pending = []


def _user(database: Database, client: TestClient, role: Role, name: str) -> Headers:
    with database.session() as session:
        auth_service.create(session=session, username=name, password="correct-horse", role=role)
        session.commit()
    response = client.post(
        "/api/v1/auth/token", data={"username": name, "password": "correct-horse"}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _series(client: TestClient, headers: Headers, **body: Any) -> list[Occ]:
    body.setdefault("skip_holidays", False)
    body.setdefault("record_past", True)  # the year's meetings took place
    created = client.post("/api/v1/series", json=body, headers=headers)
    assert created.status_code == 201, created.text
    listed = client.get(
        f"/api/v1/series/{created.json()['id']}/occurrences?from=2024-12-01&to=2026-02-01",
        headers=headers,
    )
    assert listed.status_code == 200, listed.text
    return [
        Occ(o["id"], datetime.fromisoformat(o["start_at"]).astimezone(TZ).date())
        for o in listed.json()["items"]
    ]


def _units(database: Database) -> tuple[int, int, int, list[Site], int]:
    with database.session() as session:
        result = import_province(session=session, query="Quảng Ninh")
        assert result.province is not None
        province = result.province
        hall = session.query(Site).filter(Site.unit_id == province.id).one()
        communes = sorted(
            (
                site
                for site in session.query(Site).join(Unit, Unit.id == Site.unit_id)
                if site.unit.parent_id == province.id
            ),
            key=lambda s: (s.name, s.id),
        )
        other = site_service.create_unit(session=session, name="Tỉnh Khác", kind=UnitKind.province)
        other_hall = site_service.create_site(
            session=session, name="Hội trường UBND tỉnh Khác", unit_id=other.id
        )
        ward = site_service.create_unit(
            session=session, name="Phường Một", kind=UnitKind.ward, parent_id=other.id
        )
        site_service.create_site(session=session, name="Hội trường phường Một", unit_id=ward.id)
        session.commit()
        return province.id, other.id, hall.id, communes, other_hall.id


def build_year(database: Database, client: TestClient) -> Year:
    """Book the year's meetings and post their events; returns what the tests check."""
    province_id, other_id, chair_id, communes, other_hall_id = _units(database)
    assert len(communes) == 54
    secretariat = _user(database, client, Role.secretariat, "vanphong")
    viewer = _user(database, client, Role.viewer, "xem")
    common = {"chair_site_id": chair_id, "unit_ids": [province_id]}
    planned = _series(
        client,
        secretariat,
        title="Giao ban tuần",
        kind="giao_ban",
        mode="online",
        rrule="FREQ=WEEKLY;BYDAY=MO;UNTIL=20251231",
        dtstart="2025-01-06T08:00:00",
        duration_min=BRIEFING_MIN,
        skip_holidays=True,
        **common,
    )
    assert len(planned) == 49  # 52 Mondays less 27 Jan, 7 Apr and 1 Sep
    cancelled = next(o for o in planned if o.day == CANCELLED_DATE)
    response = client.patch(
        f"/api/v1/occurrences/{cancelled.id}", json={"status": "cancelled"}, headers=secretariat
    )
    assert response.status_code == 200, response.text
    briefings = [o for o in planned if o is not cancelled]
    reviews_online = _series(
        client,
        secretariat,
        title="Sơ kết tháng (trực tuyến)",
        kind="so_ket",
        mode="online",
        rrule="FREQ=MONTHLY;BYMONTH=1,3,5,7,9,11;BYDAY=-1FR;COUNT=6",
        dtstart="2025-01-31T14:00:00",
        duration_min=REVIEW_MIN,
        **common,
    )
    reviews_in_person = _series(
        client,
        secretariat,
        title="Sơ kết tháng (trực tiếp)",
        kind="so_ket",
        mode="in_person",
        rrule="FREQ=MONTHLY;BYMONTH=2,4,6,8,10,12;BYDAY=-1FR;COUNT=6",
        dtstart="2025-02-28T14:00:00",
        duration_min=REVIEW_MIN,
        **common,
    )
    trainings = _series(
        client,
        secretariat,
        title="Tập huấn chuyển đổi số",
        kind="tap_huan",
        mode="hybrid",
        rrule="FREQ=MONTHLY;BYMONTH=3,9;BYMONTHDAY=10;COUNT=2",
        dtstart="2025-03-10T14:00:00",
        duration_min=TRAINING_MIN,
        **common,
    )
    (training_in_person,) = _series(
        client,
        secretariat,
        title="Tập huấn nghiệp vụ văn thư",
        kind="tap_huan",
        mode="in_person",
        rrule="FREQ=DAILY;COUNT=1",
        dtstart="2025-06-18T14:00:00",
        duration_min=TRAINING_MIN,
        **common,
    )
    other = _series(
        client,
        secretariat,
        title="Giao ban tỉnh Khác",
        kind="giao_ban",
        mode="in_person",
        rrule="FREQ=WEEKLY;BYDAY=TU;COUNT=4",
        dtstart="2025-01-07T08:00:00",
        duration_min=60,
        chair_site_id=other_hall_id,
        unit_ids=[other_id],
    )
    assert len(reviews_online) == len(reviews_in_person) == 6 and len(trainings) == 2
    year = Year(
        province_id=province_id,
        other_province_id=other_id,
        chair_site_id=chair_id,
        communes=communes,
        briefings=briefings,
        cancelled=cancelled,
        reviews_online=reviews_online,
        reviews_in_person=reviews_in_person,
        trainings_hybrid=trainings,
        training_in_person=training_in_person,
        secretariat=secretariat,
        viewer=viewer,
    )
    year.extra["other_briefings"] = other
    writer = EventWriter(client, database)
    for index, occurrence in enumerate(briefings):
        _briefing_events(writer, year, index, occurrence)
    for index, occurrence in enumerate(reviews_online):
        for site_id in _everyone(year):
            if index == 0 and site_id == year.c(0):
                continue
            writer.session(
                occurrence.id,
                site_id,
                local(occurrence.day, "13:55"),
                local(occurrence.day, "16:05"),
            )
    for occurrence in trainings:
        for site_id in _everyone(year):
            writer.session(
                occurrence.id,
                site_id,
                local(occurrence.day, "13:55"),
                local(occurrence.day, "17:02"),
            )
    writer.flush()
    year.events_posted = writer.posted
    year.extra["media_reports"] = writer.media_reports
    return year


def _everyone(year: Year) -> Iterator[int]:
    yield year.chair_site_id
    for site in year.communes:
        yield site.id


def _briefing_events(writer: EventWriter, year: Year, index: int, occurrence: Occ) -> None:
    day, occ = occurrence.day, occurrence.id
    writer.session(occ, year.chair_site_id, local(day, "07:50"), local(day, "09:35"))
    for number, site in enumerate(year.communes):
        site_id = site.id
        join_at, leave_at = local(day, "07:55"), local(day, "09:32")
        if (number == 0 and index < 3) or (number == 1 and index in (9, 19, 29, 39)):
            continue  # absent
        if number == 2 and 4 <= index <= 8:
            join_at = local(day, "08:20")
        if number == 3:
            join_at = local(day, "08:10")
        if number == 4 and index == 10:
            writer.session(occ, site_id, join_at, local(day, "08:30"), reason="connection failed")
            writer.session(occ, site_id, local(day, "08:35"), leave_at, round_=1)
            continue
        if number == 5 and index == 11:
            writer.session(occ, site_id, join_at, local(day, "09:00"), reason="deleted")
            continue
        if number == 6 and index == 12:
            writer.add(occ, site_id, EventType.joined, join_at, "0i")
            writer.add(occ, site_id, EventType.joined, join_at, "0e")
            writer.media(occ, site_id, join_at, leave_at, "0i")
            writer.add(occ, site_id, EventType.left, local(day, "08:30"), "0e", reason="deleted")
            writer.add(occ, site_id, EventType.left, leave_at, "0i", reason="meeting_ended")
            continue
        writer.session(occ, site_id, join_at, leave_at)
        if number == 7 and index == 0:
            samples = [(40.0, 0.01, "08:10"), (60.0, 0.05, "08:20"), (200.0, None, "08:30")]
            for rtt, loss, clock in samples:
                writer.add(
                    occ,
                    site_id,
                    EventType.stats,
                    local(day, clock),
                    "0e",  # what the hall's screen receives: the link's round trip
                    stats=PeerStats(rtt_ms=rtt, loss_ratio=loss, packets=1000),
                )
