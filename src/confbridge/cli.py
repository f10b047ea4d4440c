"""The `confbridge` command."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import OperationalError

from confbridge.db import Database, utcnow
from confbridge.errors import DomainError
from confbridge.settings import ConfigError, Settings, load_settings

app = typer.Typer(
    help="ConfBridge: hội nghị truyền hình trực tuyến / government video-conference bridge.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
sites_app = typer.Typer(help="Units and sites (điểm cầu).", no_args_is_help=True)
schedules_app = typer.Typer(help="Schedules declared in YAML files.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
meetings_app = typer.Typer(help="Meeting series.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sites_app, name="sites")
app.add_typer(schedules_app, name="schedules")
app.add_typer(users_app, name="users")
app.add_typer(meetings_app, name="meetings")

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


def _settings(**overrides: Any) -> Settings:
    return load_settings(**overrides)


def _database(settings: Settings) -> Database:
    return Database(settings)


@app.command()
@clean_errors
def serve(
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port", min=1, max=65535)] = None,
    processes: Annotated[
        int, typer.Option(help="HTTP worker processes (one per core)", min=1, max=64)
    ] = 1,
    access_log: Annotated[bool, typer.Option(help="log a line per HTTP request")] = True,
) -> None:
    """Run the control plane (migrating and seeding a fresh database first)."""
    import uvicorn

    from confbridge.bootstrap import prepare
    from confbridge.local_workers import LocalWorkers
    from confbridge.main import create_app

    settings = _settings()
    database = _database(settings)
    prepare(settings, database, typer.echo)
    application = create_app(settings, database=database, run_scheduler=True)
    listen_host, listen_port = host or settings.host, port or settings.port
    workers = LocalWorkers(settings, control_url=f"http://127.0.0.1:{listen_port}")
    workers.start()
    options: dict[str, Any] = {
        "host": listen_host,
        "port": listen_port,
        "log_level": "info",
        "proxy_headers": True,
        "access_log": access_log,
    }
    try:
        if processes == 1:
            uvicorn.run(application, **options)
        else:
            database.dispose()  # each process opens its own connections
            uvicorn.run(
                "confbridge.main:create_served_app", factory=True, workers=processes, **options
            )
    finally:
        workers.close()


@app.command()
@clean_errors
def sfu(
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port", min=1, max=65535)] = None,
) -> None:
    """Run one SFU worker (WHIP/WHEP); settings from CONFBRIDGE_SFU_* variables."""
    from pydantic import ValidationError

    from sfu.config import WorkerSettings
    from sfu.main import run

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    try:
        settings = WorkerSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        key = ".".join(map(str, first["loc"]))
        fail(f"config error: sfu.{key}: {message}" if key else f"config error: sfu {message}", 2)
        return
    if not settings.grant_public_key_file.is_file():
        fail(
            f"no grant public key at {settings.grant_public_key_file} "
            "(set CONFBRIDGE_SFU_GRANT_PUBLIC_KEY_FILE)"
        )
    run(settings)


@db_app.command("upgrade")
@clean_errors
def db_upgrade() -> None:
    """Apply every pending migration."""
    from confbridge import migrate

    database = _database(_settings())
    migrate.upgrade(database.engine)
    typer.echo(f"database at revision {migrate.current_revision(database.engine)}")


@db_app.command("current")
@clean_errors
def db_current() -> None:
    """Show the database's revision and the code's."""
    from confbridge import migrate

    database = _database(_settings())
    current = migrate.current_revision(database.engine)
    head = migrate.head_revision()
    typer.echo(f"database: {current or 'empty'}; code: {head}")
    if current != head:
        raise typer.Exit(1)


@sites_app.command("import-province")
@clean_errors
def import_province(
    name: Annotated[str, typer.Argument(help="province name, e.g. 'Quảng Ninh', or its code")],
) -> None:
    """Create a province, all its communes/wards and one hall site each (idempotent)."""
    from confbridge import migrate
    from confbridge.sites.divisions import import_province as do_import

    database = _database(_settings())
    migrate.upgrade(database.engine)
    with database.session() as session:
        result = do_import(session=session, query=name)
        session.commit()
        assert result.province is not None
        typer.echo(
            f"{result.province.name}: {result.units_created} unit(s) and "
            f"{result.sites_created} site(s) created, {result.unchanged} unchanged"
        )


@schedules_app.command("apply")
@clean_errors
def schedules_apply(
    file: Annotated[Path, typer.Argument(help="a schedule YAML file")],
    dry_run: Annotated[bool, typer.Option(help="check and report, change nothing")] = False,
) -> None:
    """Create or update the units, sites and series a file declares (idempotent)."""
    from confbridge import migrate
    from confbridge.schedules import service as schedule_service
    from confbridge.schedules.loader import ScheduleError

    settings = _settings()
    database = _database(settings)
    migrate.upgrade(database.engine)
    with database.session() as session:
        try:
            report = schedule_service.apply_file(
                file, session=session, settings=settings, now=utcnow()
            )
        except ScheduleError as exc:
            session.rollback()
            fail(str(exc))
            return
        for line in report.lines():
            typer.echo(line)
        if dry_run:
            session.rollback()
            typer.echo(f"dry run, nothing changed: {report.summary()}")
        else:
            session.commit()
            typer.echo(report.summary())


@users_app.command("create")
@clean_errors
def users_create(
    username: str,
    role: Annotated[str, typer.Option(help="admin, secretariat, it or viewer")],
    full_name: Annotated[str, typer.Option()] = "",
) -> None:
    """Create a user; the password comes from CONFBRIDGE_NEW_PASSWORD or a prompt."""
    from confbridge import migrate
    from confbridge.auth import service as auth_service
    from confbridge.auth.models import Role

    try:
        role_value = Role(role)
    except ValueError:
        fail(f"unknown role {role!r} (admin, secretariat, it, viewer)")
        return
    password = os.environ.get("CONFBRIDGE_NEW_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            fail("no password: set CONFBRIDGE_NEW_PASSWORD or run in a terminal")
        password = getpass.getpass("password: ")
    if len(password) < 8:
        fail("the password must have at least 8 characters")
    database = _database(_settings())
    migrate.upgrade(database.engine)
    with database.session() as session:
        user = auth_service.create(
            session=session,
            username=username,
            password=password,
            role=role_value,
            full_name=full_name,
        )
        auth_service.record(
            session=session, actor="cli", action="user_created", entity="user", entity_id=user.id
        )
        session.commit()
        typer.echo(f"user {username!r} created with role {role_value.value}")


@meetings_app.command("extend")
@clean_errors
def meetings_extend() -> None:
    """Plan open-ended series up to the horizon now (the server does this hourly)."""
    from confbridge.scheduler import Scheduler

    settings = _settings()
    created = Scheduler(_database(settings), settings).extend_horizons()
    typer.echo(f"{created} occurrence(s) planned")


if __name__ == "__main__":
    app()
