"""Bookings' references (occurrence, site) hold without foreign keys, on both databases.

Migration 0013 replaced the two foreign keys of `bookings` by triggers that check a statement's
rows at once; these tests hold them to what the foreign keys did.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from confbridge.db import Database
from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Booking, Occurrence, Series
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow

AT = datetime(2030, 3, 4, 0, 30, tzinfo=UTC)
LOCK_WAIT_S = 10.0


def _book(session: Session, settings: Settings, body: dict[str, Any]) -> Series:
    series = meeting_service.create(
        session=session, series_in=body, settings=settings.meetings, now=utcnow()
    )
    session.commit()
    return series


def _booking_row(occurrence_id: int, site_id: int) -> dict[str, Any]:
    return {
        "occurrence_id": occurrence_id,
        "site_id": site_id,
        "start_at": AT,
        "end_at": AT,
        "active": True,
        "is_chair": False,
    }


def _bookings(session: Session, **where: int) -> int:
    query = select(func.count()).select_from(Booking).filter_by(**where)
    return session.scalar(query) or 0


def _new_site(session: Session, like: Site) -> Site:
    site = Site(name="Hội trường mới", unit_id=like.unit_id)
    session.add(site)
    session.commit()
    return site


def test_references_booking_of_an_unknown_site_is_refused(
    session: Session, settings: Settings, series_body: Callable[..., dict[str, Any]]
) -> None:
    series = _book(session, settings, series_body())
    occurrence_id = series.occurrences[0].id
    missing_site = (session.scalar(select(func.max(Site.id))) or 0) + 1
    with pytest.raises(IntegrityError):
        session.execute(insert(Booking), [_booking_row(occurrence_id, missing_site)])
    session.rollback()
    assert _bookings(session, occurrence_id=occurrence_id) == 2


def test_references_booking_of_an_unknown_occurrence_is_refused(
    session: Session, sites: dict[str, Site]
) -> None:
    missing_occurrence = (session.scalar(select(func.max(Occurrence.id))) or 0) + 1
    rows = [_booking_row(missing_occurrence, sites["p1"].id)]
    with pytest.raises(IntegrityError):
        session.execute(insert(Booking), rows)
    session.rollback()
    assert _bookings(session) == 0


def test_references_rekeying_a_booking_to_an_unknown_site_is_refused(
    session: Session, settings: Settings, series_body: Callable[..., dict[str, Any]]
) -> None:
    series = _book(session, settings, series_body())
    missing_site = (session.scalar(select(func.max(Site.id))) or 0) + 1
    with pytest.raises(IntegrityError):
        session.execute(
            update(Booking)
            .where(Booking.occurrence_id == series.occurrences[0].id)
            .values(site_id=missing_site)
        )
    session.rollback()


def test_references_deleting_occurrences_deletes_their_bookings(
    session: Session, settings: Settings, series_body: Callable[..., dict[str, Any]]
) -> None:
    series = _book(session, settings, series_body())
    first, second = (o.id for o in series.occurrences[:2])
    session.execute(delete(Occurrence).where(Occurrence.id == first))
    session.commit()
    assert _bookings(session, occurrence_id=first) == 0
    assert _bookings(session, occurrence_id=second) == 2
    # the series' own cascade (series -> occurrences) reaches the bookings too
    session.execute(delete(Series).where(Series.id == series.id))
    session.commit()
    assert _bookings(session) == 0


def test_references_a_booked_site_cannot_be_deleted_or_renumbered(
    session: Session,
    settings: Settings,
    sites: dict[str, Site],
    series_body: Callable[..., dict[str, Any]],
) -> None:
    _book(session, settings, series_body())
    booked = sites["p1"].id
    with pytest.raises(IntegrityError):
        session.execute(delete(Site).where(Site.id == booked))
    session.rollback()
    with pytest.raises(IntegrityError):
        session.execute(update(Site).where(Site.id == booked).values(id=booked + 10_000))
    session.rollback()
    unbooked = _new_site(session, sites["p1"])
    session.execute(delete(Site).where(Site.id == unbooked.id))
    session.commit()
    assert session.get(Site, booked) is not None
    assert session.scalar(select(Site.id).where(Site.id == unbooked.id)) is None


def _waiting_for_a_lock(database: Database, pid: int) -> bool:
    with database.engine.connect() as connection:
        query = text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
        return connection.scalar(query, {"pid": pid}) == "Lock"


def _in_thread(action: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # handed to the test, which asserts on it
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def _wait_until_blocked(database: Database, pid: int) -> None:
    deadline = time.monotonic() + LOCK_WAIT_S
    while not _waiting_for_a_lock(database, pid):
        assert time.monotonic() < deadline, "the second transaction never waited for the lock"
        time.sleep(0.05)


@pytest.mark.parametrize("first", ["booking", "deletion"])
def test_references_booking_and_site_deletion_race_keeps_references(
    database: Database,
    settings: Settings,
    sites: dict[str, Site],
    series_body: Callable[..., dict[str, Any]],
    first: str,
) -> None:
    """A site deleted while a booking of it commits: one of the two fails, never both pass."""
    if database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: there is no race to lose")
    with database.session() as setup:
        site_id = _new_site(setup, sites["p1"]).id
        occurrence_id = _book(setup, settings, series_body()).occurrences[0].id
    booking, deletion = database.session(), database.session()
    try:
        pids = {
            name: s.scalar(text("SELECT pg_backend_pid()"))
            for name, s in (("booking", booking), ("deletion", deletion))
        }
        steps: dict[str, Callable[[], None]] = {
            "booking": lambda: booking.execute(
                insert(Booking), [_booking_row(occurrence_id, site_id)]
            ),
            "deletion": lambda: deletion.execute(delete(Site).where(Site.id == site_id)),
        }
        second = "deletion" if first == "booking" else "booking"
        steps[first]()  # holds its lock until commit
        thread, errors = _in_thread(steps[second])
        _wait_until_blocked(database, pids[second])
        {"booking": booking, "deletion": deletion}[first].commit()
        thread.join(LOCK_WAIT_S)
        assert not thread.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], IntegrityError), errors
    finally:
        booking.rollback(), deletion.rollback()
        booking.close(), deletion.close()
    with database.session() as check:
        site_left = check.get(Site, site_id) is not None
        booked = _bookings(check, site_id=site_id)
    # the first one to lock wins: the booking stands and the site stays, or the site is gone
    # and no booking names it
    assert (site_left, booked) == ((True, 1) if first == "booking" else (False, 0))
