"""Reports benchmark: a year of national weekly briefings plus monthly provincial reviews.

For each database (a fresh SQLite file, and PostgreSQL in a throw-away schema):

1. migrate, import the 34 provinces (3,321 communes/wards + 34 province halls = 3,355 sites);
2. book 2025: a weekly Monday briefing inviting every site (49 after public holidays), and in
   each province a monthly review on the last Friday inviting the province's sites, online in
   odd months and in person in even months; about 205,000 bookings, 184,000 of them online;
3. let the year happen: meeting after meeting, store the SFU events of its online bookings as a
   worker would report them (ingest and egress peers joining and leaving, some sites absent,
   late, dropping and rejoining or leaving early, one stats event each; about 900,000 rows in
   all, inserted in bulk: the HTTP path is tested by tests/reports/test_year.py), then run the
   server loop's attendance round (`Scheduler.store_attendance`) as it runs after a meeting
   ends, timing each round;
4. time the reports, as the API makes them: the service call plus JSON serialisation, or plus
   the XLSX file; for the whole country and for one province (Quảng Ninh), each run `--repeat`
   times (best and median are printed). The very first run is the first report of the year;
5. the same first report as it was before the loop kept attendance current: with nothing
   stored, it computes the year on read. Then check that it stored exactly the rows the loop
   had stored;
6. time the refresh after one more national briefing's events arrive (3,355 new records).

Prints figures and compares them with the goals: ≤ 1 s for JSON (the first report included),
≤ 5 s for XLSX.

    .venv/bin/python bench/reports.py [--postgres-url URL] [--skip-postgres] [--skip-sqlite]
        [--repeat N] [--seed S]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session
from vietnam_provinces import Province

from confbridge import exports, migrate
from confbridge.attendance import service as attendance_service
from confbridge.attendance.models import Attendance, AttendanceRun
from confbridge.bridge.models import SfuEventRecord
from confbridge.db import Database
from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Booking, MeetingMode, Occurrence, Series
from confbridge.reports import export, site_attendance
from confbridge.reports import service as report_service
from confbridge.reports.schemas import GroupBy
from confbridge.scheduler import Scheduler
from confbridge.settings import MeetingSettings, Settings
from confbridge.sites.divisions import hall_name, import_province
from confbridge.sites.models import Site, Unit
from tests.support.database import drop_schema, postgres_schema_url, server_version

T = TypeVar("T")

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TZ = "Asia/Ho_Chi_Minh"
SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnop"
EXPECTED_SITES = 3_355
YEAR = 2025
PROVINCE = "Quảng Ninh"
BRIEFING_MIN, REVIEW_MIN = 90, 120
# "Now" for the reports: the whole year has ended.
NOW = datetime(YEAR + 1, 1, 15, tzinfo=UTC)
EVENT_CHUNK = 5_000
# The loop's round after a meeting: its last `left` events (up to 3 min after the end) are in.
FOLD_AFTER_END = timedelta(minutes=5)
FIRST_REPORT = "online-ratio, country, JSON"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Goals the figures are compared against.
GOAL_JSON_S = 1.0
GOAL_XLSX_S = 5.0

# How sites behave at an online meeting (shares of bookings).
ABSENT, LATE, DROP, EARLY = 0.05, 0.08, 0.05, 0.04


# --------------------------------------------------------------------------- measuring


@dataclass
class Timing:
    wall_s: float
    cpu_s: float
    db_cpu_s: float | None = None  # the PostgreSQL backend's CPU, read from /proc


def proc_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of one process, from /proc/<pid>/stat (None if unreadable)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def timed(action: Callable[[], T], *, backend_pid: int | None = None) -> tuple[T, Timing]:
    db_before = proc_cpu_s(backend_pid)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    result = action()
    wall, cpu = time.perf_counter() - wall_before, time.process_time() - cpu_before
    db_after = proc_cpu_s(backend_pid)
    db_cpu = db_after - db_before if db_before is not None and db_after is not None else None
    return result, Timing(wall, cpu, db_cpu)


def backend_pid(session: Session) -> int | None:
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.scalar(text("SELECT pg_backend_pid()"))


# --------------------------------------------------------------------------- databases


@dataclass
class Target:
    name: str
    url: str
    data_dir: Path


@contextlib.contextmanager
def sqlite_target(work_dir: Path) -> Iterator[Target]:
    path = work_dir / "sqlite" / "confbridge.sqlite3"
    path.parent.mkdir(parents=True)
    yield Target(f"SQLite {sqlite3.sqlite_version}", f"sqlite:///{path}", path.parent)


@contextlib.contextmanager
def postgres_target(base_url: str, work_dir: Path) -> Iterator[Target]:
    """A fresh schema `bench_<random>`, reached through search_path in the URL as the tests
    reach theirs (`tests.support.database`); dropped at the end, even on error."""
    url, schema = postgres_schema_url(base_url, prefix="bench")
    try:
        data_dir = work_dir / "postgres"
        data_dir.mkdir()
        yield Target(f"PostgreSQL {server_version(url)}", url, data_dir)
    finally:
        drop_schema(base_url, schema)


def bench_settings(target: Target) -> Settings:
    return Settings(
        env="test",
        database_url=target.url,
        data_dir=target.data_dir,
        secret_key=SECRET_KEY,
        meetings=MeetingSettings(default_tz=TZ, horizon_days=400),
    )


# --------------------------------------------------------------------------- the year


def import_all_provinces(database: Database) -> int:
    with database.session() as session:
        for province in Province.iter_all():
            import_province(session=session, query=province.name)
        session.commit()
        return session.scalar(select(func.count()).select_from(Site)) or 0


def book_year(database: Database, settings: Settings) -> None:
    """The national weekly briefing and each province's monthly reviews of 2025."""
    # meetings that took place (the year before NOW), recorded as such
    common = {"tz": TZ, "skip_holidays": True, "record_past": True}
    with database.session() as session:
        chair = session.scalar(select(Site.id).where(Site.name == hall_name("Thành phố Hà Nội")))
        all_sites = list(session.scalars(select(Site.id).order_by(Site.id)))
        meeting_service.create(
            session=session,
            series_in={
                "title": "Giao ban trực tuyến toàn quốc",
                "kind": "giao_ban",
                "mode": "online",
                "rrule": f"FREQ=WEEKLY;BYDAY=MO;UNTIL={YEAR}1231",
                "dtstart": f"{YEAR}-01-06T08:00:00",
                "duration_min": BRIEFING_MIN,
                "chair_site_id": chair,
                "site_ids": all_sites,
                **common,
            },
            settings=settings.meetings,
            now=NOW,
        )
        provinces = session.execute(
            select(Unit.id, Unit.name).where(Unit.parent_id.is_(None)).order_by(Unit.id)
        ).all()
        for province_id, name in provinces:
            hall = session.scalar(
                select(Site.id).where(Site.unit_id == province_id).order_by(Site.id).limit(1)
            )
            for mode, months in (
                (MeetingMode.online, "1,3,5,7,9,11"),
                (MeetingMode.in_person, "2,4,6,8,10,12"),
            ):
                meeting_service.create(
                    session=session,
                    series_in={
                        "title": f"Sơ kết tháng {name} ({mode.value})",
                        "kind": "so_ket",
                        "mode": mode.value,
                        "rrule": f"FREQ=MONTHLY;BYMONTH={months};BYDAY=-1FR;COUNT=6",
                        "dtstart": f"{YEAR}-01-01T14:00:00",
                        "duration_min": REVIEW_MIN,
                        "chair_site_id": hall,
                        "unit_ids": [province_id],
                        "tz": TZ,
                        "skip_holidays": False,
                        "record_past": True,
                    },
                    settings=settings.meetings,
                    now=NOW,
                )
        session.commit()


@dataclass
class EventMaker:
    """SFU events of online bookings, as a worker reports them; deterministic for a seed."""

    rng: random.Random
    received_at: datetime
    prefix: str
    count: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, occurrence_id: int, site_id: int, kind: str, at: datetime, peer: str, **payload: Any
    ) -> None:
        self.count += 1
        self.rows.append(
            {
                "id": f"{self.prefix}-{self.count:012d}",
                "type": kind,
                "at": at,
                "node_id": "node-bench",
                "room": f"occ-{occurrence_id}",
                "occurrence_id": occurrence_id,
                "site_id": site_id,
                "peer_id": f"{occurrence_id}-{site_id}-{peer}",
                "direction": "egress" if peer.endswith("e") else "ingest",
                "payload": {
                    "stats": payload.get("stats"),
                    "floor": None,
                    "detail": payload.get("detail", {}),
                },
                "received_at": self.received_at,
            }
        )

    def session(
        self, occ: int, site: int, join_at: datetime, leave_at: datetime, n: int, reason: str
    ) -> None:
        for peer in (f"{n}i", f"{n}e"):
            self.add(occ, site, "joined", join_at, peer)
            self.add(occ, site, "left", leave_at, peer, detail={"reason": reason})

    def site(self, occ: int, site: int, start_at: datetime, end_at: datetime) -> None:
        rng = self.rng
        if rng.random() < ABSENT:
            return
        minutes = timedelta(minutes=1)
        join_at = start_at - rng.uniform(0, 10) * minutes
        if rng.random() < LATE:
            join_at = start_at + rng.uniform(6, 30) * minutes
        leave_at = end_at + rng.uniform(0, 3) * minutes
        reason = "meeting_ended"
        if rng.random() < EARLY:
            leave_at, reason = end_at - rng.uniform(10, 40) * minutes, "deleted"
        if rng.random() < DROP:
            middle = join_at + (leave_at - join_at) / 2
            self.session(occ, site, join_at, middle, 0, "connection failed")
            self.session(occ, site, middle + 3 * minutes, leave_at, 1, reason)
        else:
            self.session(occ, site, join_at, leave_at, 0, reason)
        stats = {
            "rtt_ms": round(rng.uniform(20, 250), 1),
            "loss_ratio": round(rng.uniform(0, 0.05), 4),
            "packets": 1000,
        }
        self.add(occ, site, "stats", join_at + 5 * minutes, "0i", stats=stats)


def _insert_events(session: Session, maker: EventMaker, occurrence: Any) -> int:
    """Make and insert the events of one occurrence's bookings; returns the rows written."""
    occ, start_at, end_at = occurrence
    for site in session.scalars(select(Booking.site_id).where(Booking.occurrence_id == occ)):
        maker.site(occ, site, start_at, end_at)
    written = 0
    for start in range(0, len(maker.rows), EVENT_CHUNK):
        session.execute(SfuEventRecord.__table__.insert(), maker.rows[start : start + EVENT_CHUNK])
        written += len(maker.rows[start : start + EVENT_CHUNK])
    maker.rows = []
    return written


def _occurrences(session: Session, occurrence_ids: list[int]) -> list[Any]:
    query = (
        select(Occurrence.id, Occurrence.start_at, Occurrence.end_at)
        .where(Occurrence.id.in_(occurrence_ids))
        .order_by(Occurrence.start_at)
    )
    return list(session.execute(query))


def store_events(database: Database, occurrence_ids: list[int], seed: int) -> int:
    """Insert the events of these occurrences' online bookings; returns the rows written."""
    maker = EventMaker(random.Random(seed), NOW, f"bench{seed}")
    with database.session() as session:
        written = sum(
            _insert_events(session, maker, o) for o in _occurrences(session, occurrence_ids)
        )
        session.commit()
    return written


@dataclass
class Folds:
    """The loop's attendance rounds over the year: one per online meeting, and a last one."""

    events: int = 0
    events_s: float = 0.0
    rounds: list[tuple[int, Timing]] = field(default_factory=list)  # (records, timing)

    @property
    def records(self) -> int:
        return sum(records for records, _ in self.rounds)


def year_as_it_happens(database: Database, settings: Settings, seed: int) -> Folds:
    """The online meetings' events arrive, then the server loop's round after they end folds
    them (and the in-person meetings ended meanwhile) into the attendance table. Meetings
    that end together (the provinces' reviews) are folded by one round, as on a server."""
    maker = EventMaker(random.Random(seed), NOW, f"bench{seed}")
    scheduler = Scheduler(database, settings)
    folds = Folds()
    with database.session() as session:
        online = _occurrences(session, online_occurrence_ids(session))
    by_end: dict[datetime, list[Any]] = {}
    for occurrence in online:
        by_end.setdefault(occurrence[2], []).append(occurrence)
    for end_at in sorted(by_end):
        started = time.perf_counter()
        with database.session() as session:
            folds.events += sum(_insert_events(session, maker, o) for o in by_end[end_at])
            session.commit()
        folds.events_s += time.perf_counter() - started
        fold_at = end_at + FOLD_AFTER_END
        folds.rounds.append(timed(lambda at=fold_at: scheduler.store_attendance(now=at)))
    folds.rounds.append(timed(lambda: scheduler.store_attendance(now=NOW)))
    return folds


def online_occurrence_ids(session: Session) -> list[int]:
    query = (
        select(Occurrence.id)
        .join(Series, Series.id == Occurrence.series_id)
        .where(Series.mode != MeetingMode.in_person.value)
        .order_by(Occurrence.start_at)
    )
    return list(session.scalars(query))


def add_one_more_briefing(database: Database, settings: Settings) -> list[int]:
    """A national briefing on 5 January of the next year (before NOW), booked for every site."""
    with database.session() as session:
        chair = session.scalar(select(Site.id).where(Site.name == hall_name("Thành phố Hà Nội")))
        all_sites = list(session.scalars(select(Site.id).order_by(Site.id)))
        series = meeting_service.create(
            session=session,
            series_in={
                "title": "Giao ban đầu năm",
                "kind": "giao_ban",
                "mode": "online",
                "rrule": "FREQ=DAILY;COUNT=1",
                "dtstart": f"{YEAR + 1}-01-05T08:00:00",
                "duration_min": BRIEFING_MIN,
                "chair_site_id": chair,
                "site_ids": all_sites,
                "tz": TZ,
                "record_past": True,
                "skip_holidays": False,
            },
            settings=settings.meetings,
            now=NOW,
        )
        session.commit()
        return [o.id for o in series.occurrences]


# --------------------------------------------------------------------------- the reports


@dataclass
class Figures:
    database: str
    sites: int = 0
    bookings: int = 0
    folds: Folds = field(default_factory=Folds)
    stale_at_first_read: int = 0
    # The first report as it was before the loop kept attendance current: computing the year.
    first_report_computing: Timing | None = None
    reports: dict[str, list[Timing]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    incremental: Timing | None = None
    incremental_records: int = 0


Case = Callable[[Session], bytes]


def report_cases(database: Database, settings: Settings) -> dict[str, Case]:
    """Each report as the API makes it: the service call, then JSON or an XLSX file."""
    period = report_service.parse_period(f"{YEAR}-01-01", f"{YEAR}-12-31", tz=TZ, today=NOW.date())
    rules = settings.reports
    with database.session() as session:
        province = report_service.find_unit(session=session, query=PROVINCE)

    def ratio(unit: Unit | None, as_xlsx: bool) -> Callable[[Session], bytes]:
        def run(session: Session) -> bytes:
            scoped = session.get(Unit, unit.id) if unit else None
            report = report_service.online_ratio(
                session=session,
                period=period,
                unit=scoped,
                group_by=GroupBy.month,
                settings=rules,
                now=NOW,
            )
            session.commit()
            if as_xlsx:
                return exports.render(export.online_ratio_document(report, tz=TZ), "xlsx")[0]
            return report.model_dump_json().encode()

        return run

    def attendance(unit: Unit | None, as_xlsx: bool) -> Callable[[Session], bytes]:
        def run(session: Session) -> bytes:
            scoped = session.get(Unit, unit.id) if unit else None
            report = site_attendance.attendance(
                session=session, period=period, unit=scoped, settings=rules, now=NOW
            )
            session.commit()
            if as_xlsx:
                return exports.render(export.attendance_document(report, tz=TZ), "xlsx")[0]
            return report.model_dump_json().encode()

        return run

    return {
        FIRST_REPORT: ratio(None, False),
        f"online-ratio, {PROVINCE}, JSON": ratio(province, False),
        "attendance, country, JSON": attendance(None, False),
        f"attendance, {PROVINCE}, JSON": attendance(province, False),
        "online-ratio, country, XLSX": ratio(None, True),
        f"online-ratio, {PROVINCE}, XLSX": ratio(province, True),
        "attendance, country, XLSX": attendance(None, True),
        f"attendance, {PROVINCE}, XLSX": attendance(province, True),
    }


def report_runs(database: Database, cases: dict[str, Case], figures: Figures, repeat: int) -> None:
    for name, case in cases.items():
        timings = []
        for _ in range(repeat):
            # A fresh session per run, as one API request has.
            with database.session() as session:
                pid = backend_pid(session)
                body, timing = timed(lambda s=session, c=case: c(s), backend_pid=pid)
            timings.append(timing)
        figures.reports[name] = timings
        figures.sizes[name] = len(body)


def bench(target: Target, repeat: int, seed: int) -> Figures:
    settings = bench_settings(target)
    database = Database(settings)
    figures = Figures(target.name)
    try:
        print(f"[{target.name}] migrating, importing 34 provinces ...", flush=True)
        migrate.upgrade(database.engine)
        figures.sites = import_all_provinces(database)
        if figures.sites != EXPECTED_SITES:
            raise SystemExit(f"expected {EXPECTED_SITES} sites, the import made {figures.sites}")
        print(f"[{target.name}] booking {YEAR} ...", flush=True)
        book_year(database, settings)
        with database.session() as session:
            figures.bookings = session.scalar(select(func.count()).select_from(Booking)) or 0
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("ANALYZE"))
                session.commit()
        print(f"[{target.name}] {YEAR} happening: events, then the loop's round ...", flush=True)
        figures.folds = year_as_it_happens(database, settings, seed)
        with database.session() as session:
            figures.stale_at_first_read = len(_stale_in_year(session))
        print(f"[{target.name}] {figures.folds.records:,} attendance records; reports ...")
        cases = report_cases(database, settings)
        report_runs(database, cases, figures, repeat)
        figures.first_report_computing = first_report_computing(database, cases[FIRST_REPORT])
        more = add_one_more_briefing(database, settings)
        store_events(database, more, seed + 1)
        with database.session() as session:
            pid = backend_pid(session)
            figures.incremental_records, figures.incremental = timed(
                lambda: _refresh_year(session, settings, year=YEAR + 1), backend_pid=pid
            )
        with database.session() as session:
            stored = session.scalar(select(func.count()).select_from(Attendance)) or 0
            assert stored == figures.folds.records + figures.incremental_records, stored
    finally:
        database.dispose()
    return figures


def _stale_in_year(session: Session) -> list[int]:
    return attendance_service.stale_occurrence_ids(
        session=session,
        from_at=datetime(YEAR - 1, 12, 31, tzinfo=UTC),
        to_at=datetime(YEAR + 1, 1, 2, tzinfo=UTC),
        now=NOW,
    )


def _stored_rows(session: Session) -> list[tuple[Any, ...]]:
    query = select(Attendance.__table__).order_by(Attendance.occurrence_id, Attendance.site_id)
    return [tuple(row) for row in session.execute(query)]


def first_report_computing(database: Database, case: Case) -> Timing:
    """The first report with nothing stored, as before the loop stored attendance: it computes
    the year on read. What it stores must be what the loop stored, row for row."""
    with database.session() as session:
        kept = _stored_rows(session)
        session.execute(delete(Attendance))
        session.execute(delete(AttendanceRun))
        session.commit()
    with database.session() as session:
        pid = backend_pid(session)
        _body, timing = timed(lambda: case(session), backend_pid=pid)
    with database.session() as session:
        if _stored_rows(session) != kept:
            raise SystemExit("attendance computed on read differs from what the loop stored")
    return timing


def _refresh_year(session: Session, settings: Settings, year: int = YEAR) -> int:
    period = report_service.parse_period(f"{year}-01-01", f"{year}-12-31", tz=TZ, today=NOW.date())
    written = attendance_service.refresh(
        session=session,
        from_at=period.from_at,
        to_at=period.to_at,
        rule=settings.reports.attendance,
        now=NOW,
    )
    session.commit()
    return written


# --------------------------------------------------------------------------- output


def fmt(timing: Timing) -> str:
    text_ = f"{timing.wall_s:.3f} / {timing.cpu_s:.3f}"
    if timing.db_cpu_s is not None:
        text_ += f" (+db {timing.db_cpu_s:.3f})"
    return text_


def print_figures(figures: Figures) -> None:
    print()
    print(f"## {figures.database}")
    folds = figures.folds
    print(
        f"{figures.sites:,} sites, {figures.bookings:,} bookings, {folds.events:,} events "
        f"stored in {folds.events_s:.1f} s, {folds.records:,} attendance records"
    )
    assert figures.first_report_computing is not None and figures.incremental is not None
    # a round after a national briefing folds its 3,355 records (and whatever ended meanwhile)
    national = [t.wall_s for records, t in folds.rounds if records >= EXPECTED_SITES]
    others = [t.wall_s for records, t in folds.rounds if records < EXPECTED_SITES]
    print(
        f"the loop's rounds as the year happened: {len(folds.rounds)} rounds, "
        f"{sum(national + others):.1f} s in all; after a national briefing ({len(national)}): "
        f"median {statistics.median(national):.3f} s, max {max(national):.3f} s; "
        f"others: max {max(others, default=0.0):.3f} s"
    )
    first = figures.reports[FIRST_REPORT][0]
    computing = figures.first_report_computing
    print(
        f"first report of the year ({FIRST_REPORT}), {figures.stale_at_first_read} occurrences "
        f"left to compute: {fmt(first)} s; as before, computing the year on read: "
        f"{fmt(computing)} s ({computing.wall_s / first.wall_s:.0f}× longer; rows identical)"
    )
    verdict = "met" if first.wall_s <= GOAL_JSON_S else "NOT met"
    print(f"first report ≤ {GOAL_JSON_S:g} s: {verdict}")
    print(
        f"one more national briefing ({figures.incremental_records:,} records) folded in, "
        f"wall / CPU s: {fmt(figures.incremental)}"
    )
    print()
    print("| report | first wall s | best wall / CPU s | median wall s | size | goal |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, timings in figures.reports.items():
        best = min(timings, key=lambda t: t.wall_s)
        median = statistics.median(t.wall_s for t in timings)
        goal = GOAL_XLSX_S if name.endswith("XLSX") else GOAL_JSON_S
        verdict = "met" if median <= goal else "NOT met"
        size = figures.sizes[name]
        print(
            f"| {name} | {timings[0].wall_s:.3f} | {fmt(best)} | {median:.3f} "
            f"| {size / 1024:.0f} KiB | ≤ {goal:g} s: {verdict} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU, Python "
        f"{platform.python_version()}, load average {load}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="confbridge-bench-") as work:
        work_dir = Path(work)
        if not args.skip_sqlite:
            with sqlite_target(work_dir) as target:
                results.append(bench(target, args.repeat, args.seed))
                print_figures(results[-1])
        if not args.skip_postgres:
            with postgres_target(args.postgres_url, work_dir) as target:
                results.append(bench(target, args.repeat, args.seed))
                print_figures(results[-1])
    print(json.dumps({"load_average_after": os.getloadavg()}))


if __name__ == "__main__":
    sys.exit(main())
