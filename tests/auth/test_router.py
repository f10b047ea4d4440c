"""Sign-in, bearer tokens (users and terminals) and role checks over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import jwt
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.auth.models import Role
from confbridge.sites.models import Site, Terminal
from tests.conftest import TEST_SECRET

Headers = dict[str, str]


def test_token_sign_in_and_me(client: TestClient, admin: Headers) -> None:
    response = client.get("/api/v1/me", headers=admin)
    assert response.status_code == 200
    assert response.json()["user"]["username"] == "admin"
    assert response.json()["user"]["role"] == "admin"


def test_token_wrong_password_is_401(client: TestClient, admin: Headers) -> None:
    response = client.post("/api/v1/auth/token", data={"username": "admin", "password": "nope"})
    assert response.status_code == 401
    assert "wrong username or password" in response.json()["detail"]


def test_token_missing_form_fields_is_422(client: TestClient) -> None:
    assert client.post("/api/v1/auth/token", data={"username": "x"}).status_code == 422


def test_api_requires_auth(client: TestClient) -> None:
    for path in (
        "/api/v1/me",
        "/api/v1/units",
        "/api/v1/sites",
        "/api/v1/series",
        "/api/v1/occurrences",
        "/api/v1/terminals/me/agenda",
    ):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"


def test_api_rejects_forged_and_expired_tokens(client: TestClient, admin: Headers) -> None:
    forged = jwt.encode({"sub": "1", "typ": "user", "exp": 9999999999}, "x" * 40, "HS256")
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    expired = jwt.encode({"sub": "1", "typ": "user", "exp": 1}, TEST_SECRET, "HS256")
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_roles_viewer_may_read_not_write(
    client: TestClient, make_user: Callable[..., Headers], province: object
) -> None:
    viewer = make_user(Role.viewer)
    assert client.get("/api/v1/units", headers=viewer).status_code == 200
    response = client.post("/api/v1/units", json={"name": "X", "kind": "province"}, headers=viewer)
    assert response.status_code == 403
    assert "viewer" in response.json()["detail"]


def test_roles_it_manages_terminals_secretariat_does_not(
    client: TestClient, make_user: Callable[..., Headers], sites: dict[str, Site]
) -> None:
    path = f"/api/v1/sites/{sites['p1'].id}/terminals"
    assert client.post(path, headers=make_user(Role.secretariat)).status_code == 403
    created = client.post(path, json={"name": "Tivi hội trường"}, headers=make_user(Role.it))
    assert created.status_code == 201
    assert created.json()["token"].startswith("cbt_")


def test_terminal_token_is_stored_hashed_and_identifies_the_site(
    client: TestClient, make_user: Callable[..., Headers], sites: dict[str, Site], session: Session
) -> None:
    created = client.post(
        f"/api/v1/sites/{sites['p1'].id}/terminals", headers=make_user(Role.it)
    ).json()
    token = created["token"]
    stored = session.scalars(select(Terminal.token_hash)).all()
    assert token not in stored and len(stored) == 1
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {
        "kind": "terminal",
        "user": None,
        "terminal_id": created["id"],
        "site_id": sites["p1"].id,
    }


def test_terminal_may_not_use_user_endpoints(
    client: TestClient, make_user: Callable[..., Headers], sites: dict[str, Site]
) -> None:
    token = client.post(
        f"/api/v1/sites/{sites['p1'].id}/terminals", headers=make_user(Role.it)
    ).json()["token"]
    response = client.get("/api/v1/units", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


def test_users_admin_creates_users_others_cannot(
    client: TestClient, admin: Headers, secretariat: Headers
) -> None:
    body = {"username": "ktv", "password": "mat-khau-dai", "role": "it"}
    assert client.post("/api/v1/users", json=body, headers=secretariat).status_code == 403
    assert client.post("/api/v1/users", json=body, headers=admin).status_code == 201
    assert client.post("/api/v1/users", json=body, headers=admin).status_code == 409
    signed_in = client.post(
        "/api/v1/auth/token", data={"username": "ktv", "password": "mat-khau-dai"}
    )
    assert signed_in.status_code == 200


def test_me_password_change(client: TestClient, secretariat: Headers) -> None:
    wrong = {"current_password": "nope", "new_password": "moi-mat-khau"}
    assert client.put("/api/v1/me/password", json=wrong, headers=secretariat).status_code == 422
    right = {"current_password": "correct-horse", "new_password": "moi-mat-khau"}
    assert client.put("/api/v1/me/password", json=right, headers=secretariat).status_code == 204
    signed_in = client.post(
        "/api/v1/auth/token", data={"username": "vanphong", "password": "moi-mat-khau"}
    )
    assert signed_in.status_code == 200


def test_healthz_needs_no_auth(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
