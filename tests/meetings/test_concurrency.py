"""Simultaneous bookings of one slot: exactly one wins, on SQLite and on PostgreSQL."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from confbridge.db import Database
from confbridge.errors import Conflict
from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Booking, Series
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow

CONTENDERS = 8


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    """The app on a real uvicorn server in a thread, so requests really run in parallel."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _booked_series(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Series)) or 0


def test_parallel_http_bookings_one_wins(
    live_server: str,
    secretariat: dict[str, str],
    series_body: Callable[..., dict[str, Any]],
    database: Database,
) -> None:
    barrier = threading.Barrier(CONTENDERS)

    def contend(index: int) -> int:
        body = series_body(title=f"Cuộc họp {index}")
        with httpx.Client(base_url=live_server, headers=secretariat, timeout=60) as http:
            barrier.wait()
            return http.post("/api/v1/series", json=body).status_code

    with ThreadPoolExecutor(CONTENDERS) as pool:
        codes = sorted(pool.map(contend, range(CONTENDERS)))
    assert codes == [201] + [409] * (CONTENDERS - 1)
    assert _booked_series(database) == 1


def test_parallel_service_bookings_one_wins(
    database: Database,
    settings: Settings,
    sites: dict[str, Site],
    series_body: Callable[..., dict[str, Any]],
) -> None:
    """The same race below HTTP: separate sessions, separate connections."""
    barrier = threading.Barrier(CONTENDERS)

    def contend(index: int) -> str:
        body = series_body(title=f"Cuộc họp {index}")
        with database.session() as session:
            barrier.wait()
            try:
                meeting_service.create(
                    session=session, series_in=body, settings=settings.meetings, now=utcnow()
                )
                session.commit()
                return "booked"
            except Conflict:
                session.rollback()
                return "refused"

    with ThreadPoolExecutor(CONTENDERS) as pool:
        outcomes = sorted(pool.map(contend, range(CONTENDERS)))
    assert outcomes == ["booked"] + ["refused"] * (CONTENDERS - 1)
    with database.session() as session:
        per_site = session.execute(
            select(Booking.site_id, func.count()).group_by(Booking.site_id)
        ).all()
    assert sorted(n for _, n in per_site) == [8, 8]
