"""The `confbridge` command."""

from __future__ import annotations

import getpass
import logging.config
import os
import signal
import sys
from collections.abc import Callable
from functools import partial, wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import OperationalError

from confbridge.db import Database
from confbridge.errors import DomainError
from confbridge.settings import ConfigError, Settings, load_settings
from confbridge.timeutil import utcnow

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
report_app = typer.Typer(
    help="Reports (báo cáo): online-meeting ratio and attendance.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(sites_app, name="sites")
app.add_typer(schedules_app, name="schedules")
app.add_typer(users_app, name="users")
app.add_typer(meetings_app, name="meetings")
app.add_typer(report_app, name="report")
terminals_app = typer.Typer(
    help="Terminals (thiết bị đầu cuối) of the sites: create with a pairing code, list, revoke.",
    no_args_is_help=True,
)
app.add_typer(terminals_app, name="terminals")
nodes_app = typer.Typer(
    help="SFU nodes (máy chủ truyền hình): enrol one with its own key, list, revoke.",
    no_args_is_help=True,
)
app.add_typer(nodes_app, name="nodes")

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


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

    from confbridge.bootstrap import check_admin_password, prepare
    from confbridge.local_workers import LocalWorkers
    from confbridge.main import create_app
    from confbridge.private_files import make_process_private
    from confbridge.settings import check_listen_address, config_source
    from confbridge_kernel.logs import log_config, resolve_log_format

    settings = _settings()
    listen_host, listen_port = host or settings.host, port or settings.port
    check_listen_address(settings, listen_host)
    check_admin_password(settings)  # before a line is logged or a file is made
    # decided once, here, and handed to the workers, so that all lines look alike
    settings = settings.model_copy(update={"log_format": resolve_log_format(settings.log_format)})
    logging_config = log_config(settings.log_format, settings.log_level.upper())
    logging.config.dictConfig(logging_config)
    make_process_private(settings.data_dir)
    logging.getLogger("confbridge").info("configuration: %s", config_source())
    database = _database(settings)
    base_url = _reachable_url(settings, listen_host, listen_port)
    prepare(settings, database, typer.echo, base_url=base_url)
    application = create_app(settings, database=database, run_scheduler=True)
    workers = LocalWorkers(
        settings, control_url=f"http://127.0.0.1:{listen_port}", database=database
    )
    options: dict[str, Any] = {
        "host": listen_host,
        "port": listen_port,
        "log_level": settings.log_level,
        "proxy_headers": True,
        # X-Forwarded-* from these peers only (uvicorn trusts loopback unless told otherwise)
        "forwarded_allow_ips": settings.trusted_proxies,
        "access_log": access_log,
        "log_config": logging_config,
    }
    # SIGTERM (systemd, docker stop) ends serve as Ctrl-C does: uvicorn shuts down
    # gracefully, then raises the signal again, which lands in `_Terminated` here, so that
    # the workers are stopped before serve goes.
    signal.signal(signal.SIGTERM, _raise_terminated)
    terminated = False
    try:
        workers.start()
        if processes == 1:
            uvicorn.run(application, **options)
        else:
            database.dispose()  # each process opens its own connections
            uvicorn.run(
                "confbridge.main:create_served_app", factory=True, workers=processes, **options
            )
    except _Terminated:
        terminated = True
    finally:
        workers.close()
    if terminated:  # end as a process stopped by SIGTERM, which is what it is
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


class _Terminated(BaseException):
    """SIGTERM arrived (a BaseException, so that no `except Exception` swallows it)."""


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise _Terminated()


def _reachable_url(settings: Settings, host: str, port: int) -> str:
    """Where a person on this machine reaches `serve` (its public URL when configured)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@app.command()
@clean_errors
def sfu(
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port", min=1, max=65535)] = None,
) -> None:
    """Run one SFU worker (WHIP/WHEP); settings from CONFBRIDGE_SFU_* variables."""
    import asyncio

    from pydantic import ValidationError

    from confbridge.private_files import make_process_private
    from sfu.config import WorkerSettings
    from sfu.grants import GrantKeyUnavailable, GrantVerifier
    from sfu.main import die_with_parent, run

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    try:
        settings = WorkerSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        key = ".".join(map(str, first["loc"]))
        fail(f"config error: sfu.{key}: {message}" if key else f"config error: sfu {message}", 2)
        return
    if settings.parent_pid is not None:
        die_with_parent(settings.parent_pid)  # a worker of `serve`: it goes when serve goes
    if not settings.node_key:
        fail(
            f"config error: sfu.node_key: missing; enrol this node on the control plane "
            f"(`confbridge nodes enroll {settings.node_id}`) and set CONFBRIDGE_SFU_NODE_KEY",
            2,
        )
        return
    # the spool and the fetched key: this worker's user alone reads them
    make_process_private(settings.spool_dir)
    if not settings.grant_public_key_file.is_file():
        # a node on another machine: the key comes from the control plane it registers with
        try:
            asyncio.run(
                GrantVerifier.load(
                    settings.grant_public_key_file,
                    control_url=settings.control_url,
                    node_key=settings.node_key,
                )
            )
        except (GrantKeyUnavailable, ValueError, OSError) as exc:
            fail(
                f"{exc} (set CONFBRIDGE_SFU_GRANT_PUBLIC_KEY_FILE, or CONFBRIDGE_SFU_CONTROL_URL "
                "and CONFBRIDGE_SFU_NODE_KEY)"
            )
            return
        typer.echo(f"fetched the grant public key into {settings.grant_public_key_file}")
    run(settings)


@app.command()
def terminal(
    server: Annotated[
        str,
        typer.Option(
            help="the control plane, e.g. https://hop.example.vn",
            envvar="CONFBRIDGE_TERMINAL_SERVER",
        ),
    ],
    token: Annotated[
        str | None,
        typer.Option(help="the terminal token (cbt_...)", envvar="CONFBRIDGE_TERMINAL_TOKEN"),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="where the token is kept (written after --pair)",
            envvar="CONFBRIDGE_TERMINAL_TOKEN_FILE",
        ),
    ] = None,
    pair: Annotated[
        str | None,
        typer.Option("--pair", help="a pairing code from IT staff, used once to get the token"),
    ] = None,
    camera: Annotated[
        str | None, typer.Option(help="a V4L2 camera, e.g. /dev/video0 (else a test pattern)")
    ] = None,
    microphone: Annotated[
        str | None, typer.Option(help="an ALSA capture device, e.g. hw:1 (else a tone)")
    ] = None,
    video_file: Annotated[
        str | None, typer.Option(help="publish this file (looped) instead of a camera")
    ] = None,
    video_size: Annotated[str, typer.Option(help="camera capture size")] = "640x480",
    relay_only: Annotated[
        bool, typer.Option(help="use TURN relay candidates only (strict firewalls)")
    ] = False,
    host_address: Annotated[
        list[str] | None,
        typer.Option(help="gather ICE candidates on this local address (repeatable)"),
    ] = None,
    join_early_s: Annotated[
        float, typer.Option(help="join this many seconds before the start", min=0)
    ] = 0.0,
    agenda_interval_s: Annotated[
        float, typer.Option(help="read the agenda this often", min=1)
    ] = 30.0,
    heartbeat_interval_s: Annotated[
        float | None, typer.Option(help="default: what the control plane says (30 s)", min=1)
    ] = None,
    backoff_max_s: Annotated[
        float, typer.Option(help="longest wait between two rejoin attempts", min=0.1)
    ] = 8.0,
    log_format: Annotated[str, typer.Option(help="text or json")] = "text",
) -> None:
    """Run a ward-hall terminal: pair once, then join every meeting of its site by itself."""
    import asyncio

    from confbridge.agent.agent import AgentOptions
    from confbridge.agent.client import Revoked
    from confbridge.agent.media import MediaSources
    from confbridge.agent.run import AgentSetupError, run_agent
    from confbridge_kernel.logs import NOISY_MEDIA_LOGGERS, log_config

    if log_format not in ("text", "json"):
        fail(f"--log-format: unknown value {log_format!r} (text or json)", code=2)
    if not server.startswith(("http://", "https://")):
        fail(f"--server must start with http:// or https://, got {server!r}", code=2)
    stored = token_file is not None and token_file.is_file() and token_file.stat().st_size > 0
    if not (token or stored or pair):
        fail("no terminal token: give --token, a --token-file holding one, or --pair CODE")
    # one line per agent event: the libraries' per-request and per-check lines stay out
    logging.config.dictConfig(
        log_config(log_format, "INFO", quiet=NOISY_MEDIA_LOGGERS)  # type: ignore[arg-type]
    )
    options = AgentOptions(
        server=server,
        heartbeat_interval_s=heartbeat_interval_s,
        agenda_interval_s=agenda_interval_s,
        join_early_s=join_early_s,
        relay_only=relay_only,
        backoff_max_s=backoff_max_s,
    )
    media = MediaSources(
        camera=camera, microphone=microphone, video_file=video_file, video_size=video_size
    )
    try:
        asyncio.run(
            run_agent(
                options,
                media,
                token=token,
                token_file=token_file,
                code=pair,
                host_addresses=host_address or [],
            )
        )
    except AgentSetupError as exc:
        fail(str(exc))
    except Revoked as exc:
        # a distinct status: the systemd unit does not restart a revoked terminal
        fail(f"the terminal token was refused: {exc.detail}", code=TERMINAL_REVOKED_EXIT)
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass  # stopped (Ctrl-C, or SIGTERM from systemd) after leaving the meeting


TERMINAL_REVOKED_EXIT = 3


@terminals_app.command("create")
@clean_errors
def terminals_create(
    site: Annotated[int, typer.Option("--site", help="the site's id")],
    name: Annotated[str, typer.Option(help="e.g. 'Hội trường tầng 2'")] = "",
) -> None:
    """Create a terminal for a site and print its one-time pairing code."""
    from confbridge import migrate
    from confbridge.auth import service as auth_service
    from confbridge.terminals import service as terminal_service

    settings = _settings()
    database = _database(settings)
    migrate.upgrade(database.engine)
    with database.session() as session:
        terminal_row, pairing, code = terminal_service.create(
            session=session,
            site_id=site,
            name=name,
            secret_key=settings.secret_key,
            ttl_min=settings.terminals.pairing_code_ttl_min,
            now=utcnow(),
            created_by="cli",
        )
        auth_service.record(
            session=session,
            actor="cli",
            action="terminal_created",
            entity="terminal",
            entity_id=terminal_row.id,
            detail={"site_id": site},
        )
        session.commit()
        typer.echo(
            f"terminal {terminal_row.id} ({terminal_row.name}): pairing code "
            f"{terminal_service.format_code(code)}, valid until "
            f"{pairing.expires_at:%Y-%m-%d %H:%M} UTC"
        )


@terminals_app.command("list")
@clean_errors
def terminals_list(
    site: Annotated[int | None, typer.Option("--site", help="only this site's")] = None,
) -> None:
    """List terminals with their status (online, offline, revoked) and last heartbeat."""
    from confbridge import migrate
    from confbridge.terminals import service as terminal_service

    settings = _settings()
    database = _database(settings)
    migrate.upgrade(database.engine)
    with database.session() as session:
        views, total = terminal_service.list_(
            session=session,
            now=utcnow(),
            offline_after_s=settings.terminals.offline_after_s,
            site_id=site,
            limit=1000,
        )
        for view in views:
            row, state = view.terminal, view.state
            seen = f"{row.last_seen_at:%Y-%m-%d %H:%M:%S} UTC" if row.last_seen_at else "never"
            extra = f", {state.kind} {state.version} at {state.ip}" if state else ""
            typer.echo(
                f"{row.id}\t{view.status.value}\t{row.site.name}\t{row.name}\t"
                f"last seen {seen}{extra}"
            )
        typer.echo(f"{total} terminal(s)")


@terminals_app.command("revoke")
@clean_errors
def terminals_revoke(terminal_id: Annotated[int, typer.Argument(help="the terminal's id")]) -> None:
    """Revoke a terminal: its token stops working at once."""
    from confbridge import migrate
    from confbridge.auth import service as auth_service
    from confbridge.terminals import service as terminal_service

    database = _database(_settings())
    migrate.upgrade(database.engine)
    with database.session() as session:
        row = terminal_service.get(session=session, terminal_id=terminal_id)
        terminal_service.revoke(session=session, terminal=row, now=utcnow())
        auth_service.record(
            session=session,
            actor="cli",
            action="terminal_revoked",
            entity="terminal",
            entity_id=row.id,
        )
        session.commit()
        typer.echo(f"terminal {row.id} ({row.name}) revoked")


@nodes_app.command("enroll")
@clean_errors
def nodes_enroll(
    node_id: Annotated[str, typer.Argument(help="the node's id (CONFBRIDGE_SFU_NODE_ID)")],
    allow_loopback: Annotated[
        bool, typer.Option(help="it runs on this machine and registers 127.0.0.1 URLs")
    ] = False,
    rotate: Annotated[
        bool, typer.Option(help="already enrolled: issue a new key (the old one stops)")
    ] = False,
) -> None:
    """Enrol an SFU node and print its key once (give it to the node as
    CONFBRIDGE_SFU_NODE_KEY)."""
    from confbridge import migrate
    from confbridge.nodes import service as node_service

    database = _database(_settings())
    migrate.upgrade(database.engine)
    with database.session() as session:
        _enrolment, key = node_service.enrol(
            session=session,
            node_id=node_id,
            by="cli",
            now=utcnow(),
            allow_loopback=allow_loopback,
            rotate=rotate,
        )
        session.commit()
    typer.echo(f"node {node_id} enrolled; its key (shown once): {key}")
    typer.echo(f"on the node: CONFBRIDGE_SFU_NODE_ID={node_id} CONFBRIDGE_SFU_NODE_KEY={key}")


@nodes_app.command("list")
@clean_errors
def nodes_list() -> None:
    """List enrolled SFU nodes with their state (never their keys)."""
    from confbridge import migrate
    from confbridge.nodes import service as node_service
    from confbridge.nodes.models import SfuNode

    database = _database(_settings())
    migrate.upgrade(database.engine)
    now = utcnow()
    with database.session() as session:
        enrolments = node_service.list_enrolments(session=session)
        for enrolment in enrolments:
            node = session.get(SfuNode, enrolment.node_id)
            state = node_service.state_of(node, now).value if node else "not registered"
            where = f"\t{node.public_url}" if node else ""
            kind = "local" if enrolment.local else "remote"
            typer.echo(
                f"{enrolment.node_id}\t{state}\t{kind}\tenrolled "
                f"{enrolment.enrolled_at:%Y-%m-%d %H:%M} UTC by {enrolment.enrolled_by}{where}"
            )
        typer.echo(f"{len(enrolments)} node(s)")


@nodes_app.command("revoke")
@clean_errors
def nodes_revoke(node_id: Annotated[str, typer.Argument(help="the node's id")]) -> None:
    """Revoke a node's key: it is refused at once and its rooms move at their next join."""
    from confbridge import migrate
    from confbridge.nodes import service as node_service

    database = _database(_settings())
    migrate.upgrade(database.engine)
    with database.session() as session:
        node_service.revoke(session=session, node_id=node_id, by="cli", now=utcnow())
        session.commit()
    typer.echo(f"node {node_id} revoked")


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
            session=session,
            actor="cli",
            action="user_created",
            entity="user",
            entity_id=user.id,
            detail={"username": user.username, "role": user.role},
        )
        session.commit()
        typer.echo(f"user {username!r} created with role {role_value.value}")


def _change_user(username: str, change: Callable[[Any, Any], str]) -> None:
    """Run `change(session, user)` on a user found by name, commit, and print its line."""
    from confbridge import migrate
    from confbridge.auth import service as auth_service

    database = _database(_settings())
    migrate.upgrade(database.engine)
    with database.session() as session:
        user = auth_service.get_by_username(session=session, username=username)
        if user is None:
            fail(f"no user named {username!r}")
            return
        line = change(session, user)
        session.commit()
        typer.echo(line)


@users_app.command("disable")
@clean_errors
def users_disable(username: str) -> None:
    """Disable a user: its sessions end at once (users are never deleted)."""
    from confbridge.auth import service as auth_service

    def change(session: Any, user: Any) -> str:
        auth_service.update(session=session, user=user, actor="cli", active=False)
        return f"user {username!r} disabled; its sessions have ended"

    _change_user(username, change)


@users_app.command("enable")
@clean_errors
def users_enable(username: str) -> None:
    """Enable a disabled user again."""
    from confbridge.auth import service as auth_service

    def change(session: Any, user: Any) -> str:
        auth_service.update(session=session, user=user, actor="cli", active=True)
        return f"user {username!r} enabled"

    _change_user(username, change)


@users_app.command("set-role")
@clean_errors
def users_set_role(username: str, role: str) -> None:
    """Give a user another role (admin, secretariat, it or viewer)."""
    from confbridge.auth import service as auth_service
    from confbridge.auth.models import Role

    try:
        role_value = Role(role)
    except ValueError:
        fail(f"unknown role {role!r} (admin, secretariat, it, viewer)")
        return

    def change(session: Any, user: Any) -> str:
        auth_service.update(session=session, user=user, actor="cli", role=role_value)
        return f"user {username!r} now has role {role_value.value}"

    _change_user(username, change)


@users_app.command("reset-password")
@clean_errors
def users_reset_password(username: str) -> None:
    """Set a one-time password (printed once), or CONFBRIDGE_NEW_PASSWORD; the user must
    change it at the next sign-in, and its sessions end."""
    from confbridge.auth import service as auth_service

    given = os.environ.get("CONFBRIDGE_NEW_PASSWORD") or None

    def change(session: Any, user: Any) -> str:
        generated = auth_service.reset_password(
            session=session, user=user, actor="cli", password=given
        )
        if generated:
            return f"user {username!r}: one-time password (shown once): {generated}"
        return f"user {username!r}: password set from CONFBRIDGE_NEW_PASSWORD"

    _change_user(username, change)


@meetings_app.command("extend")
@clean_errors
def meetings_extend() -> None:
    """Plan open-ended series up to the horizon now (the server does this hourly)."""
    from confbridge.scheduler import Scheduler

    settings = _settings()
    created = Scheduler(_database(settings), settings).extend_horizons()
    typer.echo(f"{created} occurrence(s) planned")


# --- reports -------------------------------------------------------------------------------------

FromOption = Annotated[
    str | None, typer.Option("--from", help="first local date, e.g. 2026-01-01 (default: 1 Jan)")
]
ToOption = Annotated[
    str | None, typer.Option("--to", help="last local date, included (default: today)")
]
UnitOption = Annotated[
    str | None,
    typer.Option("--unit", help="a unit's name ('Quảng Ninh'), code or id; default: all"),
]
FormatOption = Annotated[
    str, typer.Option("--format", help="table (printed), json, csv or xlsx (needs -o)")
]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="write to this file instead of stdout")
]


# Reports are wide; piped or redirected output is not cut at 80 columns.
REPORT_MIN_WIDTH = 160


def _report_console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=REPORT_MIN_WIDTH)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _report_output(output_format: str, output: Path | None, model: Any, document: Any) -> bool:
    """Write `model` as JSON or `document` as CSV/XLSX; False when a table is to be printed."""
    from confbridge import exports

    if output_format == "table":
        return False
    if output_format not in ("json", "csv", "xlsx"):
        fail(f"--format: unknown value {output_format!r} (table, json, csv or xlsx)")
    if output_format == "xlsx" and output is None:
        fail("--format xlsx needs --output FILE")
    if output_format == "json":
        body = model.model_dump_json(indent=2).encode()
    else:
        body = exports.render(document, output_format)[0]
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        output.write_bytes(body)
        typer.echo(f"written to {output}", err=True)
    return True


def _run_report(
    from_: str | None, to: str | None, unit: str | None, make: Callable[..., R]
) -> tuple[Settings, R, str]:
    """Migrate, then `make(session=, period=, unit=, settings=, now=)` for the period and
    unit asked for; returns the settings, the report and the words for the table's title."""
    from confbridge import migrate
    from confbridge.reports import service as report_service
    from confbridge.timeutil import zone

    settings = _settings()
    tz = settings.meetings.default_tz
    today = utcnow().astimezone(zone(tz)).date()
    period = report_service.parse_period(from_, to, tz=tz, today=today)
    database = _database(settings)
    migrate.upgrade(database.engine)
    with database.session() as session:
        unit_obj = report_service.find_unit(session=session, query=unit) if unit else None
        report = make(
            session=session, period=period, unit=unit_obj, settings=settings.reports, now=utcnow()
        )
        session.commit()  # attendance computed for the report is kept
        scope = unit_obj.name if unit_obj else "toàn bộ"
    return settings, report, f"{scope} — {period.from_date:%d/%m/%Y}–{period.to_date:%d/%m/%Y}"


@report_app.command("online-ratio")
@clean_errors
def report_online_ratio(
    from_: FromOption = None,
    to: ToOption = None,
    unit: UnitOption = None,
    group_by: Annotated[str, typer.Option(help="month, quarter, unit or kind")] = "month",
    output_format: FormatOption = "table",
    output: OutputOption = None,
) -> None:
    """Meetings held online / all held, and communes connected, beside the targets."""
    from rich.table import Table

    from confbridge.reports import export
    from confbridge.reports import service as report_service

    grouping = report_service.parse_group_by(group_by)
    settings, report, scope = _run_report(
        from_, to, unit, partial(report_service.online_ratio, group_by=grouping)
    )
    document = export.online_ratio_document(report, tz=settings.meetings.default_tz)
    if _report_output(output_format, output, report, document):
        return
    table = Table(title=f"Tỷ lệ cuộc họp trực tuyến — {scope}")
    table.add_column("", no_wrap=True)
    # booked figures, then those verified on the bridge (media flowed), which targets judge
    headers = (
        "đã họp",
        "trực\ntuyến",
        "kết\nhợp",
        "trực\ntiếp",
        "tỷ lệ",
        "xác minh:\ntrực tuyến",
        "xác minh:\nkết hợp",
        "xác minh:\ntỷ lệ",
        "xã kết\nnối",
    )
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for target in report.total.targets:
        table.add_column(f"{target.key}\n≥ {target.target:.0%}", justify="right", no_wrap=True)
    for row in [*report.rows, report.total]:
        cells = [
            row.label,
            str(row.held),
            str(row.online),
            str(row.hybrid),
            str(row.in_person),
            _percent(row.ratio),
            str(row.online_verified),
            str(row.hybrid_verified),
            _percent(row.ratio_verified),
            f"{row.communes_connected}/{row.communes}",
        ]
        for target in row.targets:
            mark = "" if target.met is None else " ✓" if target.met else " ✗"
            cells.append(_percent(target.actual) + mark)
        table.add_row(*cells, end_section=row is report.rows[-1] if report.rows else False)
    console = _report_console()
    console.print(table)
    for target in report.total.targets:
        verdict = "—" if target.met is None else "đạt" if target.met else "không đạt"
        console.print(
            f"{target.label_vi} / {target.label_en}: {_percent(target.actual)} "
            f"({target.numerator}/{target.denominator}), chỉ tiêu ≥ {target.target:.0%}: {verdict}",
            soft_wrap=True,
        )


@report_app.command("attendance")
@clean_errors
def report_attendance(
    from_: FromOption = None,
    to: ToOption = None,
    unit: UnitOption = None,
    output_format: FormatOption = "table",
    output: OutputOption = None,
) -> None:
    """Attendance per site: invited, present, partial, absent, late, left early, rate."""
    from rich.table import Table

    from confbridge.reports import export
    from confbridge.reports import service as report_service

    settings, report, scope = _run_report(from_, to, unit, report_service.attendance)
    document = export.attendance_document(report, tz=settings.meetings.default_tz)
    if _report_output(output_format, output, report, document):
        return
    table = Table(title=f"Tỷ lệ tham dự — {scope}")
    table.add_column("điểm cầu", no_wrap=True)
    for header in ("mời", "có mặt", "một phần", "vắng", "điều chỉnh", "muộn", "về sớm", "tỷ lệ"):
        table.add_column(header, justify="right")
    for row in report.rows:
        table.add_row(
            row.site_name,
            str(row.invited),
            str(row.present),
            str(row.partial),
            str(row.absent),
            str(row.corrected),
            str(row.joined_late),
            str(row.left_early),
            _percent(row.rate),
        )
    console = _report_console()
    console.print(table)
    console.print(
        f"{report.occurrences} cuộc họp; {report.present}/{report.invited} lượt có mặt "
        f"({_percent(report.rate)}), {report.partial} một phần, {report.absent} vắng"
    )


if __name__ == "__main__":
    app()
