"""Alembic environment: the same Settings and metadata as the application."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import pool

from confbridge.db import UTCDateTime, make_engine
from confbridge.models import metadata

config = context.config


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Instants are plain timestamptz in the schema; UTC handling lives in the Python type.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata,
        render_as_batch=True,  # SQLite can only ALTER by copying the table
        render_item=render_item,
        compare_type=True,
        **kwargs,
    )


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from confbridge.settings import get_settings

        url = get_settings().sqlalchemy_url
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run 'confbridge db upgrade'")
run_migrations()
