"""Shared fixtures: a migrated database (SQLite, or PostgreSQL when asked), the app, users."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from confbridge import migrate
from confbridge.auth import service as auth_service
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.models import metadata
from confbridge.nodes import placement
from confbridge.nodes import service as node_service
from confbridge.settings import Settings, normalise_database_url
from confbridge.sites import service as site_service
from confbridge.sites.models import Site, Unit, UnitKind
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import NodeHeartbeat

TEST_DB_ENV = "CONFBRIDGE_TEST_DATABASE_URL"
TEST_SECRET = "test-secret-key-0123456789-abcdefghijklmnop"


def _postgres_schema_url(base_url: str) -> tuple[str, str]:
    """A fresh schema per test run, so parallel runs and old tables never meet."""
    schema = f"cbtest_{uuid.uuid4().hex[:10]}"
    url = normalise_database_url(base_url)
    admin = create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        if os.environ.get("CI"):
            raise RuntimeError(f"{TEST_DB_ENV} is set but PostgreSQL is unusable: {exc}") from exc
        pytest.exit(f"{TEST_DB_ENV} is set but PostgreSQL is unusable: {exc}", returncode=3)
    finally:
        admin.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", schema


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = os.environ.get(TEST_DB_ENV)
    if not base:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        return
    url, schema = _postgres_schema_url(base)
    yield url
    admin = create_engine(normalise_database_url(base))
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def migrated_database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Database:
    settings = make_settings(database_url, tmp_path_factory.mktemp("data"))
    database = Database(settings)
    migrate.upgrade(database.engine)
    return database


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        data_dir=data_dir,
        secret_key=TEST_SECRET,
        **overrides,
    )


def _empty_tables(database: Database) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables) if t.name != "booking_lock"]
    if database.engine.dialect.name == "postgresql":
        with database.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        return
    with database.engine.connect() as connection:
        # Units refer to units; SQLite checks row by row, so switch checks off to empty them.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        for table in tables:
            connection.execute(text(f"DELETE FROM {table}"))
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")


@pytest.fixture
def database(migrated_database: Database) -> Iterator[Database]:
    yield migrated_database
    _empty_tables(migrated_database)


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
            auth_service.create(session=s, username=name, password="correct-horse", role=Role(role))
            s.commit()
        response = client.post(
            "/api/v1/auth/token", data={"username": name, "password": "correct-horse"}
        )
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
    unit = site_service.create_unit(session=session, name="Tỉnh Thử", kind=UnitKind.province)
    site_service.create_site(session=session, name="Hội trường UBND tỉnh Thử", unit_id=unit.id)
    for name in ("Phường Một", "Phường Hai"):
        ward = site_service.create_unit(
            session=session, name=name, kind=UnitKind.ward, parent_id=unit.id
        )
        site_service.create_site(session=session, name=f"Hội trường UBND {name}", unit_id=ward.id)
    dept = site_service.create_unit(
        session=session, name="Sở Thông tin", kind=UnitKind.department, parent_id=unit.id
    )
    site_service.create_site(session=session, name="Phòng họp Sở", unit_id=dept.id)
    session.commit()
    return unit


@pytest.fixture
def sites(session: Session, province: Unit) -> dict[str, Site]:
    """The province's sites by a short name: hq, p1, p2, dept."""
    found = {s.name: s for s in session.query(Site).all()}
    return {
        "hq": found["Hội trường UBND tỉnh Thử"],
        "p1": found["Hội trường UBND Phường Một"],
        "p2": found["Hội trường UBND Phường Hai"],
        "dept": found["Phòng họp Sở"],
    }


def enrol_node(
    database: Database,
    node_id: str = "node-a",
    *,
    allow_loopback: bool = True,
    rotate: bool = False,
) -> dict[str, str]:
    """Enrol an SFU node as an admin would (`rotate`: again, with a new key); the
    Authorization headers of its own key."""
    with database.session() as session:
        _enrolment, key = node_service.enrol(
            session=session,
            node_id=node_id,
            by="test",
            now=utcnow(),
            allow_loopback=allow_loopback,
            rotate=rotate,
        )
        session.commit()
    return {"Authorization": f"Bearer {key}"}


def register_node(
    database: Database,
    node_id: str = "node-a",
    *,
    public_url: str = "http://127.0.0.1:8001",
    internal_url: str | None = None,
) -> None:
    """An SFU node up now, as its heartbeat registers it (joins are placed on it)."""
    with database.session() as session:
        node_service.heartbeat(
            session=session,
            beat=NodeHeartbeat(
                node_id=node_id,
                public_url=public_url,
                internal_url=internal_url or public_url,
                capacity_peers=1000,
            ),
            now=utcnow(),
        )
        session.commit()


def let_node_hold(database: Database, node_id: str, *occurrence_ids: int) -> None:
    """Record that `node_id` held these occurrences' rooms (as placing them would), so that
    it may report their events."""
    with database.session() as session:
        for occurrence_id in occurrence_ids:
            placement.record_host(
                session=session, occurrence_id=occurrence_id, node_id=node_id, now=utcnow()
            )
        session.commit()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerThread:
    """An ASGI app on a real uvicorn server in a thread; it can be stopped and started again
    on the same port, like a service that goes away and comes back."""

    def __init__(
        self, app: Any, port: int | None = None, host: str = "127.0.0.1", **options: Any
    ) -> None:
        self.app = app
        self.options = options  # more uvicorn.Config options
        self.host = host
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self._server: Any = None
        self._thread: Any = None

    def start(self) -> ServerThread:
        import threading
        import time

        import uvicorn

        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", **self.options
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert self._thread.is_alive(), f"server on port {self.port} did not start"
            assert time.monotonic() < deadline, f"server on port {self.port} did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = self._thread = None


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


class WebhookReceiver:
    """A local HTTP endpoint that records what is POSTed to it; `fail_next` makes it answer
    500 to that many requests first (a receiver that is down for a while)."""

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        self.received: list[tuple[dict[str, str], bytes]] = []
        self.attempts = 0
        self.fail_next = 0

        async def hook(request: Request) -> Response:
            self.attempts += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response("down for maintenance", status_code=500)
            self.received.append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        self.server = ServerThread(self.app)
        self.url = f"{self.server.url}/hook"

    def bodies(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(body) for _headers, body in self.received]


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.server.start()
    yield receiver
    receiver.server.stop()


@pytest.fixture(autouse=True)
def _keep_umask() -> Iterator[None]:
    """`serve` and `sfu` set the process's umask (077); run in-process by a test, they would
    leave it set for the tests after it."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)
