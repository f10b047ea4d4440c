"""Migrations: they build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from confbridge import migrate
from confbridge.db import Database
from confbridge.models import metadata


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_migrations_are_at_head(database: Database) -> None:
    assert migrate.current_revision(database.engine) == migrate.head_revision()
