"""Booking and agenda benchmark: a national weekly briefing for every site, then agendas under load.

For each database (a fresh SQLite file, and PostgreSQL in a throw-away schema):

1. migrate, import the 34 provinces (3,321 communes/wards + 34 province halls = 3,355 sites);
2. book one weekly national briefing for a year inviting every site, in one transaction;
3. try a second series in the same slot (must be refused with `Conflict`), then book a second
   national series at another hour (checked against the bookings of the first);
4. run the real server (`confbridge serve`) on that database and fire
   `GET /api/v1/terminals/me/agenda` with a terminal token under concurrency.

With `--baseline-revision REV` (e.g. 0012, the schema before bookings' foreign keys became
statement-level checks), steps 1–3 also run on a database migrated only to REV, alternating
with the current schema `--rounds` times, so that before and after come from the same run.

Prints figures; it asserts only what must hold for the figures to mean anything.

    .venv/bin/python bench/booking.py [--postgres-url URL] [--skip-postgres] [--skip-sqlite]
        [--skip-agenda] [--baseline-revision REV] [--rounds N]
        [--requests N] [--concurrency C[,C...]] [--load-tool auto|wrk|httpx]
        [--server serve|uvicorn] [--processes N] [--no-access-log]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from vietnam_provinces import Province

from confbridge import migrate
from confbridge.db import Database
from confbridge.errors import Conflict
from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Booking, Occurrence
from confbridge.meetings.schemas import SeriesCreate
from confbridge.settings import MeetingSettings, Settings
from confbridge.sites.divisions import hall_name, import_province
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from tests.support.database import drop_schema, postgres_schema_url, server_version
from tests.support.servers import free_port

T = TypeVar("T")

VENV_BIN = Path(sys.executable).parent
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TZ = "Asia/Ho_Chi_Minh"
HORIZON_DAYS = 365
EXPECTED_SITES = 3_355
BRIEFING_DURATION_MIN = 90
AGENDA_PATH = "/api/v1/terminals/me/agenda"
ADMIN_PASSWORD = "bench-admin-password"
SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnop"

# Goals the figures are compared against.
GOAL_BOOKING_S = 2.0
GOAL_AGENDA_P99_MS = 20.0
GOAL_AGENDA_RPS = 500.0

# Bounds, so that a broken server or tool cannot hang the benchmark.
SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 15.0
WARMUP_REQUESTS = 500
WRK_WARMUP_S = 2.0
WRK_MIN_DURATION_S = 3.0
LOAD_MAX_DURATION_S = 60.0
REQUEST_TIMEOUT_S = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- measuring


@dataclass
class Timing:
    wall_s: float
    cpu_s: float
    db_cpu_s: float | None = None  # the PostgreSQL backend's CPU, read from /proc


def timed(action: Callable[[], T], *, backend_pid: int | None = None) -> tuple[T, Timing]:
    """Run `action`; wall time, this process's CPU time and, if given, a backend's CPU time."""
    db_before = proc_cpu_s(backend_pid) if backend_pid else None
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    result = action()
    wall, cpu = time.perf_counter() - wall_before, time.process_time() - cpu_before
    db_cpu = None
    if backend_pid and db_before is not None:
        after = proc_cpu_s(backend_pid)
        db_cpu = after - db_before if after is not None else None
    return result, Timing(wall, cpu, db_cpu)


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process, from /proc/<pid>/stat (None if unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime field 14 and stime field 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_s(root_pid: int) -> float:
    """CPU seconds of a process and all its live descendants (uvicorn workers, if any)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo, seen = 0.0, [root_pid], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += proc_cpu_s(pid) or 0.0
        todo.extend(children.get(pid, []))
    return total


# --------------------------------------------------------------------------- databases


@dataclass
class Target:
    """One database under test: a name for the report, its URL, the server's data directory."""

    name: str
    url: str
    data_dir: Path


@contextlib.contextmanager
def sqlite_target(work_dir: Path) -> Iterator[Target]:
    path = Path(tempfile.mkdtemp(prefix="sqlite-", dir=work_dir)) / "confbridge.sqlite3"
    yield Target(f"SQLite {sqlite3.sqlite_version}", f"sqlite:///{path}", path.parent)


@contextlib.contextmanager
def postgres_target(base_url: str, work_dir: Path) -> Iterator[Target]:
    """A fresh schema `bench_<random>`, reached through search_path in the URL as the tests
    reach theirs (`tests.support.database`); dropped at the end, even on error."""
    url, schema = postgres_schema_url(base_url, prefix="bench")
    try:
        data_dir = Path(tempfile.mkdtemp(prefix="postgres-", dir=work_dir))
        yield Target(f"PostgreSQL {server_version(url)}", url, data_dir)
    finally:
        drop_schema(base_url, schema)


def bench_settings(target: Target) -> Settings:
    return Settings(
        env="test",
        database_url=target.url,
        data_dir=target.data_dir,
        secret_key=SECRET_KEY,
        meetings=MeetingSettings(default_tz=TZ, horizon_days=HORIZON_DAYS),
    )


def backend_pid(session: Session) -> int | None:
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.scalar(text("SELECT pg_backend_pid()"))


# --------------------------------------------------------------------------- booking


@dataclass
class BookingFigures:
    database: str
    revision: str = "head"
    sites: int = 0
    import_s: float = 0.0
    occurrences: int = 0
    rows: int = 0
    booking: Timing | None = None
    clash_count: int = 0
    clash: Timing | None = None
    second_rows: int = 0
    second: Timing | None = None


def next_monday_local(now: datetime, hour: int) -> datetime:
    local = now.astimezone(ZoneInfo(TZ))
    days = (7 - local.weekday()) % 7 or 7
    return datetime.combine(local.date() + timedelta(days=days), clock_time(hour, 0))


def national_series(site_ids: list[int], chair_site_id: int, *, hour: int) -> SeriesCreate:
    return SeriesCreate(
        title=f"Giao ban trực tuyến toàn quốc {hour:02d}h",
        kind="giao_ban",
        mode="online",
        rrule="FREQ=WEEKLY;BYDAY=MO",
        dtstart=next_monday_local(utcnow(), hour),
        tz=TZ,
        duration_min=BRIEFING_DURATION_MIN,
        chair_site_id=chair_site_id,
        site_ids=site_ids,
    )


def import_all_provinces(database: Database) -> tuple[int, float]:
    started = time.perf_counter()
    with database.session() as session:
        for province in Province.iter_all():
            import_province(session=session, query=province.name)
        session.commit()
        sites = session.scalar(select(func.count()).select_from(Site)) or 0
    return sites, time.perf_counter() - started


def book(session: Session, series_in: SeriesCreate, settings: Settings) -> int:
    """Book a series and commit, as the API does; returns its id."""
    series = meeting_service.create(
        session=session, series_in=series_in, settings=settings.meetings, now=utcnow()
    )
    session.commit()
    return series.id


def refuse(session: Session, series_in: SeriesCreate, settings: Settings) -> int:
    """Book a series that must clash; returns the number of conflicts reported."""
    try:
        book(session, series_in, settings)
    except Conflict as exc:
        session.rollback()
        return int(exc.extra["conflict_count"])
    raise SystemExit("the clashing series was booked: the conflict check is broken")


def bench_booking(target: Target, revision: str = "head") -> BookingFigures:
    """Steps 1–3 on `target`, its schema migrated to `revision`; leaves two national series
    booked for the agenda load."""
    settings = bench_settings(target)
    database = Database(settings)
    figures = BookingFigures(target.name, revision)
    try:
        migrate.upgrade(database.engine, revision)
        figures.sites, figures.import_s = import_all_provinces(database)
        if figures.sites != EXPECTED_SITES:
            raise SystemExit(f"expected {EXPECTED_SITES} sites, the import made {figures.sites}")
        with database.session() as session:
            site_ids = list(session.scalars(select(Site.id).order_by(Site.id)))
            chair_id = session.scalar(
                select(Site.id).where(Site.name == hall_name("Thành phố Hà Nội"))
            )
        assert chair_id is not None
        first = national_series(site_ids, chair_id, hour=8)
        clashing = national_series(site_ids, chair_id, hour=8)
        second = national_series(site_ids, chair_id, hour=14)

        # A fresh session per step, as one API request would have.
        with database.session() as session:
            pid = backend_pid(session)
            first_id, figures.booking = timed(
                lambda: book(session, first, settings), backend_pid=pid
            )
        with database.session() as session:
            pid = backend_pid(session)
            figures.clash_count, figures.clash = timed(
                lambda: refuse(session, clashing, settings), backend_pid=pid
            )
        with database.session() as session:
            pid = backend_pid(session)
            second_id, figures.second = timed(
                lambda: book(session, second, settings), backend_pid=pid
            )
        with database.session() as session:
            figures.occurrences = meeting_service.occurrence_count(
                session=session, series_id=first_id
            )
            figures.rows = series_bookings(session, first_id)
            figures.second_rows = series_bookings(session, second_id)
    finally:
        database.dispose()
    return figures


def series_bookings(session: Session, series_id: int) -> int:
    query = (
        select(func.count())
        .select_from(Booking)
        .join(Occurrence, Occurrence.id == Booking.occurrence_id)
        .where(Occurrence.series_id == series_id)
    )
    return session.scalar(query) or 0


# --------------------------------------------------------------------------- agenda load


@dataclass
class LoadFigures:
    """One closed-loop run against the agenda endpoint."""

    database: str
    tool: str
    server: str
    concurrency: int
    run: LoadRun
    server_cpu_ms_per_request: float
    items: int

    @property
    def client_cpu_ms_per_request(self) -> float:
        return self.run.client_cpu_s * 1000 / max(self.run.requests, 1)


def make_terminal(target: Target) -> tuple[str, int]:
    """A terminal for one commune hall (booked in both series); returns its token, site id."""
    database = Database(bench_settings(target))
    try:
        with database.session() as session:
            site = session.scalars(select(Site).order_by(Site.id.desc()).limit(1)).one()
            _terminal, token = terminal_service.create_with_token(session=session, site=site)
            session.commit()
            return token, site.id
    finally:
        database.dispose()


@dataclass(frozen=True)
class ServerSpec:
    """How the server is started: `confbridge serve`, or the app factory under uvicorn."""

    kind: str  # "serve" or "uvicorn"
    processes: int
    access_log: bool = True  # `serve` logs every request; only uvicorn's CLI can turn it off

    @property
    def label(self) -> str:
        return f"{self.kind}×{self.processes}" + ("" if self.access_log else " no-access-log")

    def command(self, port: int) -> list[str]:
        if self.kind == "serve":
            processes = ["--processes", str(self.processes)] if self.processes > 1 else []
            return [
                str(VENV_BIN / "confbridge"), "serve", "--host", "127.0.0.1", "--port", str(port),
                *processes,
            ]  # fmt: skip
        # The app in several processes, as `serve` could run it: uvicorn's own CLI with the
        # app factory (no background scheduler; it sleeps for an hour between rounds anyway).
        return [
            sys.executable, "-m", "uvicorn", "--factory", "confbridge.main:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.processes),
            "--log-level", "info", "--proxy-headers",
            *([] if self.access_log else ["--no-access-log"]),
        ]  # fmt: skip


@contextlib.contextmanager
def running_server(
    target: Target, log_path: Path, server_spec: ServerSpec
) -> Iterator[tuple[str, int]]:
    """The server on a free loopback port; stopped (SIGINT, then SIGKILL) on exit."""
    port = free_port()
    env = {
        **os.environ,
        "CONFBRIDGE_DATABASE_URL": target.url,
        "CONFBRIDGE_DATA_DIR": str(target.data_dir),
        "CONFBRIDGE_DEMO__ENABLED": "false",
        "CONFBRIDGE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CONFBRIDGE_SECRET_KEY": SECRET_KEY,
        "CONFBRIDGE_MEETINGS__DEFAULT_TZ": TZ,
        # The horizon the series were booked with, so the start-up extension plans nothing.
        "CONFBRIDGE_MEETINGS__HORIZON_DAYS": str(HORIZON_DAYS),
        # No media workers beside the control plane: only the agenda is measured.
        "CONFBRIDGE_SFU__LOCAL_WORKERS": "0",
    }
    command = server_spec.command(port)
    with log_path.open("wb") as log:
        # Own session: on error the whole server process group can be stopped, and only it.
        server = subprocess.Popen(
            command,
            env=env,
            cwd=target.data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_ready(base, server, log_path)
            yield base, server.pid
        finally:
            stop_server(server)


def wait_until_ready(base: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise SystemExit(f"the server exited with {server.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{base}/healthz").status_code == 200:
                    return
            time.sleep(0.2)
    raise SystemExit(f"the server did not answer /healthz within {SERVER_START_TIMEOUT_S:.0f} s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGINT)  # uvicorn's graceful shutdown
    try:
        server.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=SERVER_STOP_TIMEOUT_S)


WRK_SCRIPT = """
-- Report the figures on one parsable line (latencies in microseconds).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass
class LoadRun:
    requests: int
    errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    client_cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def load_with_wrk(
    wrk: str, url: str, token: str, *, duration_s: int, concurrency: int, work_dir: Path
) -> LoadRun:
    """Closed-loop load with wrk for `duration_s` (wrk bounds runs by time, not by count)."""
    threads = max(1, min(2, concurrency))  # two cores: more wrk threads only steal CPU
    script = work_dir / "agenda.lua"
    script.write_text(WRK_SCRIPT)
    command = [
        wrk, f"-t{threads}", f"-c{concurrency}", f"-d{duration_s}s",
        f"--timeout={REQUEST_TIMEOUT_S:.0f}s", "-s", str(script),
        "-H", f"Authorization: Bearer {token}", url,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    values = {k: int(v) for k, v in (part.split("=") for part in line.split()[1:])}
    return LoadRun(
        requests=values["requests"],
        errors=values["errors"],
        duration_s=values["duration_us"] / 1e6,
        p50_ms=values["p50_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        client_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    )


async def _load_with_httpx(
    url: str, token: str, *, requests: int, concurrency: int
) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    remaining = requests
    deadline = time.monotonic() + LOAD_MAX_DURATION_S
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            started = time.perf_counter()
            try:
                response = await client.get(url)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    async with httpx.AsyncClient(
        headers=headers, limits=limits, timeout=REQUEST_TIMEOUT_S
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        duration = time.perf_counter() - started
    return latencies, errors, duration


def load_with_httpx(url: str, token: str, *, requests: int, concurrency: int) -> LoadRun:
    """The fallback: an asyncio httpx client in this process (it competes for the CPU)."""
    cpu_before = time.process_time()
    latencies, errors, duration = asyncio.run(
        _load_with_httpx(url, token, requests=requests, concurrency=concurrency)
    )
    client_cpu = time.process_time() - cpu_before
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return LoadRun(len(latencies), errors, duration, cuts[49] * 1000, cuts[98] * 1000, client_cpu)


def run_load(
    wrk: str | None,
    url: str,
    token: str,
    count: int,
    concurrency: int,
    work_dir: Path,
    rate_hint: float | None,
) -> LoadRun:
    """`count` requests with the httpx client, or wrk for about as long as they should take."""
    if wrk is None:
        return load_with_httpx(url, token, requests=count, concurrency=concurrency)
    seconds = count / rate_hint if rate_hint else WRK_WARMUP_S
    duration_s = max(WRK_MIN_DURATION_S, min(LOAD_MAX_DURATION_S, seconds))
    return load_with_wrk(
        wrk,
        url,
        token,
        duration_s=math.ceil(duration_s),
        concurrency=concurrency,
        work_dir=work_dir,
    )


def bench_agenda(
    target: Target,
    work_dir: Path,
    *,
    requests: int,
    concurrencies: list[int],
    tool: str,
    server_spec: ServerSpec,
) -> list[LoadFigures]:
    """Step 4: the agenda endpoint of a real server under closed-loop load."""
    token, _site_id = make_terminal(target)
    log_path = work_dir / f"server-{target.name.split()[0].lower()}.log"
    wrk = shutil.which("wrk") if tool in {"auto", "wrk"} else None
    if tool == "wrk" and wrk is None:
        raise SystemExit("--load-tool wrk: wrk is not installed (apt-get install -y wrk)")
    tool_name = "wrk" if wrk else "httpx"
    results: list[LoadFigures] = []
    with running_server(target, log_path, server_spec) as (base, server_pid):
        url = base + AGENDA_PATH
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
            response = client.get(url)
            if response.status_code != 200:
                raise SystemExit(f"agenda answered {response.status_code}: {response.text}")
            items = len(response.json()["items"])
            if items == 0:
                raise SystemExit("the terminal's agenda is empty: nothing would be measured")

        for concurrency in concurrencies:
            # Warm connections, pools and threads first; not counted. wrk then runs for about
            # as long as `requests` take at the warm-up's rate (it bounds runs by time).
            warmup = run_load(wrk, url, token, WARMUP_REQUESTS, concurrency, work_dir, None)
            server_before = tree_cpu_s(server_pid)
            measured = run_load(wrk, url, token, requests, concurrency, work_dir, warmup.rps)
            server_cpu_s = tree_cpu_s(server_pid) - server_before
            results.append(
                LoadFigures(
                    database=target.name,
                    tool=tool_name,
                    server=server_spec.label,
                    concurrency=concurrency,
                    run=measured,
                    server_cpu_ms_per_request=server_cpu_s * 1000 / max(measured.requests, 1),
                    items=items,
                )
            )
            print_load(results[-1])
    return results


# --------------------------------------------------------------------------- report


def fmt_timing(timing: Timing | None) -> str:
    if timing is None:
        return "-"
    text_ = f"{timing.wall_s:.2f}/{timing.cpu_s:.2f}"
    return text_ + (f" (+db {timing.db_cpu_s:.2f})" if timing.db_cpu_s is not None else "")


def print_booking(figures: BookingFigures) -> None:
    print(f"\n== {figures.database}: booking (schema at {figures.revision})")
    print(f"  sites imported: {figures.sites} in {figures.import_s:.1f} s")
    print(
        f"  national series: {figures.occurrences} occurrences, {figures.rows:,} bookings, "
        f"wall/CPU {fmt_timing(figures.booking)} s"
    )
    print(
        f"  clashing series refused: {figures.clash_count:,} conflicts, "
        f"wall/CPU {fmt_timing(figures.clash)} s"
    )
    print(
        f"  second national series (another hour): {figures.second_rows:,} bookings, "
        f"wall/CPU {fmt_timing(figures.second)} s"
    )


def print_load(figures: LoadFigures) -> None:
    run = figures.run
    print(
        f"\n== {figures.database}: agenda, {figures.tool} against {figures.server}, "
        f"{figures.concurrency} connections: "
        f"{run.requests:,} requests in {run.duration_s:.1f} s, {run.errors} errors, "
        f"{figures.items} items per answer"
    )
    print(
        f"  p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, {run.rps:,.0f} req/s; "
        f"CPU per request: server {figures.server_cpu_ms_per_request:.2f} ms, "
        f"load tool {figures.client_cpu_ms_per_request:.2f} ms; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_table(bookings: list[BookingFigures], loads: list[LoadFigures]) -> None:
    header = (
        f"{'database':<17} {'schema':>6} {'booking s wall/CPU':>18} {'rows':>9} {'clash s':>8} "
        f"{'2nd s':>6} "
        f"{'conns':>5} {'p50 ms':>7} {'p99 ms':>7} {'req/s':>6} {'srv CPU ms/req':>14}  "
        "load → server"
    )
    print("\n" + header)
    print("-" * len(header))
    for b in bookings:
        assert b.booking is not None and b.clash is not None and b.second is not None
        booking = (
            f"{b.database:<17} {b.revision:>6} {b.booking.wall_s:>9.2f}/{b.booking.cpu_s:<8.2f} "
            f"{b.rows:>9,} "
            f"{b.clash.wall_s:>8.2f} {b.second.wall_s:>6.2f} "
        )
        runs = [x for x in loads if x.database == b.database and b.revision == "head"]
        runs = runs if b is first_head(bookings, b.database) else []
        if not runs:
            print(booking + f"{'-':>5} {'-':>7} {'-':>7} {'-':>6} {'-':>14}  -")
        for i, x in enumerate(runs):
            print(
                (booking if i == 0 else " " * len(booking))
                + f"{x.concurrency:>5} {x.run.p50_ms:>7.2f} {x.run.p99_ms:>7.2f} "
                f"{x.run.rps:>6.0f} {x.server_cpu_ms_per_request:>14.2f}  {x.tool} → {x.server}"
            )
    print_comparison(bookings)
    print("\nagainst the goals:")
    for b in bookings:
        assert b.booking is not None
        print(
            f"  {b.database} (schema at {b.revision}): booking {b.booking.wall_s:.2f} s "
            f"(goal ≤ {GOAL_BOOKING_S:.0f} s: {verdict(b.booking.wall_s <= GOAL_BOOKING_S)})"
        )
        for x in loads:
            if x.database != b.database or b is not first_head(bookings, b.database):
                continue
            print(
                f"  {b.database}, {x.concurrency} connections: agenda p99 {x.run.p99_ms:.1f} ms "
                f"(goal ≤ {GOAL_AGENDA_P99_MS:.0f} ms: "
                f"{verdict(x.run.p99_ms <= GOAL_AGENDA_P99_MS)}) at {x.run.rps:.0f} req/s "
                f"(goal ≥ {GOAL_AGENDA_RPS:.0f}: {verdict(x.run.rps >= GOAL_AGENDA_RPS)}), "
                f"{x.run.errors} errors"
            )


def first_head(bookings: list[BookingFigures], database: str) -> BookingFigures | None:
    """The run on the current schema that the agenda was measured on (the first one)."""
    return next((b for b in bookings if b.database == database and b.revision == "head"), None)


def print_comparison(bookings: list[BookingFigures]) -> None:
    """Medians per schema revision and their ratio, when a baseline revision was run."""
    for database in dict.fromkeys(b.database for b in bookings):
        runs = [b for b in bookings if b.database == database]
        revisions = list(dict.fromkeys(b.revision for b in runs))
        if len(revisions) < 2:
            continue
        print(f"\n{database}, medians of {len(runs) // len(revisions)} runs per schema:")
        national: dict[str, float] = {}
        second: dict[str, float] = {}
        for revision in revisions:
            mine = [(b.booking, b.second) for b in runs if b.revision == revision]
            walls = [first.wall_s for first, _ in mine if first]
            national[revision] = statistics.median(walls)
            second[revision] = statistics.median(s.wall_s for _, s in mine if s)
            db_cpu = statistics.median(first.db_cpu_s or 0.0 for first, _ in mine if first)
            print(
                f"  schema at {revision:>4}: national series {national[revision]:.2f} s "
                f"(range {min(walls):.2f}–{max(walls):.2f}; +db CPU {db_cpu:.2f}), "
                f"second series {second[revision]:.2f} s"
            )
        base = revisions[0]
        print(
            f"  head / {base}: national series {national['head'] / national[base]:.2f}×, "
            f"second series {second['head'] / second[base]:.2f}×"
        )


def booking_plan(baseline: str | None, rounds: int) -> list[str]:
    """Schema revisions to book on, in order: alternating, so drift hits both alike."""
    if baseline is None:
        return ["head"] * rounds
    plan: list[str] = []
    for index in range(rounds):
        plan += [baseline, "head"] if index % 2 == 0 else ["head", baseline]
    return plan


def print_environment() -> None:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print(
        f"machine: {os.cpu_count()} CPU(s) ({cpu}), Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print("times: wall = perf_counter; CPU = this process's user+system time (process_time);")
    print("       +db = the PostgreSQL backend's CPU time; server CPU from /proc, per request")


def concurrency_list(text_: str) -> list[int]:
    values = [int(part) for part in text_.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give connection counts ≥ 1, e.g. 8 or 4,8,16")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-agenda", action="store_true", help="booking figures only")
    parser.add_argument(
        "--requests",
        type=int,
        default=10_000,
        help="agenda requests per run (wrk: the run lasts about as long as these take)",
    )
    parser.add_argument(
        "--concurrency",
        type=concurrency_list,
        default=[8],
        help="open connections; a list (4,8,16) runs once per value",
    )
    parser.add_argument("--load-tool", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument(
        "--server",
        choices=["serve", "uvicorn"],
        default="serve",
        help="`confbridge serve` (default) or the app factory under uvicorn's CLI",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes (uvicorn --workers N; with --server serve, serve --processes N)",
    )
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="with --server uvicorn: no access log line per request",
    )
    parser.add_argument(
        "--baseline-revision",
        help="also book on a schema migrated only to this revision (e.g. 0012), alternating",
    )
    parser.add_argument("--rounds", type=int, default=1, help="booking runs per schema")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.processes < 1 or args.rounds < 1:
        parser.error("--requests, --processes and --rounds must be at least 1")
    if args.no_access_log and args.server != "uvicorn":
        parser.error("--no-access-log needs --server uvicorn (`confbridge serve` always logs)")

    print_environment()
    bookings: list[BookingFigures] = []
    loads: list[LoadFigures] = []
    with tempfile.TemporaryDirectory(prefix="confbridge-bench-") as tmp:
        work_dir = Path(tmp)
        targets: list[Callable[[], contextlib.AbstractContextManager[Target]]] = []
        if not args.skip_sqlite:
            targets.append(lambda: sqlite_target(work_dir))
        if not args.skip_postgres:
            targets.append(lambda: postgres_target(args.postgres_url, work_dir))
        for make_target in targets:
            for revision in booking_plan(args.baseline_revision, args.rounds):
                with make_target() as target:
                    figures = bench_booking(target, revision)
                    bookings.append(figures)
                    print_booking(figures)
                    if args.skip_agenda or figures is not first_head(bookings, figures.database):
                        continue
                    loads += bench_agenda(
                        target,
                        work_dir,
                        requests=args.requests,
                        concurrencies=args.concurrency,
                        tool=args.load_tool,
                        server_spec=ServerSpec(args.server, args.processes, not args.no_access_log),
                    )
    print_table(bookings, loads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
