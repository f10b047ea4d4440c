"""The test database: a fresh PostgreSQL schema per run when asked for, and emptying the
tables between tests (cheaper than migrating again)."""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, text

from confbridge.db import Database
from confbridge.models import metadata
from confbridge.settings import normalise_database_url

TEST_DB_ENV = "CONFBRIDGE_TEST_DATABASE_URL"


class PostgresUnusable(RuntimeError):
    """`CONFBRIDGE_TEST_DATABASE_URL` names a server the tests cannot use."""


def postgres_schema_url(base_url: str, prefix: str = "cbtest") -> tuple[str, str]:
    """A fresh schema `<prefix>_<random>` per run, so parallel runs and old tables never meet:
    the URL that reaches it (through search_path), and its name."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = normalise_database_url(base_url)
    admin = create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        raise PostgresUnusable(f"{TEST_DB_ENV} is set but PostgreSQL is unusable: {exc}") from exc
    finally:
        admin.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", schema


def drop_schema(base_url: str, schema: str) -> None:
    admin = create_engine(normalise_database_url(base_url))
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def server_version(url: str) -> str:
    """PostgreSQL's version number, e.g. `15.20`."""
    engine = create_engine(normalise_database_url(url))
    try:
        with engine.connect() as connection:
            return str(connection.scalar(text("SHOW server_version"))).split()[0]
    finally:
        engine.dispose()


def empty_tables(database: Database) -> None:
    """Delete every row but the booking lock's, as after a fresh migration."""
    tables = [t.name for t in reversed(metadata.sorted_tables) if t.name != "booking_lock"]
    if database.engine.dialect.name == "postgresql":
        with database.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        return
    with database.engine.connect() as connection:
        # Units refer to units; SQLite checks row by row, so switch checks off to empty them.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        for table in tables:
            connection.execute(text(f"DELETE FROM {table}"))
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")


def is_ci() -> bool:
    return bool(os.environ.get("CI"))
