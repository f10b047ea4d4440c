"""What every `confbridge` command shares: one-line failures, the configuration, and a
session on the migrated database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import typer
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from confbridge.db import Database
from confbridge.errors import DomainError
from confbridge.settings import ConfigError, Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}" if not message.startswith("config error") else message, err=True)
    raise typer.Exit(code)


def clean_errors(func: F) -> F:
    """Turn expected failures into one line on stderr and a non-zero exit, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            fail(str(exc), code=2)
        except DomainError as exc:
            fail(exc.message)
        except OperationalError as exc:
            fail(f"cannot use the database: {str(exc.orig).strip().splitlines()[0]}")

    return wrapper  # type: ignore[return-value]


def current_settings(**overrides: Any) -> Settings:
    """The configuration (file and environment), as the server would read it."""
    return load_settings(**overrides)


def open_database(settings: Settings) -> Database:
    return Database(settings)


@contextmanager
def migrated_session(settings: Settings | None = None) -> Iterator[Session]:
    """A session on the database of `settings` (else of the configuration), brought to the
    code's schema first, as the server would do at its start."""
    from confbridge import migrate

    database = open_database(settings or current_settings())
    migrate.upgrade(database.engine)
    with database.session() as session:
        yield session
