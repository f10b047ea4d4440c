"""First start: migrate, create the first admin, seed demo data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from confbridge import migrate
from confbridge.auth import service as auth_service
from confbridge.db import Database
from confbridge.packaged import packaged_path
from confbridge.settings import ConfigError, Settings
from confbridge.sites import service as site_service
from confbridge.sites.models import Unit
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow

SCHEDULES_DIR = "schedules"
DEMO_SCHEDULE_NAME = "ha-long.yaml"
SIGN_IN_PATH = "/sign-in"


def demo_schedule_path(settings: Settings) -> Path | None:
    """The configured demo schedule, else the Hạ Long one shipped with ConfBridge."""
    if settings.demo.schedule_file is not None:
        return settings.demo.schedule_file
    schedules = packaged_path(SCHEDULES_DIR)
    candidate = schedules / DEMO_SCHEDULE_NAME if schedules else None
    return candidate if candidate and candidate.is_file() else None


def check_admin_password(settings: Settings) -> None:
    """Refuse a weak configured first-admin password like any configuration error; also once
    the admin exists, so that a weak password never stays in the configuration unnoticed."""
    problem = auth_service.first_admin_password_problem(settings.admin_password)
    if problem:
        raise ConfigError(f"config error: admin_password (CONFBRIDGE_ADMIN_PASSWORD): {problem}")


def prepare(
    settings: Settings,
    database: Database,
    echo: Callable[[str], None],
    *,
    base_url: str | None = None,
) -> None:
    """Bring the database to the current schema and make a fresh install usable; what is
    shown only once (the admin's password, the demo terminal's token) is echoed in one framed
    block that says where to go next (`base_url`: where the service is reached)."""
    check_admin_password(settings)
    migrate.upgrade(database.engine)
    with database.session() as session:
        generated = auth_service.ensure_first_admin(
            session=session, password=settings.admin_password
        )
        session.commit()
    notes: list[str] = []
    if generated:
        notes += [
            "Đã tạo tài khoản / created user: admin",
            f"mật khẩu dùng một lần / one-time password (shown once): {generated}",
            "(đổi sau khi đăng nhập / change it after signing in)",
        ]
    if settings.demo.enabled:
        demo_notes = seed_demo(settings, database, echo, base_url=base_url)
        notes += [""] * bool(notes and demo_notes) + demo_notes
    if notes:
        echo(first_start_block(notes, base_url=base_url))


def first_start_block(notes: list[str], *, base_url: str | None) -> str:
    """`notes` framed so that they stand out among log lines, with the sign-in page's URL."""
    lines = ["ConfBridge: lần chạy đầu tiên / first start", "", *notes]
    if base_url:
        lines += [
            "",
            f"Tiếp theo / next: đăng nhập / sign in at {base_url}{SIGN_IN_PATH}",
            f"API: {base_url}/docs",
        ]
    width = max(len(line) for line in lines)
    rule = "═" * (width + 2)
    body = [f"║ {line.ljust(width)} ║" for line in lines]
    return "\n".join([f"╔{rule}╗", *body, f"╚{rule}╝"])


def seed_demo(
    settings: Settings,
    database: Database,
    echo: Callable[[str], None],
    *,
    base_url: str | None = None,
) -> list[str]:
    """On an empty database, load the demo schedule and give its chair site a terminal;
    returns the lines to show once (the terminal's token)."""
    from confbridge.schedules import service as schedule_service

    with database.session() as session:
        if (session.scalar(select(func.count()).select_from(Unit)) or 0) > 0:
            return []
        path = demo_schedule_path(settings)
        if path is None:
            echo("demo data: no demo schedule file found; starting empty")
            return []
        report = schedule_service.apply_file(path, session=session, settings=settings, now=utcnow())
        session.commit()
        echo(f"demo data: {path.name}: {report.summary()}")
        first_series = report.first_series_chair_site_id()
        if first_series is not None:
            site = site_service.get_site(session=session, site_id=first_series)
            _terminal, token = terminal_service.create_with_token(session=session, site=site)
            session.commit()
            server = base_url or "http://127.0.0.1:8000"
            return [
                f"demo terminal for '{site.name}'",
                f"token (shown once): {token}",
                f"run it: confbridge terminal --server {server} \\",
                f"          --token {token}",
            ]
    return []
