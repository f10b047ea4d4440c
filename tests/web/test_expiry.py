"""An ended sign-in, an unknown address and a refused action, as each page meets them: one
Vietnamese message, a sign-in that leads back to the same place, an HTML page for a person."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from confbridge.auth.models import Role
from confbridge.web.shared import local_path
from tests.support.web import csrf_of

EXPIRED_VI = "Phiên đăng nhập đã hết hạn. Hãy đăng nhập lại để tiếp tục."


def _expire(client: TestClient) -> None:
    """The browser still sends a session cookie, but it no longer holds (expired, revoked)."""
    client.cookies.set("cb_session", "an.expired.token")


def test_expiry_a_scripts_request_gets_401_with_the_message(
    web: Callable[..., TestClient],
) -> None:
    client = web(Role.it)
    _expire(client)
    for path in ("/it/body", "/session"):
        answer = client.get(path, headers={"X-Requested-With": "fetch"}, follow_redirects=False)
        assert answer.status_code == 401, path
        assert answer.json() == {"detail": EXPIRED_VI, "code": "session_expired"}
    # EventSource cannot set headers: it asks for text/event-stream
    stream = client.get("/occurrences/1/live", headers={"Accept": "text/event-stream"})
    assert stream.status_code == 401 and stream.json()["detail"] == EXPIRED_VI


def test_expiry_a_page_leads_to_sign_in_and_back(web: Callable[..., TestClient]) -> None:
    client = web(Role.secretariat)
    _expire(client)
    page = client.get("/reports?from=2026-01-01", follow_redirects=False)
    assert page.status_code == 303
    target = urlsplit(page.headers["location"])
    assert target.path == "/sign-in"
    query = parse_qs(target.query)
    assert query["next"] == ["/reports?from=2026-01-01"] and query["expired"] == ["1"]
    sign_in = client.get(page.headers["location"])
    assert 'id="sign-in-notice"' in sign_in.text and EXPIRED_VI in sign_in.text
    assert 'name="next" value="/reports?from=2026-01-01"' in sign_in.text


def test_expiry_a_form_sent_after_the_end_returns_to_the_form_page(
    web: Callable[..., TestClient],
) -> None:
    """The POST's own address cannot be opened again: the page that held the form is."""
    client = web(Role.secretariat)
    token = csrf_of(client.get("/bookings/new").text)
    _expire(client)
    sent = client.post(
        "/bookings/new",
        data={"csrf_token": token, "title": "Giao ban"},
        headers={"Referer": "http://testserver/series/5/edit"},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    assert parse_qs(urlsplit(sent.headers["location"]).query)["next"] == ["/series/5/edit"]
    # a Referer from another site never becomes the way back
    foreign = client.post(
        "/bookings/new",
        data={"csrf_token": token},
        headers={"Referer": "https://evil.example/x"},
        follow_redirects=False,
    )
    assert parse_qs(urlsplit(foreign.headers["location"]).query)["next"] == ["/calendar"]


def test_expiry_sign_in_without_a_previous_session_says_nothing_of_expiry(
    client: TestClient,
) -> None:
    page = client.get("/calendar", follow_redirects=False)
    assert "expired" not in page.headers["location"]
    assert 'id="sign-in-notice"' not in client.get(page.headers["location"]).text


def test_expiry_next_must_be_a_path_of_this_site() -> None:
    assert local_path("/calendar?view=month") == "/calendar?view=month"
    for outside in ("https://evil.example/", "//evil.example", "/\\evil.example", "calendar"):
        assert local_path(outside) == "/calendar", outside
    assert local_path("/x\r\nSet-Cookie: a=b") == "/calendar"


def test_expiry_unknown_address_is_an_html_page_in_the_users_language(
    client: TestClient,
) -> None:
    page = client.get("/no/such/page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="vi">' in page.text and "Trang này không tồn tại." in page.text
    client.cookies.set("cb_lang", "en")
    assert "This page does not exist." in client.get("/no/such/page").text
    # the API and the scripts keep JSON
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.headers["content-type"] == "application/json"
    fetched = client.get("/no/such/page", headers={"X-Requested-With": "fetch"})
    assert fetched.status_code == 404 and fetched.json()["detail"]
