"""Migrations: they build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from confbridge import migrate
from confbridge.db import Database
from confbridge.models import metadata
from tests.support.database import TEST_DB_ENV, drop_schema, postgres_schema_url
from tests.support.factories import make_settings


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_migrations_are_at_head(database: Database) -> None:
    assert migrate.current_revision(database.engine) == migrate.head_revision()


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the kind the tests run on (its own schema on PostgreSQL)."""
    base = os.environ.get(TEST_DB_ENV)
    if not base:
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    url, schema = postgres_schema_url(base, prefix="cbmig")
    yield url
    drop_schema(base, schema)


@pytest.mark.integration
def test_migration_0011_gives_existing_series_distinct_numbers_and_pins(
    fresh_url: str, tmp_path: Path
) -> None:
    engine = Database(make_settings(fresh_url, tmp_path)).engine
    migrate.upgrade(engine, "0010")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO units (id, name, kind, created_at) VALUES (1, 'Tỉnh', 'province', :at)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO sites (id, name, unit_id, created_at) VALUES (1, 'Hội trường', 1, :at)"
            ),
            {"at": at},
        )
        for series_id in range(1, 51):
            connection.execute(
                text(
                    "INSERT INTO series (id, title, kind, mode, rrule, dtstart, tz, duration_min,"
                    " chair_site_id, skip_holidays, exdates, materialized_until_at, created_at,"
                    " updated_at) VALUES (:id, 'Giao ban', 'giao_ban', 'online',"
                    " 'FREQ=WEEKLY;BYDAY=MO', :dtstart, 'Asia/Ho_Chi_Minh', 60, 1, false, '[]',"
                    " :at, :at, :at)"
                ),
                {"id": series_id, "dtstart": datetime(2026, 1, 5, 7, 30), "at": at},
            )
            connection.execute(
                text(
                    "INSERT INTO occurrences (series_id, recurrence_at, start_at, end_at, status,"
                    " sequence, updated_at) VALUES (:id, :at, :at, :at, 'scheduled', 0, :at)"
                ),
                {"id": series_id, "at": at},
            )
    migrate.upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT meeting_number, pin FROM series")).all()
        kept = connection.scalar(text("SELECT count(*) FROM occurrences"))
    numbers = [number for number, _pin in rows]
    assert len(rows) == 50 and len(set(numbers)) == 50
    assert kept == 50  # the series' meetings are all still there
    assert all(len(n) == 7 and n.isdigit() and n[0] != "0" for n in numbers)
    assert all(len(pin) == 6 and pin.isdigit() for _number, pin in rows)
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            text("UPDATE series SET meeting_number = :n WHERE id = 2"), {"n": numbers[0]}
        )
    engine.dispose()


def _seed_booking(connection: Connection, at: datetime) -> None:
    """A unit, a site, a series with one occurrence, and the site's booking of it."""
    connection.execute(
        text("INSERT INTO units (id, name, kind, created_at) VALUES (1, 'Tỉnh', 'province', :at)"),
        {"at": at},
    )
    connection.execute(
        text("INSERT INTO sites (id, name, unit_id, created_at) VALUES (1, 'Hội trường', 1, :at)"),
        {"at": at},
    )
    connection.execute(
        text(
            "INSERT INTO series (id, title, kind, mode, rrule, dtstart, tz, duration_min,"
            " chair_site_id, skip_holidays, exdates, materialized_until_at, meeting_number, pin,"
            " created_at, updated_at) VALUES (1, 'Giao ban', 'giao_ban', 'online',"
            " 'FREQ=WEEKLY;BYDAY=MO', :dtstart, 'Asia/Ho_Chi_Minh', 60, 1, false, '[]', :at,"
            " '1234567', '123456', :at, :at)"
        ),
        {"dtstart": datetime(2026, 1, 5, 7, 30), "at": at},
    )
    connection.execute(
        text(
            "INSERT INTO occurrences (id, series_id, recurrence_at, start_at, end_at, status,"
            " sequence, updated_at) VALUES (1, 1, :at, :at, :at, 'scheduled', 0, :at)"
        ),
        {"at": at},
    )
    connection.execute(
        text(
            "INSERT INTO bookings (occurrence_id, site_id, start_at, end_at, active, is_chair)"
            " VALUES (1, 1, :at, :at, true, true)"
        ),
        {"at": at},
    )


def _downgrade(engine: Engine, revision: str) -> None:
    config = migrate.alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _refused(engine: Engine, statement: str) -> bool:
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    except IntegrityError:
        return True
    return False


@pytest.mark.integration
def test_migration_0013_keeps_bookings_and_their_references_both_ways(
    fresh_url: str, tmp_path: Path
) -> None:
    engine = Database(make_settings(fresh_url, tmp_path)).engine
    migrate.upgrade(engine, "0012")
    with engine.begin() as connection:
        _seed_booking(connection, datetime(2026, 1, 5, tzinfo=UTC))
    missing_site = (
        "INSERT INTO bookings (occurrence_id, site_id, start_at, end_at, active, is_chair)"
        " VALUES (1, 99, '2026-01-05', '2026-01-05', true, false)"
    )
    for revision in ("0013", "0012", "0013"):  # up, down and up again
        if revision == "0012":
            _downgrade(engine, revision)
        else:
            migrate.upgrade(engine, revision)
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM bookings")) == 1
        assert _refused(engine, missing_site)
        assert _refused(engine, "DELETE FROM sites WHERE id = 1")
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM occurrences WHERE id = 1"))
        assert connection.scalar(text("SELECT count(*) FROM bookings")) == 0
    engine.dispose()


@pytest.mark.integration
def test_migration_0016_turns_global_roles_into_root_memberships_and_back(
    fresh_url: str, tmp_path: Path
) -> None:
    engine = Database(make_settings(fresh_url, tmp_path)).engine
    migrate.upgrade(engine, "0015")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        for user_id, name, role in ((1, "admin", "admin"), (2, "vanphong", "secretariat")):
            connection.execute(
                text(
                    "INSERT INTO users (id, username, full_name, password_hash, role, active,"
                    " created_at, must_change_password) VALUES (:id, :name, '', 'x', :role,"
                    " true, :at, false)"
                ),
                {"id": user_id, "name": name, "role": role, "at": at},
            )
        connection.execute(
            text(
                "INSERT INTO user_sessions (id, user_id, kind, created_at, expires_at)"
                " VALUES ('s1', 1, 'web', :at, :at)"
            ),
            {"at": at},
        )
    migrate.upgrade(engine, "0016")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT user_id, unit_id, role FROM memberships ORDER BY user_id")
        ).all()
        # dropping the column kept the rows that point at users
        assert connection.scalar(text("SELECT count(*) FROM user_sessions")) == 1
    assert [tuple(r) for r in rows] == [(1, None, "admin"), (2, None, "secretariat")]
    _downgrade(engine, "0015")
    with engine.connect() as connection:
        roles = connection.execute(text("SELECT username, role FROM users ORDER BY id")).all()
    assert [tuple(r) for r in roles] == [("admin", "admin"), ("vanphong", "secretariat")]
    engine.dispose()
