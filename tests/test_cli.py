"""The `confbridge` command: migrations, province import, users, configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner, Result

from confbridge.cli import app


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def count(path: Path, table: str) -> int:
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        value = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    engine.dispose()
    return value


def test_db_upgrade_then_current(database_file: Path) -> None:
    assert run("db", "current").exit_code == 1  # empty database: behind the code
    upgraded = run("db", "upgrade")
    assert upgraded.exit_code == 0 and "revision 0002" in upgraded.stdout
    current = run("db", "current")
    assert current.exit_code == 0 and "database: 0002" in current.stdout


def test_sites_import_province_is_idempotent(database_file: Path) -> None:
    first = run("sites", "import-province", "Quảng Ninh")
    assert first.exit_code == 0, first.stderr
    assert "55 unit(s) and 55 site(s) created" in first.stdout
    second = run("sites", "import-province", "Quảng Ninh")
    assert "0 unit(s) and 0 site(s) created, 110 unchanged" in second.stdout
    assert count(database_file, "sites") == 55


def test_sites_import_unknown_province_fails_cleanly(database_file: Path) -> None:
    result = run("sites", "import-province", "Atlantis")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no province named 'Atlantis'")
    assert "Traceback" not in result.output


def test_users_create(database_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_NEW_PASSWORD", "mat-khau-van-phong")
    created = run("users", "create", "vanphong", "--role", "secretariat")
    assert created.exit_code == 0, created.stderr
    again = run("users", "create", "vanphong", "--role", "secretariat")
    assert again.exit_code == 1 and "already exists" in again.stderr
    bad_role = run("users", "create", "x", "--role", "boss")
    assert bad_role.exit_code == 1 and "unknown role" in bad_role.stderr
    monkeypatch.setenv("CONFBRIDGE_NEW_PASSWORD", "short")
    assert run("users", "create", "y", "--role", "viewer").exit_code == 1
    assert count(database_file, "users") == 1


def test_config_error_is_one_line_naming_the_key(
    database_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFBRIDGE_MEETINGS__HORIZON_DAYS", "soon")
    result = run("db", "upgrade")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("config error: meetings.horizon_days")


def test_unreachable_database_is_a_clean_error(
    database_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFBRIDGE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = run("db", "upgrade")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot use the database")


def test_sfu_refuses_the_default_node_secret_beyond_loopback(database_file: Path) -> None:
    result = run("sfu", "--host", "0.0.0.0")
    assert result.exit_code == 2
    assert result.stderr.startswith("config error: sfu node_secret: the default value is refused")
    assert "Traceback" not in result.output
