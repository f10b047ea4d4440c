"""First start: migrate, create the first admin, seed demo data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from confbridge import migrate
from confbridge.auth import service as auth_service
from confbridge.db import Database, utcnow
from confbridge.settings import ConfigError, Settings
from confbridge.sites import service as site_service
from confbridge.sites.models import Unit

REPO_SCHEDULES = Path(__file__).resolve().parents[2] / "schedules"
DEMO_SCHEDULE_NAME = "ha-long.yaml"


def demo_schedule_path(settings: Settings) -> Path | None:
    if settings.demo.schedule_file is not None:
        return settings.demo.schedule_file
    candidate = REPO_SCHEDULES / DEMO_SCHEDULE_NAME
    return candidate if candidate.is_file() else None


def prepare(settings: Settings, database: Database, echo: Callable[[str], None]) -> None:
    """Bring the database to the current schema and make a fresh install usable."""
    # Refused before anything else, like any configuration error; also once the admin exists,
    # so that a weak password never stays in the configuration unnoticed.
    problem = auth_service.first_admin_password_problem(settings.admin_password)
    if problem:
        raise ConfigError(f"config error: admin_password (CONFBRIDGE_ADMIN_PASSWORD): {problem}")
    migrate.upgrade(database.engine)
    with database.session() as session:
        generated = auth_service.ensure_first_admin(
            session=session, password=settings.admin_password
        )
        session.commit()
    if generated:
        echo(
            "Đã tạo tài khoản 'admin' / created user 'admin' with a one-time password "
            f"(shown once): {generated}"
        )
    if settings.demo.enabled:
        seed_demo(settings, database, echo)


def seed_demo(settings: Settings, database: Database, echo: Callable[[str], None]) -> None:
    """On an empty database, load the demo schedule and give its chair site a terminal."""
    from confbridge.schedules import service as schedule_service

    with database.session() as session:
        if (session.scalar(select(func.count()).select_from(Unit)) or 0) > 0:
            return
        path = demo_schedule_path(settings)
        if path is None:
            echo("demo data: no demo schedule file found; starting empty")
            return
        report = schedule_service.apply_file(path, session=session, settings=settings, now=utcnow())
        session.commit()
        echo(f"demo data: {path.name}: {report.summary()}")
        first_series = report.first_series_chair_site_id()
        if first_series is not None:
            site = site_service.get_site(session=session, site_id=first_series)
            _terminal, token = site_service.create_terminal(session=session, site=site)
            session.commit()
            echo(f"demo terminal for '{site.name}' (token shown once): {token}")
