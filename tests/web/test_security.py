"""Sign-in sessions, roles and CSRF on the web pages."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.web.security import CSRF_COOKIE, SESSION_COOKIE
from tests.web.conftest import create_user, csrf_of, sign_in


def test_pages_send_a_visitor_to_sign_in_and_back(client: TestClient) -> None:
    response = client.get("/calendar?view=month", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2Fcalendar%3Fview%3Dmonth"


def test_sign_in_sets_a_session_and_goes_where_asked(
    client: TestClient, database: Database
) -> None:
    create_user(database, "vanphong", Role.secretariat)
    page = client.get("/sign-in?next=/bookings/new")
    assert 'name="next" value="/bookings/new"' in page.text
    response = client.post(
        "/sign-in",
        data={
            "csrf_token": csrf_of(page.text),
            "username": "vanphong",
            "password": "correct-horse",
            "next": "/bookings/new",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/bookings/new"
    cookie = response.headers["set-cookie"]
    assert (
        SESSION_COOKIE in cookie
        and "httponly" in cookie.lower()
        and "samesite=lax" in cookie.lower()
    )
    assert client.get("/bookings/new").status_code == 200


def test_sign_in_wrong_password_shows_the_form_again(
    client: TestClient, database: Database
) -> None:
    create_user(database, "vanphong", Role.secretariat)
    response = sign_in(client, "vanphong", "wrong-password")
    assert response.status_code == 401
    assert "Sai tên đăng nhập hoặc mật khẩu." in response.text
    assert 'value="vanphong"' in response.text
    assert client.get("/calendar", follow_redirects=False).status_code == 303


def test_sign_in_never_redirects_to_another_site(client: TestClient, database: Database) -> None:
    create_user(database, "vanphong", Role.secretariat)
    token = csrf_of(client.get("/sign-in").text)
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = client.post(
            "/sign-in",
            data={"csrf_token": token, "username": "vanphong", "password": "correct-horse",
                  "next": target},
            follow_redirects=False,
        )  # fmt: skip
        assert response.headers["location"] == "/calendar"
        token = csrf_of(client.get("/sign-in").text)


def test_forms_without_the_csrf_token_are_refused(web: Callable[..., TestClient]) -> None:
    client = web(Role.secretariat)
    refused = client.post("/bookings/new", data={"title": "x", "action": "save"})
    assert refused.status_code == 403
    assert "Biểu mẫu đã hết hạn" in refused.text
    forged = client.post("/bookings/new", data={"title": "x", "csrf_token": "0" * 64})
    assert forged.status_code == 403
    # Another browser's token does not fit this browser's cookie.
    other = TestClient(client.app)
    other_token = csrf_of(other.get("/sign-in").text)
    assert client.post("/sign-out", data={"csrf_token": other_token}).status_code == 403


def test_sign_out_ends_the_session(web: Callable[..., TestClient]) -> None:
    client = web(Role.secretariat)
    page = client.get("/calendar")
    old_csrf = client.cookies.get(CSRF_COOKIE)
    response = client.post(
        "/sign-out", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert response.status_code == 303
    assert client.cookies.get(CSRF_COOKIE) != old_csrf
    assert client.get("/calendar", follow_redirects=False).status_code == 303


def test_a_viewer_reads_the_calendar_but_may_not_book(web: Callable[..., TestClient]) -> None:
    client = web(Role.viewer)
    assert client.get("/calendar").status_code == 200
    refused = client.get("/bookings/new")
    assert refused.status_code == 403
    assert "Vai trò của bạn không được dùng trang này." in refused.text
    assert "Đặt lịch họp" not in client.get("/calendar").text


def test_an_api_token_is_not_a_session(client: TestClient, admin: dict[str, str]) -> None:
    token = admin["Authorization"].removeprefix("Bearer ")
    client.cookies.set(SESSION_COOKIE, token)
    assert client.get("/calendar", follow_redirects=False).status_code == 303


def test_a_disabled_account_is_signed_out(
    web: Callable[..., TestClient], database: Database
) -> None:
    from confbridge.auth.models import User

    client = web(Role.secretariat)
    with database.session() as session:
        for user in session.query(User).all():
            user.active = False
        session.commit()
    assert client.get("/calendar", follow_redirects=False).status_code == 303
