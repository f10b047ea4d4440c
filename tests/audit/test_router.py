"""The audit log over the API: filters, exports, the client address, and scope."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.auth.models import Role
from confbridge.db import Database
from tests.support.scopes import Headers, TwoProvinces, make_two_provinces, scoped_user


@pytest.fixture
def world(session: Session) -> TwoProvinces:
    return make_two_provinces(session)


def test_audit_lists_who_did_what_from_where_before_and_after(
    client: TestClient, admin: Headers, world: TwoProvinces
) -> None:
    renamed = client.patch(
        f"/api/v1/sites/{world.sites['p1']}",
        json={"name": "Hội trường mới"},
        headers={**admin, "X-Forwarded-For": "203.0.113.9"},
    )
    assert renamed.status_code == 200
    created = client.post(
        "/api/v1/users",
        json={"username": "xem", "password": "mat-khau-dai-du", "role": "viewer"},
        headers=admin,
    )
    user_id = created.json()["id"]
    client.patch(f"/api/v1/users/{user_id}", json={"role": "secretariat"}, headers=admin)
    page = client.get("/api/v1/audit?entity=user&action=user_updated", headers=admin).json()
    assert page["total"] == 1
    entry = page["items"][0]
    assert entry["actor"] == "user:admin" and entry["entity_id"] == user_id
    assert entry["changes"] == {"memberships": [["viewer@root"], ["secretariat@root"]]}
    # the test client's address (no trusted proxy: X-Forwarded-For is not believed)
    assert entry["address"] == "testclient"
    sites = client.get("/api/v1/audit?entity=site", headers=admin).json()["items"]
    assert [e["action"] for e in sites] == ["site_updated"]
    signed_in = client.get("/api/v1/audit?action=sign_in&actor=user:admin", headers=admin)
    assert signed_in.json()["total"] == 1
    later = client.get("/api/v1/audit?from=2099-01-01", headers=admin).json()
    assert later["total"] == 0
    bad = client.get("/api/v1/audit?from=yesterday", headers=admin)
    assert bad.status_code == 422


def test_audit_exports_csv(client: TestClient, admin: Headers, world: TwoProvinces) -> None:
    client.patch(f"/api/v1/sites/{world.sites['p1']}", json={"name": "=2+3"}, headers=admin)
    response = client.get("/api/v1/audit?format=csv&entity=site", headers=admin)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Thời điểm", "Người thực hiện", "Hành động"]
    assert rows[1][1:4] == ["user:admin", "site_updated", "site"]
    assert rows[1][7] == '{"changes": {"name": ["Hội trường UBND Phường Một", "=2+3"]}}'


def test_audit_of_a_province_admin_holds_only_its_province(
    client: TestClient, database: Database, admin: Headers, world: TwoProvinces
) -> None:
    admin_a = scoped_user(database, client, "admin_a", [(world.units["a"], Role.admin)])
    sec_b = scoped_user(database, client, "sec_b", [(world.units["b"], Role.secretariat)])
    client.patch(f"/api/v1/sites/{world.sites['p1']}", json={"name": "A mới"}, headers=admin)
    client.patch(f"/api/v1/sites/{world.sites['hq_b']}", json={"name": "B mới"}, headers=sec_b)
    seen = client.get("/api/v1/audit?entity=site", headers=admin_a).json()["items"]
    assert [e["entity_id"] for e in seen] == [world.sites["p1"]]
    actors = {e["actor"] for e in client.get("/api/v1/audit", headers=admin_a).json()["items"]}
    assert "user:sec_b" not in actors and "user:admin_a" in actors
    everything = client.get("/api/v1/audit?entity=site", headers=admin).json()["items"]
    assert {e["entity_id"] for e in everything} == {world.sites["p1"], world.sites["hq_b"]}
    assert client.get("/api/v1/audit", headers=sec_b).status_code == 403
