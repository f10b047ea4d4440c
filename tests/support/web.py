"""The web pages' forms as a browser-like client fills them: the CSRF field, signing in, a
weekday the booking form will not move."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient

from confbridge.meetings.recurrence import holiday_name
from tests.support.factories import PASSWORD

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


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


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    """Sign in through the form, as a browser does; the answer (303 on success)."""
    token = csrf_of(client.get("/sign-in").text)
    return client.post(
        "/sign-in",
        data={"csrf_token": token, "username": username, "password": password, "next": "/calendar"},
        follow_redirects=False,
    )


def post_form(client: TestClient, page: str, action: str, data: dict[str, str]) -> Any:
    """Submit a form of `page` to `action` as a browser does (with the page's CSRF field);
    the answer, redirects not followed."""
    token = csrf_of(client.get(page).text)
    return client.post(action, data={"csrf_token": token, **data}, follow_redirects=False)
