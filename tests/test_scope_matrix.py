"""The scope matrix: every /api route × every kind of caller, with real requests.

Each route is listed with its rule. A route added without a rule here fails the first test.
The second sends every route, for every caller the rule refuses, a real request on province
A's objects (a meeting chaired by ward p1's hall, its site, unit, terminal...) and checks the
refusal: 401 without a token, 403 for a role that may not, 404 where the object is outside
the caller's scope (its existence must not leak). Callers the rule lets through are sent the
reading routes (GET) and must not be refused; writes they may do are tested per rule elsewhere
(tests/auth/test_scope.py), as they would change the objects under the other callers' feet.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.recordings.models import Recording
from confbridge.timeutil import utcnow
from tests.support.pdfs import multi_page_pdf
from tests.support.scopes import Headers, TwoProvinces, make_two_provinces, scoped_user

CALLERS = ("anonymous", "root", "sec_a", "sec_p2", "sec_b", "it_a", "viewer_a", "terminal")
USERS = ("root", "sec_a", "sec_p2", "sec_b", "it_a", "viewer_a")

# Who is refused, and how, by each rule; callers not named are let through.
# "read": a scoped read of province A's object (sec_p2 and sec_b do not see it).
RULES: dict[str, dict[str, int]] = {
    "public": {},
    "self": {"anonymous": 401},
    "user": {"anonymous": 401, "terminal": 403},
    "list": {"anonymous": 401, "terminal": 403},
    "read": {"anonymous": 401, "terminal": 403, "sec_p2": 404, "sec_b": 404},
    # a calendar: a terminal reads its own site's
    "calendar": {"anonymous": 401, "sec_p2": 404, "sec_b": 404},
    "book": {"anonymous": 401, "terminal": 403, "it_a": 403, "viewer_a": 403},
    "change": {
        "anonymous": 401,
        "terminal": 403,
        "it_a": 403,
        "viewer_a": 403,
        "sec_p2": 404,
        "sec_b": 404,
    },
    "site_create": {"anonymous": 401, "terminal": 403, "viewer_a": 403},
    "site_edit": {"anonymous": 401, "terminal": 403, "viewer_a": 403, "sec_p2": 404, "sec_b": 404},
    "it_list": {"anonymous": 401, "terminal": 403, "sec_a": 403, "sec_p2": 403, "sec_b": 403}
    | {"viewer_a": 403},
    "it_object": {"anonymous": 401, "terminal": 403, "sec_a": 403, "sec_p2": 403, "sec_b": 403}
    | {"viewer_a": 403},
    "alerts": {"anonymous": 401, "terminal": 403, "viewer_a": 403},
    "admin": {c: 403 for c in USERS if c != "root"} | {"anonymous": 401, "terminal": 403},
    "root": {c: 403 for c in USERS if c != "root"} | {"anonymous": 401, "terminal": 403},
    "terminal": {c: 403 for c in USERS} | {"anonymous": 401},
    "node": {c: 401 for c in CALLERS},
    "floor": {"anonymous": 401, "sec_p2": 404, "sec_b": 404, "it_a": 403, "viewer_a": 403},
    # the meeting's record: users whose scope sees the meeting, and the invited sites' terminals
    "record": {"anonymous": 401, "sec_p2": 404, "sec_b": 404},
    # a document's pages drawn for a hall's screen: the invited sites' terminals only
    "hall": {c: 404 for c in USERS} | {"anonymous": 401},
    # who downloaded a recording: the secretariat whose scope sees the meeting (a recording
    # itself is read by every user whose scope sees the meeting: rule "read")
    "recordings": {"anonymous": 401, "terminal": 403, "it_a": 403, "viewer_a": 403}
    | {"sec_p2": 404, "sec_b": 404},
}

MATRIX: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/auth/token"): "public",
    ("POST", "/api/v1/auth/logout"): "self",
    ("GET", "/api/v1/me"): "self",
    ("PUT", "/api/v1/me/password"): "user",
    ("POST", "/api/v1/me/feed-token"): "user",
    ("DELETE", "/api/v1/me/feed-token"): "user",
    ("GET", "/api/v1/users"): "admin",
    ("POST", "/api/v1/users"): "admin",
    ("GET", "/api/v1/users/{user_id}"): "admin",
    ("PATCH", "/api/v1/users/{user_id}"): "admin",
    ("POST", "/api/v1/users/{user_id}/password-reset"): "admin",
    ("GET", "/api/v1/units"): "list",
    ("POST", "/api/v1/units"): "book",
    ("GET", "/api/v1/units/{unit_id}"): "read",
    ("GET", "/api/v1/sites"): "list",
    ("POST", "/api/v1/sites"): "site_create",
    ("GET", "/api/v1/sites/{site_id}"): "read",
    ("PATCH", "/api/v1/sites/{site_id}"): "site_edit",
    ("DELETE", "/api/v1/sites/{site_id}"): "site_edit",
    ("POST", "/api/v1/sites/{site_id}/terminals"): "it_object",
    ("POST", "/api/v1/series"): "book",
    ("GET", "/api/v1/series"): "list",
    ("GET", "/api/v1/series/{series_id}"): "read",
    ("PATCH", "/api/v1/series/{series_id}"): "change",
    ("DELETE", "/api/v1/series/{series_id}"): "change",
    ("POST", "/api/v1/series/{series_id}/unplanned/{day}"): "change",
    ("GET", "/api/v1/series/{series_id}/occurrences"): "read",
    ("GET", "/api/v1/occurrences"): "list",
    ("GET", "/api/v1/occurrences/{occurrence_id}"): "read",
    ("PATCH", "/api/v1/occurrences/{occurrence_id}"): "change",
    ("GET", "/api/v1/series/{series_id}/calendar.ics"): "read",
    ("GET", "/api/v1/sites/{site_id}/calendar.ics"): "calendar",
    ("GET", "/api/v1/terminals/me/agenda"): "terminal",
    ("POST", "/api/v1/occurrences/{occurrence_id}/join"): "terminal",
    ("POST", "/api/v1/occurrences/{occurrence_id}/floor"): "floor",
    ("GET", "/api/v1/occurrences/{occurrence_id}/events"): "read",
    ("POST", "/api/v1/sfu/events"): "node",
    ("GET", "/api/v1/sfu/grant-key"): "node",
    ("POST", "/api/v1/sfu/nodes"): "root",
    ("GET", "/api/v1/sfu/enrolments"): "root",
    ("DELETE", "/api/v1/sfu/nodes/{node_id}"): "root",
    ("GET", "/api/v1/sfu/nodes"): "root",
    ("POST", "/api/v1/sfu/nodes/{node_id}/drain"): "root",
    ("POST", "/api/v1/sfu/nodes/{node_id}/resume"): "root",
    ("POST", "/api/v1/sfu/nodes/heartbeat"): "node",
    ("GET", "/api/v1/alerts"): "alerts",
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): "it_list",
    ("GET", "/api/v1/overview"): "it_list",
    ("GET", "/api/v1/occurrences/{occurrence_id}/attendance"): "read",
    ("POST", "/api/v1/occurrences/{occurrence_id}/attendance/{site_id}/corrections"): "change",
    ("GET", "/api/v1/occurrences/{occurrence_id}/attendance/{site_id}/corrections"): "read",
    ("GET", "/api/v1/reports/online-ratio"): "list",
    ("GET", "/api/v1/reports/attendance"): "list",
    ("GET", "/api/v1/audit"): "admin",
    ("POST", "/api/v1/terminals"): "it_list",
    ("GET", "/api/v1/terminals"): "it_list",
    ("POST", "/api/v1/terminals/pair"): "public",
    ("GET", "/api/v1/terminals/me"): "terminal",
    ("POST", "/api/v1/terminals/me/heartbeat"): "terminal",
    ("GET", "/api/v1/terminals/me/floor"): "terminal",
    ("GET", "/api/v1/terminals/{terminal_id}"): "it_object",
    ("POST", "/api/v1/terminals/{terminal_id}/pairing-code"): "it_object",
    ("POST", "/api/v1/terminals/{terminal_id}/revoke"): "it_object",
    ("GET", "/api/v1/series/{series_id}/invitation"): "read",
    ("PATCH", "/api/v1/series/{series_id}/invitation"): "change",
    ("GET", "/api/v1/occurrences/{occurrence_id}/invitation"): "record",
    ("PATCH", "/api/v1/occurrences/{occurrence_id}/invitation"): "change",
    ("DELETE", "/api/v1/occurrences/{occurrence_id}/invitation"): "change",
    ("PUT", "/api/v1/occurrences/{occurrence_id}/current-item"): "change",
    ("GET", "/api/v1/occurrences/{occurrence_id}/invitation.{fmt}"): "record",
    ("GET", "/api/v1/occurrences/{occurrence_id}/conclusions"): "record",
    ("PUT", "/api/v1/occurrences/{occurrence_id}/conclusions"): "change",
    ("GET", "/api/v1/occurrences/{occurrence_id}/conclusions.{fmt}"): "record",
    ("POST", "/api/v1/occurrences/{occurrence_id}/documents"): "change",
    ("GET", "/api/v1/occurrences/{occurrence_id}/documents"): "record",
    ("GET", "/api/v1/documents/{document_id}"): "record",
    ("DELETE", "/api/v1/documents/{document_id}"): "change",
    ("GET", "/api/v1/documents/{document_id}/pages"): "hall",
    ("GET", "/api/v1/documents/{document_id}/pages/{number}.png"): "hall",
    ("GET", "/api/v1/sites/{site_id}/contacts"): "read",
    ("PUT", "/api/v1/sites/{site_id}/contacts"): "site_edit",
    ("POST", "/api/v1/occurrences/{occurrence_id}/notices"): "change",
    ("GET", "/api/v1/occurrences/{occurrence_id}/notices"): "read",
    # recording is the chair's, as the floor is: its terminal, or its unit's secretariat
    ("POST", "/api/v1/occurrences/{occurrence_id}/recording"): "floor",
    ("GET", "/api/v1/occurrences/{occurrence_id}/recordings"): "read",
    ("GET", "/api/v1/occurrences/{occurrence_id}/recordings/{recording_id}/file"): "read",
    ("GET", "/api/v1/occurrences/{occurrence_id}/recordings/{recording_id}/chapters.vtt"): "read",
    ("GET", "/api/v1/occurrences/{occurrence_id}/recordings/{recording_id}/downloads"): (
        "recordings"
    ),
}
# The terminal's floor needs a meeting in progress: for a terminal, tested in tests/terminals.
# A recording's file needs a media worker that wrote it: tested in tests/sfu/recording.
ALLOWED_NOT_SENT = {
    ("GET", "/api/v1/terminals/me/floor"),
    ("GET", "/api/v1/occurrences/{occurrence_id}/recordings/{recording_id}/file"),
}
# Valid bodies where a scope is checked after the body (else every caller would get 422).
BODIES = {
    ("POST", "/api/v1/series/{series_id}/unplanned/{day}"): {"action": "skip"},
    ("PATCH", "/api/v1/occurrences/{occurrence_id}"): {"status": "cancelled"},
    ("POST", "/api/v1/occurrences/{occurrence_id}/floor"): {"action": "mute_all"},
    ("POST", "/api/v1/occurrences/{occurrence_id}/attendance/{site_id}/corrections"): {
        "status": "present",
        "reason": "đã dự qua điện thoại",
    },
    ("PUT", "/api/v1/sites/{site_id}/contacts"): [],
    ("PATCH", "/api/v1/series/{series_id}/invitation"): {"place": "Hội trường phường Một"},
    ("POST", "/api/v1/occurrences/{occurrence_id}/recording"): {"action": "start"},
}
# a real one-page PDF: its pages are drawn for the invited hall
PDF = multi_page_pdf(1)


def api_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    for route in app.routes:
        expand = getattr(route, "effective_route_contexts", None)
        for candidate in expand() if expand else [route]:
            path = getattr(candidate, "path", "")
            if path.startswith("/api/"):
                for method in getattr(candidate, "methods", ()) or ():
                    yield method, path


def test_scope_matrix_names_every_api_route(app: FastAPI) -> None:
    routes = set(api_routes(app))
    assert routes - MATRIX.keys() == set(), "add the new routes to the scope matrix"
    assert MATRIX.keys() - routes == set(), "remove routes that are gone from the matrix"
    assert set(MATRIX.values()) <= RULES.keys()


@pytest.fixture
def world(session: Session) -> TwoProvinces:
    return make_two_provinces(session)


def _callers(
    database: Database, client: TestClient, admin: Headers, world: TwoProvinces
) -> dict[str, Headers]:
    units = world.units
    callers: dict[str, Headers] = {"anonymous": {}, "root": admin}
    for name, unit, role in (
        ("sec_a", units["a"], Role.secretariat),
        ("sec_p2", units["p2"], Role.secretariat),
        ("sec_b", units["b"], Role.secretariat),
        ("it_a", units["a"], Role.it),
        ("viewer_a", units["a"], Role.viewer),
    ):
        callers[name] = scoped_user(database, client, name, [(unit, role)])
    return callers


def test_scope_matrix_refuses_and_lets_through_as_each_rule_says(
    client: TestClient, database: Database, admin: Headers, world: TwoProvinces
) -> None:
    callers = _callers(database, client, admin, world)
    sites = world.sites
    series = client.post(
        "/api/v1/series",
        json={
            "title": "Họp phường Một",
            "kind": "giao_ban",
            "mode": "online",
            "rrule": "FREQ=WEEKLY;COUNT=2",
            "dtstart": "2030-03-04T07:30:00",
            "duration_min": 60,
            "chair_site_id": sites["p1"],
            "site_ids": [sites["p1"]],
        },
        headers=callers["sec_a"],
    ).json()
    occurrences = client.get(
        f"/api/v1/series/{series['id']}/occurrences?from=2030-01-01&to=2031-01-01",
        headers=admin,
    ).json()["items"]
    terminal = client.post(
        f"/api/v1/sites/{sites['p1']}/terminals", json={"name": "Máy 1"}, headers=admin
    ).json()
    callers["terminal"] = {"Authorization": f"Bearer {terminal['token']}"}
    occurrence_id = occurrences[0]["id"]
    # the record's readers need something to read: conclusions and a document
    client.put(
        f"/api/v1/occurrences/{occurrence_id}/conclusions",
        json={"text": "Giao phường Một báo cáo."},
        headers=callers["sec_a"],
    ).raise_for_status()
    document = client.post(
        f"/api/v1/occurrences/{occurrence_id}/documents",
        files={"file": ("bao-cao.pdf", PDF, "application/pdf")},
        headers=callers["sec_a"],
    ).json()
    # a finished recording to read (its file needs the worker that wrote it: not sent)
    with database.session() as session:
        session.add(
            Recording(
                id="0" * 32,
                occurrence_id=occurrence_id,
                node_id="nut-1",
                started_at=utcnow() - timedelta(minutes=5),
                ended_at=utcnow(),
                bytes=1000,
                sha256="0" * 64,
                started_by="user:sec_a",
                chapters=[{"start_ms": 0, "kind": "floor", "title": "Phường Một"}],
            )
        )
        session.commit()
    viewer_id = next(
        u["id"]
        for u in client.get("/api/v1/users", headers=admin).json()
        if u["username"] == "viewer_a"
    )
    values = {
        "{user_id}": str(viewer_id),
        "{unit_id}": str(world.units["p1"]),
        "{site_id}": str(sites["p1"]),
        "{series_id}": str(series["id"]),
        "{occurrence_id}": str(occurrences[0]["id"]),
        "{terminal_id}": str(terminal["id"]),
        "{alert_id}": "999999",
        "{node_id}": "nut-1",
        "{day}": "2030-03-04",
        "{document_id}": str(document["id"]),
        "{fmt}": "pdf",
        "{number}": "1",
        "{recording_id}": "0" * 32,
    }
    wrong: list[str] = []
    for (method, template), rule in sorted(MATRIX.items()):
        path = template
        for name, value in values.items():
            path = path.replace(name, value)
        refused = RULES[rule]
        for caller in CALLERS:
            expected = refused.get(caller)
            if expected is None and (method != "GET" or (method, template) in ALLOWED_NOT_SENT):
                continue  # a write it may do: tested per rule, not here
            body = BODIES.get((method, template), {})
            kwargs = {"json": body} if method in {"POST", "PUT", "PATCH"} else {}
            response = client.request(method, path, headers=callers[caller], **kwargs)
            status = response.status_code
            if expected is not None and status != expected:
                wrong.append(f"{method} {template} as {caller}: {status}, not {expected}")
            if (expected is None and status in (401, 403, 404)) or status >= 500:
                wrong.append(f"{method} {template} as {caller}: {status} ({response.text[:80]})")
    assert wrong == []
