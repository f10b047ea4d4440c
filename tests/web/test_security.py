"""Sign-in sessions, roles and CSRF on the web pages."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.auth.models import AuditEntry, Role
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.nodes.models import SfuNode
from confbridge.web.security import CSRF_COOKIE, SESSION_COOKIE
from tests.support.factories import PASSWORD, create_user, make_settings
from tests.support.servers import free_port
from tests.support.web import csrf_of, sign_in


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


# --- sessions bound to the server: sign-out, password change, reset ------------------------------


def test_csrf_token_is_bound_to_the_session(
    web: Callable[..., TestClient], database: Database
) -> None:
    """A token and CSRF cookie obtained in one session do not fit another (a planted cookie)."""
    attacker = web(Role.viewer)
    attacker_token = csrf_of(attacker.get("/calendar").text)
    planted = attacker.cookies.get(CSRF_COOKIE)
    victim = web(Role.secretariat)
    victim.cookies.set(CSRF_COOKIE, planted)
    refused = victim.post("/sign-out", data={"csrf_token": attacker_token})
    assert refused.status_code == 403
    assert victim.get("/calendar", follow_redirects=False).status_code == 200
    # The victim's own token, read from its own page, still works.
    own = csrf_of(victim.get("/calendar").text)
    assert (
        victim.post("/sign-out", data={"csrf_token": own}, follow_redirects=False).status_code
        == 303
    )


def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(
    web: Callable[..., TestClient], app: Any, session: Session
) -> None:
    client = web(Role.secretariat)
    copied = client.cookies.get(SESSION_COOKIE)
    token = csrf_of(client.get("/calendar").text)
    client.post("/sign-out", data={"csrf_token": token}, follow_redirects=False)
    with TestClient(app) as other:
        other.cookies.set(SESSION_COOKIE, copied)
        assert other.get("/calendar", follow_redirects=False).status_code == 303
    [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "sign_out")).all()
    assert entry.detail == {"via": "web"}


def test_password_change_page_ends_other_sessions_and_keeps_this_one(
    web: Callable[..., TestClient], app: Any, database: Database
) -> None:
    client = web(Role.secretariat)
    username = client.get("/calendar").text.split('class="who"')[1].split(">")[1].split("<")[0]
    with TestClient(app) as elsewhere:
        assert sign_in(elsewhere, username).status_code == 303
        api = elsewhere.post(
            "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
        ).json()["access_token"]
        page = client.get("/account/password")
        assert page.status_code == 200
        form = {
            "csrf_token": csrf_of(page.text),
            "current_password": PASSWORD,
            "new_password": "mat-khau-rieng-moi",
            "new_password_again": "mat-khau-khac-han",
            "next": "/calendar",
        }
        differ = client.post("/account/password", data=form)
        assert differ.status_code == 422 and "Hai mật khẩu mới không giống nhau." in differ.text
        form["new_password_again"] = form["new_password"] = "mat-khau-rieng-moi"
        changed = client.post("/account/password", data=form, follow_redirects=False)
        assert changed.status_code == 303 and changed.headers["location"] == "/calendar"
        assert client.get("/calendar", follow_redirects=False).status_code == 200
        assert elsewhere.get("/calendar", follow_redirects=False).status_code == 303
        assert (
            elsewhere.get("/api/v1/me", headers={"Authorization": f"Bearer {api}"}).status_code
            == 401
        )


def test_password_change_page_says_why_a_password_is_refused(
    web: Callable[..., TestClient],
) -> None:
    client = web(Role.viewer)
    page = client.get("/account/password")
    for new, message in (
        ("ngan", "Mật khẩu mới quá ngắn: cần ít nhất 12 ký tự."),
        ("qwerty123456", "Mật khẩu mới quá phổ biến. Hãy chọn mật khẩu khác."),
        ("eeeeeeeeeeeeee", "Mật khẩu mới không được lặp lại một ký tự duy nhất."),
    ):
        form = {
            "csrf_token": csrf_of(page.text),
            "current_password": PASSWORD,
            "new_password": new,
            "new_password_again": new,
        }
        refused = client.post("/account/password", data=form)
        assert refused.status_code == 422 and message in refused.text, new
    form["current_password"] = "khong-dung-dau"
    form["new_password"] = form["new_password_again"] = "mot-mat-khau-tot"
    wrong = client.post("/account/password", data=form)
    assert wrong.status_code == 422 and "Mật khẩu hiện tại không đúng." in wrong.text


def test_a_reset_password_must_be_changed_before_anything_else(
    client: TestClient, admin: dict[str, str], database: Database
) -> None:
    create_user(database, "vanphong", Role.secretariat)
    user_id = next(
        u["id"]
        for u in client.get("/api/v1/users", headers=admin).json()
        if u["username"] == "vanphong"
    )
    one_time = client.post(f"/api/v1/users/{user_id}/password-reset", headers=admin).json()[
        "password"
    ]
    signed_in = sign_in(client, "vanphong", one_time)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/account/password?next=%2Fcalendar"
    sent_back = client.get("/bookings/new", follow_redirects=False)
    assert sent_back.status_code == 303
    assert sent_back.headers["location"] == "/account/password?next=%2Fbookings%2Fnew"
    page = client.get("/account/password?next=/calendar")
    assert "Mật khẩu của bạn do quản trị viên đặt." in page.text
    form = {
        "csrf_token": csrf_of(page.text),
        "current_password": one_time,
        "new_password": "mat-khau-cua-toi",
        "new_password_again": "mat-khau-cua-toi",
        "next": "/calendar",
    }
    assert client.post("/account/password", data=form, follow_redirects=False).status_code == 303
    assert client.get("/bookings/new", follow_redirects=False).status_code == 200


# --- sign-in limits on the form ------------------------------------------------------------------


def test_sign_in_form_shares_the_limits_and_says_when_to_retry(
    database: Database, tmp_path: Path, session: Session
) -> None:
    create_user(database, "vanphong", Role.secretariat)
    settings = make_settings(
        database.settings.database_url or "", tmp_path, auth={"max_failures_per_user": 2}
    )
    with TestClient(create_app(settings, database=database)) as client:
        assert sign_in(client, "vanphong", "doan-sai-mot-lan").status_code == 401
        api = client.post(
            "/api/v1/auth/token", data={"username": "vanphong", "password": "doan-sai-lan-hai"}
        )
        assert api.status_code == 401
        locked = sign_in(client, "vanphong")
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
        assert "Đăng nhập sai quá nhiều lần. Hãy thử lại sau 15 phút." in locked.text
    reasons = [
        (e.detail["via"], e.detail["reason"])
        for e in session.scalars(select(AuditEntry).where(AuditEntry.action == "sign_in_failed"))
    ]
    assert reasons == [("web", "wrong_password"), ("api", "wrong_password")]
    assert session.scalars(select(AuditEntry).where(AuditEntry.action == "sign_in_locked")).all()


# --- transport and headers -----------------------------------------------------------------------


def test_cookies_are_secure_and_hsts_is_sent_over_https(app: Any, database: Database) -> None:
    create_user(database, "vanphong", Role.secretariat)
    with TestClient(app, base_url="https://confbridge.example.vn") as client:
        response = sign_in(client, "vanphong")
        assert response.status_code == 303
        cookies = response.headers.get_list("set-cookie")
        assert cookies and all("secure" in c.lower() for c in cookies)
        assert response.headers["strict-transport-security"] == "max-age=31536000"
    with TestClient(app) as plain:
        response = sign_in(plain, "vanphong")
        assert "strict-transport-security" not in response.headers
        assert not any("secure" in c.lower() for c in response.headers.get_list("set-cookie"))


def test_cookies_are_secure_behind_a_trusted_https_proxy_only(app: Any) -> None:
    """uvicorn believes X-Forwarded-Proto only from `forwarded_allow_ips` (default: loopback)."""
    for trusted, secure in (("127.0.0.1", True), ("10.9.9.9", False)):
        config = uvicorn.Config(
            app, host="127.0.0.1", port=free_port(), log_level="warning",
            forwarded_allow_ips=trusted,
        )  # fmt: skip
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            while not server.started:
                time.sleep(0.02)
            url = f"http://127.0.0.1:{config.port}"
            # A first visit gets its CSRF cookie: Secure, if the proxy is believed.
            response = httpx.get(f"{url}/sign-in", headers={"X-Forwarded-Proto": "https"})
        finally:
            server.should_exit = True
            thread.join(10)
        assert response.status_code == 200
        cookies = response.headers.get_list("set-cookie")
        assert cookies and all(("secure" in c.lower()) is secure for c in cookies), cookies
        assert ("strict-transport-security" in response.headers) is secure


def test_every_response_says_nosniff_and_may_not_be_framed(client: TestClient) -> None:
    for path in ("/healthz", "/api/v1/me", "/static/css/app.css", "/sign-in", "/terminal"):
        response = client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
    assert (
        client.get("/api/v1/me").headers["content-security-policy"].startswith("default-src 'none'")
    )


def test_pages_and_the_kiosk_allow_scripts_and_media_servers_only_from_known_origins(
    client: TestClient, session: Session
) -> None:
    session.add(
        SfuNode(id="tinh-2", public_url="https://sfu2.example.vn:8443", internal_url="http://x",
                capacity_peers=100)
    )  # fmt: skip
    session.commit()
    kiosk = client.get("/terminal")
    policy = kiosk.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    connect = next(p for p in policy.split("; ") if p.startswith("connect-src"))
    assert connect.split() == [
        "connect-src", "'self'", "http://127.0.0.1:8001", "https://sfu2.example.vn:8443"
    ]  # fmt: skip
    # No inline code anywhere: the policy would block it.
    assert "<style" not in kiosk.text and "style=" not in kiosk.text
    assert client.get("/terminal/kiosk.css").headers["content-type"].startswith("text/css")
    sign_in_page = client.get("/sign-in").headers["content-security-policy"]
    assert "connect-src 'self';" in sign_in_page and "http:" not in sign_in_page


def test_cookies_are_secure_when_the_public_url_is_https(
    database: Database, tmp_path: Path
) -> None:
    """A proxy that forgets X-Forwarded-Proto must not make the cookies travel in clear."""
    settings = make_settings(
        database.settings.database_url or "", tmp_path, public_url="https://hop.example.vn"
    )
    with TestClient(create_app(settings, database=database)) as client:
        cookies = client.get("/sign-in").headers.get_list("set-cookie")
    assert cookies and all("secure" in c.lower() for c in cookies)
