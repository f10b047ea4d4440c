"""Fixtures for the web pages: a signed-in browser-like client, and the province they book;
two provinces and clients signed in with a membership in one of them, for the scoped pages.
The live pages' browser tests use the media stack of `tests/conftest.py`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.sites.models import Unit
from tests.support.factories import PASSWORD, create_user, make_commune_province
from tests.support.scopes import TwoProvinces, make_two_provinces
from tests.support.web import sign_in


@pytest.fixture
def communes(session: Session) -> dict[str, int]:
    return make_commune_province(session)


@pytest.fixture
def web(app: Any, database: Database) -> Iterator[Callable[..., TestClient]]:
    """`web(role)`: a client signed in through the sign-in form as a new user of `role`."""
    clients: list[TestClient] = []
    counter = iter(range(1, 1000))

    def open_client(role: Role = Role.secretariat) -> TestClient:
        username = f"web-{role.value}-{next(counter)}"
        create_user(database, username, role)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        response = sign_in(client, username)
        assert response.status_code == 303, response.text
        return client

    yield open_client
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def unit(session: Session, communes: dict[str, int]) -> Unit:
    found = session.get(Unit, communes["province_unit"])
    assert found is not None
    return found


@pytest.fixture
def world(session: Session) -> TwoProvinces:
    return make_two_provinces(session)


@pytest.fixture
def browser_as(
    app: Any, database: Database, world: TwoProvinces
) -> Iterator[Callable[[str, int | None, Role], TestClient]]:
    """`browser_as(name, unit_id, role)`: a client signed in through the form as a new user
    with that one membership (`unit_id` None: the whole installation)."""
    clients: list[TestClient] = []

    def open_client(name: str, unit_id: int | None, role: Role) -> TestClient:
        with database.session() as session:
            auth_service.create(
                session=session,
                username=name,
                password=PASSWORD,
                memberships=[auth_service.MembershipIn(unit_id=unit_id, role=role)],
            )
            session.commit()
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        assert sign_in(client, name).status_code == 303
        return client

    yield open_client
    for client in clients:
        client.__exit__(None, None, None)
