"""Directory sign-in against a real OpenLDAP server (slapd on a loopback port), its outage too."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.auth import directory as directory_service
from confbridge.auth.models import AuditEntry, Role
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.settings import LdapSettings
from confbridge.sites.models import Unit
from tests.support.factories import PASSWORD, create_user, make_settings
from tests.support.ldap import SUFFIX, Directory, running_slapd
from tests.support.scopes import TwoProvinces, make_two_provinces

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("slapd") is None and not Path("/usr/sbin/slapd").exists(),
        reason="needs Debian's slapd (installed by .ci/run)",
    ),
]
PEOPLE = {"nguyen": "mat-khau-nguyen", "tran": "mat-khau-tran", "le": "mat-khau-le"}
GROUPS = {"thuky-tinh-a": ["nguyen"], "khac": ["tran"], "quantri": ["le"]}


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Directory]:
    with running_slapd(tmp_path / "ldap", PEOPLE, GROUPS) as directory:
        yield directory


@pytest.fixture
def world(session: Session) -> TwoProvinces:
    made = make_two_provinces(session)
    unit = session.get(Unit, made.units["a"])
    assert unit is not None
    unit.code = "T-A"
    session.commit()
    return made


def _ldap(url: str) -> LdapSettings:
    return LdapSettings(
        url=url,
        user_dn_template=f"uid={{username}},ou=people,{SUFFIX}",
        group_base=f"ou=groups,{SUFFIX}",
        groups=[
            {
                "group": f"cn=thuky-tinh-a,ou=groups,{SUFFIX}",
                "unit_code": "T-A",
                "role": "secretariat",
            },
            {"group": f"CN=quantri, ou=groups,{SUFFIX}", "role": "admin"},
        ],
        timeout_s=2,
    )


@pytest.fixture
def directory_client(
    database: Database, tmp_path: Path, slapd: Directory, world: TwoProvinces
) -> Iterator[TestClient]:
    settings = make_settings(
        database.settings.database_url or "",
        tmp_path,
        auth={"ldap": _ldap(slapd.url).model_dump()},
    )
    with TestClient(create_app(settings, database=database)) as client:
        yield client


def _token(client: TestClient, username: str, password: str) -> object:
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_directory_user_signs_in_with_the_roles_of_its_groups(
    directory_client: TestClient, world: TwoProvinces, session: Session
) -> None:
    signed = _token(directory_client, "nguyen", PEOPLE["nguyen"])
    assert signed.status_code == 200, signed.text
    headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    me = directory_client.get("/api/v1/me", headers=headers).json()["user"]
    assert me["memberships"] == [{"unit_id": world.units["a"], "role": "secretariat"}]
    assert me["full_name"] == "Cán bộ nguyen"
    # its scope is province A: B's sites are not there
    sites = directory_client.get("/api/v1/sites", headers=headers).json()["items"]
    assert world.sites["hq_b"] not in {s["id"] for s in sites} and sites
    assert _token(directory_client, "nguyen", "sai-mat-khau").status_code == 401
    root = _token(directory_client, "le", PEOPLE["le"])
    assert root.status_code == 200
    created = session.scalars(select(AuditEntry).where(AuditEntry.actor == "directory")).all()
    assert {e.detail["username"] for e in created} == {"nguyen", "le"}


def test_directory_user_without_a_mapped_group_is_refused(directory_client: TestClient) -> None:
    refused = _token(directory_client, "tran", PEOPLE["tran"])
    assert refused.status_code == 401
    assert "no role" in refused.json()["detail"]


def test_directory_empty_password_is_no_anonymous_bind(slapd: Directory) -> None:
    settings = _ldap(slapd.url)
    assert directory_service.authenticate(settings=settings, username="nguyen", password="") is None
    found = directory_service.authenticate(
        settings=settings, username="nguyen", password=PEOPLE["nguyen"]
    )
    assert found is not None and found.dn.startswith("uid=nguyen,")
    # a username cannot reach into the DN
    assert (
        directory_service.authenticate(
            settings=settings, username="nguyen,ou=people", password=PEOPLE["nguyen"]
        )
        is None
    )


def test_directory_outage_never_locks_out_local_accounts(
    directory_client: TestClient, database: Database, slapd: Directory, session: Session
) -> None:
    create_user(database, "admin", Role.admin)
    assert _token(directory_client, "nguyen", PEOPLE["nguyen"]).status_code == 200
    slapd.stop()
    assert _token(directory_client, "admin", PASSWORD).status_code == 200
    down = _token(directory_client, "nguyen", PEOPLE["nguyen"])
    assert down.status_code == 503
    assert "directory cannot be reached" in down.json()["detail"]
    reasons = [
        e.detail.get("reason")
        for e in session.scalars(select(AuditEntry).where(AuditEntry.action == "sign_in_failed"))
    ]
    assert "directory_unavailable" in reasons
