"""First start: migrate, create the admin once, seed the Hạ Long demo once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from confbridge.auth import service as auth_service
from confbridge.auth.models import Terminal
from confbridge.bootstrap import prepare
from confbridge.db import Database
from confbridge.meetings.models import Series
from confbridge.settings import ConfigError
from confbridge.sites.models import Site, Unit
from tests.support.factories import make_settings

# Every test migrates and seeds an SQLite database of its own.
pytestmark = pytest.mark.integration

PASSWORD_LINE = "one-time password"
SITE_LINE = "demo terminal for 'Hội trường UBND thành phố Hạ Long'"
TOKEN_LINE = re.compile(r"token \(shown once\): (cbt_\S+)")
BASE_URL = "http://127.0.0.1:8123"


def _count(database: Database, model: type) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """An empty SQLite database, not the shared test one."""
    monkeypatch.delenv("CONFBRIDGE_ADMIN_PASSWORD", raising=False)
    settings = make_settings(f"sqlite:///{tmp_path / 'fresh.sqlite3'}", tmp_path / "data")
    database = Database(settings)
    yield database
    database.dispose()


def test_prepare_fresh_database_creates_admin_and_seeds_ha_long(fresh: Database) -> None:
    echoed: list[str] = []

    prepare(fresh.settings, fresh, echoed.append, base_url=BASE_URL)

    text = "\n".join(echoed)
    tokens = TOKEN_LINE.findall(text)
    assert text.count(PASSWORD_LINE) == 1 and text.count(SITE_LINE) == 1
    assert "demo data: ha-long.yaml: created 51, updated 0, unchanged 0" in echoed
    assert _count(fresh, Site) == 24
    assert _count(fresh, Series) == 1
    assert len(tokens) == 1
    with fresh.session() as session:
        terminal = session.scalars(select(Terminal)).one()
        assert terminal.token_hash == auth_service.hash_terminal_token(tokens[0])
        assert terminal.site.name == "Hội trường UBND thành phố Hạ Long"


def test_prepare_second_start_prints_no_password_and_seeds_nothing(fresh: Database) -> None:
    prepare(fresh.settings, fresh, lambda _line: None)
    before = {model: _count(fresh, model) for model in (Unit, Site, Series, Terminal)}
    echoed: list[str] = []

    prepare(fresh.settings, fresh, echoed.append)

    assert echoed == []
    assert {model: _count(fresh, model) for model in before} == before


def test_prepare_refuses_a_weak_first_admin_password(tmp_path: Path) -> None:
    for weak, reason in (("x", "too short"), ("aaaaaaaaaaaaaaaa", "single character")):
        settings = make_settings(
            f"sqlite:///{tmp_path / 'weak.sqlite3'}", tmp_path / "data", admin_password=weak
        )
        database = Database(settings)
        with pytest.raises(ConfigError, match=reason):
            prepare(settings, database, lambda _line: None)
        database.dispose()
    strong = make_settings(
        f"sqlite:///{tmp_path / 'strong.sqlite3'}",
        tmp_path / "data",
        admin_password="mat-khau-quan-tri-dau-tien",
        demo={"enabled": False},
    )
    database = Database(strong)
    echoed: list[str] = []
    prepare(strong, database, echoed.append)
    with database.session() as session:
        admin = auth_service.get_by_username(session=session, username="admin")
        assert admin is not None
        assert auth_service.verify_password(admin.password_hash, "mat-khau-quan-tri-dau-tien")
    assert echoed == []  # a given password is not printed
    database.dispose()


def test_prepare_first_start_lines_stand_out_and_say_where_to_go(fresh: Database) -> None:
    """The password and the token come in one framed block with the sign-in page's URL."""
    echoed: list[str] = []

    prepare(fresh.settings, fresh, echoed.append, base_url=BASE_URL)

    block = echoed[-1].splitlines()
    assert block[0].startswith("╔") and block[-1].startswith("╚")
    assert len({len(line) for line in block}) == 1  # a closed frame: every line as wide
    assert all(line.startswith("║ ") and line.endswith(" ║") for line in block[1:-1])
    inside = "\n".join(block)
    assert PASSWORD_LINE in inside and TOKEN_LINE.search(inside)
    assert f"sign in at {BASE_URL}/sign-in" in inside
    token = TOKEN_LINE.search(inside).group(1)  # type: ignore[union-attr]
    assert f"confbridge terminal --server {BASE_URL} \\" in inside
    assert f"--token {token}" in inside
    assert max(len(line) for line in block) <= 100  # fits a terminal, token lines included


def test_prepare_demo_schedule_is_found_without_a_source_tree(
    fresh: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An installed wheel has no repository around it: the schedule comes from package data."""
    from confbridge import packaged

    shipped = tmp_path / "site-packages" / "confbridge"
    (shipped / "defaults" / "schedules").mkdir(parents=True)
    source = packaged.packaged_path("schedules")
    assert source is not None
    for name in ("ha-long.yaml",):
        (shipped / "defaults" / "schedules" / name).write_bytes((source / name).read_bytes())
    monkeypatch.setattr(packaged, "files", lambda _package: shipped)
    monkeypatch.setattr(packaged, "_CHECKOUT_ROOT", tmp_path / "no-checkout")
    echoed: list[str] = []

    prepare(fresh.settings, fresh, echoed.append)

    assert "demo data: ha-long.yaml: created 51, updated 0, unchanged 0" in echoed
    assert _count(fresh, Site) == 24
