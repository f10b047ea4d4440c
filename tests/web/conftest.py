"""Fixtures for the web pages: a signed-in browser-like client, and the province they book."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.meetings.recurrence import holiday_name
from confbridge.sites import service as site_service
from confbridge.sites.models import Unit, UnitKind

# The whole stack (control plane, SFU worker, terminals) for the live pages' browser tests.
from tests.sfu.conftest import loopback, peers, stack, stack_options  # noqa: F401

PASSWORD = "correct-horse"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
COMMUNES = ("Xã An Bình", "Xã Phú Lộc", "Xã Tân Hòa")


def next_weekday(weekday: int) -> date:
    """The first such weekday from next week on that is not a public holiday (the booking form
    skips holidays by default, which would move the meeting the test looks for)."""
    today = date.today()
    day = today + timedelta(days=(weekday - today.weekday()) % 7 + 7)
    while holiday_name(day) is not None:
        day += timedelta(days=7)
    return day


def csrf_of(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def create_user(database: Database, username: str, role: Role) -> None:
    with database.session() as session:
        auth_service.create(session=session, username=username, password=PASSWORD, role=role)
        session.commit()


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    token = csrf_of(client.get("/sign-in").text)
    return client.post(
        "/sign-in",
        data={"csrf_token": token, "username": username, "password": password, "next": "/calendar"},
        follow_redirects=False,
    )


def make_commune_province(session: Session) -> dict[str, int]:
    """A province with its hall, a department and three communes with a hall each; site ids."""
    province = site_service.create_unit(session=session, name="Tỉnh Thử", kind=UnitKind.province)
    ids = {
        "hq": site_service.create_site(
            session=session, name="Hội trường UBND tỉnh", unit_id=province.id
        ).id,
        "province_unit": province.id,
    }
    department = site_service.create_unit(
        session=session, name="Sở Nội vụ", kind=UnitKind.department, parent_id=province.id
    )
    ids["dept"] = site_service.create_site(
        session=session, name="Phòng họp Sở Nội vụ", unit_id=department.id
    ).id
    for index, name in enumerate(COMMUNES):
        commune = site_service.create_unit(
            session=session, name=name, kind=UnitKind.commune, parent_id=province.id
        )
        ids[f"c{index}"] = site_service.create_site(
            session=session, name=f"Hội trường UBND {name}", unit_id=commune.id
        ).id
    session.commit()
    return ids


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
