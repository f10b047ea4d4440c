"""Shared fixtures: a migrated database (SQLite, or PostgreSQL when asked), the app, users,
real servers and the whole media stack; and the kind of each test (`unit`, `integration`,
`browser`, `netns`: see `pytest_collection_modifyitems`).

The fixtures call plain functions in `tests.support`; tests import those from there, never
from a conftest."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge import migrate
from confbridge.auth import service as auth_service
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.settings import Settings
from confbridge.sites.models import Site, Unit
from tests.support.database import (
    TEST_DB_ENV,
    PostgresUnusable,
    drop_schema,
    empty_tables,
    is_ci,
    postgres_schema_url,
)
from tests.support.factories import PASSWORD, make_province, make_settings, province_sites
from tests.support.object_store import SeaweedFs, seaweedfs
from tests.support.servers import ServerThread, Stack, WebhookReceiver, running_stack

if TYPE_CHECKING:
    from tests.support.peers import WhepViewer, WhipPublisher

# What a test uses (its fixtures, or a browser test module's name) decides its kind, the most
# demanding one that matches: netns, browser, integration, else unit. A test that starts a
# server, a process, a peer or a database in its own body says so itself
# (`@pytest.mark.integration`, or `pytestmark = pytest.mark.integration` for a whole module).
TEST_KINDS = ("unit", "integration", "browser", "netns")
# hosts in network namespaces: tests/sfu/test_cascade.py, a hall's policed downlink, a hall
# whose network blocks UDP
NETNS_FIXTURES = {"cascade", "hall_netns", "udp_blocked_hall"}
BROWSER_FIXTURES = {"browser"}  # every Playwright test module's Chromium fixture
INTEGRATION_FIXTURES = {
    "database_url",  # behind database, session, app, client, make_user, sites...
    "database_file",  # CLI runs against an SQLite file
    "serve",
    "webhook",
    "stack",
    "loopback",
    "start_serve",  # tests/test_cli_serve.py: `confbridge serve` as a process
    "bridge",  # tests/sfu/test_forwarding.py: aiortc peers through Slot/Source on loopback
}
# The control plane's database, whichever CONFBRIDGE_TEST_DATABASE_URL names: such tests also
# get the `database` mark, which CI runs once more on PostgreSQL.
DATABASE_FIXTURES = {"database_url", "fresh_url"}  # fresh_url: tests/test_migrate.py


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test exactly one of TEST_KINDS, so that `-m unit` is the fast loop, and the
    `database` mark to those that use the control plane's database."""
    for item in items:
        if set(getattr(item, "fixturenames", ())) & DATABASE_FIXTURES:
            item.add_marker("database")
        said = {mark.name for mark in item.iter_markers() if mark.name in TEST_KINDS}
        if len(said) > 1:
            raise pytest.UsageError(f"{item.nodeid}: more than one kind: {sorted(said)}")
        if said:
            continue
        used = set(getattr(item, "fixturenames", ()))
        if used & NETNS_FIXTURES:
            kind = "netns"
        elif used & BROWSER_FIXTURES or "browser" in item.path.stem:
            kind = "browser"
        elif used & INTEGRATION_FIXTURES:
            kind = "integration"
        else:
            kind = "unit"
        item.add_marker(kind)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = os.environ.get(TEST_DB_ENV)
    if not base:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        return
    try:
        url, schema = postgres_schema_url(base)
    except PostgresUnusable as exc:
        if is_ci():
            raise
        pytest.exit(str(exc), returncode=3)
    yield url
    drop_schema(base, schema)


@pytest.fixture(scope="session")
def migrated_database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Database:
    settings = make_settings(database_url, tmp_path_factory.mktemp("data"))
    database = Database(settings)
    migrate.upgrade(database.engine)
    return database


@pytest.fixture
def database(migrated_database: Database) -> Iterator[Database]:
    yield migrated_database
    empty_tables(migrated_database)


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return make_settings(database.settings.database_url or "", tmp_path)


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    with database.session() as session:
        yield session


@pytest.fixture
def app(settings: Settings, database: Database):
    return create_app(settings, database=database)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def make_user(database: Database, client: TestClient) -> Callable[..., dict[str, str]]:
    """Create a user with `role` and return Authorization headers for it."""
    counter = iter(range(1, 10_000))

    def factory(role: Role | str = Role.admin, username: str | None = None) -> dict[str, str]:
        name = username or f"{Role(role).value}{next(counter)}"
        with database.session() as s:
            auth_service.create(session=s, username=name, password=PASSWORD, role=Role(role))
            s.commit()
        response = client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    return factory


@pytest.fixture
def admin(make_user: Callable[..., dict[str, str]]) -> dict[str, str]:
    return make_user(Role.admin, "admin")


@pytest.fixture
def secretariat(make_user: Callable[..., dict[str, str]]) -> dict[str, str]:
    return make_user(Role.secretariat, "vanphong")


@pytest.fixture
def province(session: Session) -> Unit:
    """A small province: two wards, a department, a site each."""
    return make_province(session)


@pytest.fixture
def sites(session: Session, province: Unit) -> dict[str, Site]:
    """The province's sites by a short name: hq, p1, p2, dept."""
    return province_sites(session)


@pytest.fixture
def serve() -> Iterator[Callable[..., ServerThread]]:
    """Start apps on real servers (`serve(app)`); every one is stopped after the test."""
    servers: list[ServerThread] = []

    def start(app: Any, port: int | None = None) -> ServerThread:
        server = ServerThread(app, port)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def database_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SQLite file for CLI tests, run from a directory without config.yaml."""
    for name in list(os.environ):
        if name.startswith("CONFBRIDGE_"):
            monkeypatch.delenv(name)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    path = tmp_path / "cli.sqlite3"
    monkeypatch.setenv("CONFBRIDGE_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("CONFBRIDGE_DATA_DIR", str(tmp_path / "data"))
    return path


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.server.start()
    yield receiver
    receiver.server.stop()


@pytest.fixture
def it_user(make_user: Callable[..., dict[str, str]]) -> dict[str, str]:
    return make_user(Role.it)


@pytest.fixture
def loopback() -> Iterator[None]:
    """ICE candidates on 127.0.0.1 only, for this test."""
    from sfu.rtc.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFs]:
    """A real S3-compatible object store (SeaweedFS) for the whole run; each test that uses
    it takes a prefix of its own (`SeaweedFs.settings()`)."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as store:
        yield store


@pytest.fixture
def stack_options() -> dict[str, Any]:
    """Overridden by a test module for more settings (`settings`, `sfu`) or the control
    plane's background loops (`run_background`: health checks, alert delivery)."""
    return {}


@pytest.fixture
def stack(
    database: Database,
    tmp_path: Path,
    sites: dict[str, Site],
    secretariat: dict[str, str],
    loopback: None,
    stack_options: dict[str, Any],
) -> Iterator[Stack]:
    """The control plane on a real server, one SFU worker process (more with
    `stack_options`), an occurrence that is on now, and a terminal token for each site."""
    with running_stack(database, tmp_path, sites, secretariat, stack_options) as running:
        yield running


@pytest.fixture
async def peers() -> AsyncIterator[list[WhipPublisher | WhepViewer]]:
    """Publishers and viewers a test starts (it appends them); stopped after the test."""
    started: list[WhipPublisher | WhepViewer] = []
    yield started
    for peer in started:
        await peer.stop()


@pytest.fixture(autouse=True)
def _keep_umask() -> Iterator[None]:
    """`serve` and `sfu` set the process's umask (077); run in-process by a test, they would
    leave it set for the tests after it."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)
