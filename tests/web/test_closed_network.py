"""A closed government network reaches nothing outside: no page the service serves (API docs,
sign-in, calendar, kiosk, console, dashboard, reports ...) loads or links anything external."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin, urlparse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from confbridge.auth.models import Role
from confbridge.bootstrap import seed_demo
from confbridge.db import Database
from confbridge.meetings.models import Occurrence, Series
from confbridge.settings import Settings

SERVER = "testserver"  # the TestClient's host: the service itself
# A URL with a scheme (http:, https:, ws:, webcal: ...) or protocol-relative (//cdn...).
ABSOLUTE_URL = re.compile(r"""(?:\b[a-z][a-z0-9+.-]*:)?//[^\s"'<>()\\]+""", re.IGNORECASE)
# Attributes and CSS that make a browser fetch something.
LOADED = re.compile(
    r"""(?:\b(?:src|href|action|formaction|poster|data|srcset|content)\s*=\s*["']?|"""
    r"""url\(\s*["']?|@import\s+["']?)([^"'\s>)]+)""",
    re.IGNORECASE,
)
# XML namespaces name a vocabulary; nothing is fetched from them.
NAMESPACE = re.compile(r"""\bxmlns(?::\w+)?\s*=\s*["'][^"']*["']""")
STREAMS = ("/live",)  # server-sent events: endless, and not pages


def route_paths(app: Any) -> Iterator[str]:
    """Every GET path of the app outside /api (routers included)."""
    try:
        from fastapi.routing import iter_route_contexts

        routes: Any = iter_route_contexts(app.routes)
    except ImportError:  # older FastAPI: included routes are flat already
        routes = app.routes
    for route in routes:
        methods = getattr(route, "methods", None) or ()
        path = getattr(route, "path", "")
        if "GET" in methods and not path.startswith("/api"):
            yield path


def external_urls(text: str) -> list[str]:
    """Absolute URLs in `text` that point anywhere but the service itself."""
    found = []
    for match in ABSOLUTE_URL.finditer(NAMESPACE.sub("", text)):
        url = match.group(0)
        host = urlparse(url if "://" in url or url.startswith("//") else f"//{url}").hostname
        if host != SERVER:
            found.append(url)
    return found


@pytest.fixture
def demo(settings: Settings, database: Database) -> dict[str, int]:
    """The Hạ Long demo (sites, a weekly briefing with occurrences, a terminal)."""
    seed_demo(settings, database, lambda _line: None)
    with database.session() as session:
        series_id = session.scalars(select(Series.id)).first()
        occurrence_id = session.scalars(select(Occurrence.id)).first()
    assert series_id is not None and occurrence_id is not None
    return {"series_id": series_id, "occurrence_id": occurrence_id}


def fill(path: str, ids: dict[str, int]) -> str | None:
    """`path` with its parameters filled in; None for downloads (`.{fmt}`)."""
    if "{fmt}" in path:
        return None
    values = {"code": "en", "script": "kiosk", **{name: str(value) for name, value in ids.items()}}
    # a page added later with another parameter is still fetched (its 404 page is scanned too)
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "1"), path)


def test_closed_network_no_page_references_an_external_url(
    app: Any, web: Callable[..., TestClient], demo: dict[str, int]
) -> None:
    client = web(Role.admin)
    pages: dict[str, str] = {}
    for template in route_paths(app):
        path = fill(template, demo)
        if path is None or path.endswith(STREAMS):
            continue
        response = client.get(path)
        if response.headers.get("content-type", "").startswith("text/html"):
            pages[path] = response.text
    expected = {"/docs", "/redoc", "/sign-in", "/calendar", "/terminal", "/it", "/reports"}
    expected |= {f"/occurrences/{demo['occurrence_id']}/console", "/bookings/new"}
    assert expected <= set(pages), expected - set(pages)

    problems = {path: external_urls(html) for path, html in pages.items()}
    assert {path: urls for path, urls in problems.items() if urls} == {}

    # what the pages load (scripts, styles, icons) is served here, and loads nothing further
    assets = {
        urljoin(path, link.replace("&amp;", "&"))
        for path, html in pages.items()
        for link in LOADED.findall(NAMESPACE.sub("", html))
        if not link.startswith(("#", "data:", "javascript:", "mailto:"))
    }
    loaded = [a for a in assets if a.startswith("/static") or a.endswith((".js", ".css"))]
    assert any(a.startswith("/static-offline-docs/") for a in loaded), loaded  # the docs' own
    for asset in loaded:
        response = client.get(asset)
        assert response.status_code == 200, asset
        if asset.endswith(".css"):
            links = [link for link in LOADED.findall(response.text) if not link.startswith("data:")]
            assert [link for link in links if external_urls(link)] == [], asset
        elif asset.endswith(".js") and "offline-docs" not in asset:
            # the project's own scripts; the docs' bundles are third-party and minified
            assert external_urls(response.text) == [], asset


def test_closed_network_docs_disable_the_online_validator(client: TestClient) -> None:
    html = client.get("/docs").text
    assert '"validatorUrl": null' in html
    assert (
        "cdn.jsdelivr.net" not in html and "fonts.googleapis.com" not in client.get("/redoc").text
    )
