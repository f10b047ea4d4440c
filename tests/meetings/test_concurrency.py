"""Simultaneous bookings of one slot: exactly one wins, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from confbridge.db import Database
from confbridge.errors import Conflict
from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Booking, Series
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from tests.support.servers import ServerThread

CONTENDERS = 8


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    """The app on a real uvicorn server in a thread, so requests really run in parallel."""
    server = ServerThread(app).start()
    yield server.url
    server.stop()


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
