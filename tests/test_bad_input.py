"""Bad input never ends in a server error: every JSON route, every date query, CR/LF in names.

The JSON routes are found by walking the application's routes, and each gets bodies built from
its own schema, with NaN in every number, a lone UTF-16 surrogate in every string, years 1 and
9999 in every date, or CR/LF in every string: any answer but a 5xx is acceptable there (some
fields take free text); the parts that must be refused are checked one by one below.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI, params
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.settings import Settings
from confbridge.sites.models import Site
from tests.support.factories import create_user, make_settings
from tests.support.web import sign_in

Headers = dict[str, str]
NODE_SECRET = "node-secret-for-bad-input-tests-0123456789"
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
MODES = ("surrogate", "nan", "year1", "year9999", "crlf")
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def settings(database: Database, tmp_path: Any) -> Settings:
    return make_settings(
        database.settings.database_url or "", tmp_path, sfu={"node_secret": NODE_SECRET}
    )


@dataclass(frozen=True)
class JsonRoute:
    path: str
    method: str
    annotation: Any


def json_routes(app: FastAPI) -> Iterator[JsonRoute]:
    """Every route that reads a JSON body (form posts excluded), included routers expanded."""
    for route in app.routes:
        expand = getattr(route, "effective_route_contexts", None)
        for candidate in expand() if expand else [route]:
            body = getattr(candidate, "body_field", None)
            if body is None or isinstance(body.field_info, params.Form):
                continue
            for method in sorted(set(getattr(candidate, "methods", ())) & BODY_METHODS):
                yield JsonRoute(candidate.path, method, body.field_info.annotation)


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return _resolve(options[0], defs)
    return schema


def example(schema: dict[str, Any], defs: dict[str, Any], mode: str) -> Any:
    """A value for `schema` whose strings, numbers and dates carry the bad input of `mode`."""
    schema = _resolve(schema, defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if not props and isinstance(schema.get("additionalProperties"), dict):
            return {"key": example(schema["additionalProperties"], defs, mode)}
        return {name: example(sub, defs, mode) for name, sub in props.items()}
    if kind == "array":
        return [example(schema.get("items", {}), defs, mode)]
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return math.nan if mode == "nan" else float(schema.get("minimum", 1))
    if kind == "boolean":
        return True
    if kind == "string":
        fmt = schema.get("format")
        if fmt in ("date-time", "date"):
            stamp = {
                "year1": "0001-01-01T00:00:00+07:00",
                "year9999": "9999-12-31T23:59:59-07:00",
            }.get(mode, "2026-01-05T08:00:00+07:00")
            return stamp[:10] if fmt == "date" else stamp
        text = {"surrogate": "a\ud800b", "crlf": "a\r\nb"}.get(mode, "abc")
        return text.ljust(int(schema.get("minLength", 0)), "x")
    return "abc" if mode != "surrogate" else "a\ud800b"


def body_for(route: JsonRoute, mode: str) -> Any:
    schema = TypeAdapter(route.annotation).json_schema()
    return example(schema, schema.get("$defs", {}), mode)


@pytest.fixture
def world(
    client: TestClient, admin: Headers, sites: dict[str, Site]
) -> Callable[[str], tuple[str, Headers]]:
    """Ids for path parameters and the right credentials for each route."""
    created = client.post(
        "/api/v1/series",
        json={
            "title": "Giao ban",
            "kind": "giao_ban",
            "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=3",
            "dtstart": "2030-01-07T08:00:00",
            "duration_min": 60,
            "chair_site_id": sites["hq"].id,
            "site_ids": [sites["p1"].id],
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    series_id = created.json()["id"]
    occurrences = client.get(
        f"/api/v1/series/{series_id}/occurrences?from=2030-01-01&to=2030-02-01", headers=admin
    ).json()["items"]
    terminal = client.post(
        f"/api/v1/sites/{sites['hq'].id}/terminals", json={"name": "tv"}, headers=admin
    )
    assert terminal.status_code == 201, terminal.text
    ids = {
        "series_id": series_id,
        "occurrence_id": occurrences[0]["id"],
        "site_id": sites["hq"].id,
        "terminal_id": 1,
        "alert_id": 1,
        "day": "2030-01-14",
    }
    terminal_headers = {"Authorization": f"Bearer {terminal.json()['token']}"}

    def resolve(path: str) -> tuple[str, Headers]:
        for name, value in ids.items():
            path = path.replace(f"{{{name}}}", str(value))
        if "/sfu/" in path:
            return path, {"Authorization": f"Bearer {NODE_SECRET}"}
        if "/terminals/me" in path or path.endswith("/join"):
            return path, terminal_headers
        return path, admin

    return resolve


def test_json_routes_are_found(app: FastAPI) -> None:
    paths = {(r.method, r.path) for r in json_routes(app)}
    assert ("POST", "/api/v1/terminals/pair") in paths
    assert ("POST", "/api/v1/sfu/events") in paths
    assert ("POST", "/auth/token") not in paths and len(paths) >= 15


@pytest.mark.parametrize("mode", MODES)
def test_every_json_route_answers_bad_values_without_a_server_error(
    app: FastAPI, client: TestClient, world: Callable[[str], tuple[str, Headers]], mode: str
) -> None:
    failures = []
    for route in json_routes(app):
        path, headers = world(route.path)
        body = json.dumps(body_for(route, mode))  # NaN and "\ud800" as Python writes them
        response = client.request(
            route.method, path, content=body.encode(), headers={**headers, **JSON}
        )
        # 503: the floor command finds no media server in this test, as it should
        if response.status_code >= 500 and response.status_code != 503:
            failures.append(f"{route.method} {route.path}: {response.status_code}")
    assert failures == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"code": "ABCD-EFGH", "x": NaN}', "NaN"),
        ('{"code": "ABCD-EFGH", "x": -Infinity}', "-Infinity"),
        ('{"code": "AB\\ud800CD"}', "surrogate"),
        ('{"code\\udfff": "ABCD"}', "surrogate"),
    ],
)
def test_unauthenticated_pairing_refuses_nan_and_lone_surrogates(
    client: TestClient, body: str, problem: str
) -> None:
    response = client.post("/api/v1/terminals/pair", content=body.encode(), headers=JSON)
    assert response.status_code == 422, response.text
    assert problem in json.dumps(response.json()["detail"])


@pytest.mark.parametrize("mode", ["surrogate", "nan"])
def test_every_json_route_refuses_nan_and_lone_surrogates_before_anything_else(
    app: FastAPI, client: TestClient, world: Callable[[str], tuple[str, Headers]], mode: str
) -> None:
    """The refusal is the same on every route, whatever its fields: 422 naming the value."""
    for route in json_routes(app):
        path, headers = world(route.path)
        raw = '{"value": NaN}' if mode == "nan" else '{"value": "\\ud800"}'
        response = client.request(
            route.method, path, content=raw.encode(), headers={**headers, **JSON}
        )
        assert response.status_code == 422, (route.path, response.text)
        assert response.json()["detail"][0]["type"] == "json_invalid"


def test_surrogate_pairs_and_nan_inside_strings_are_fine(
    client: TestClient, admin: Headers, sites: dict[str, Site]
) -> None:
    unit_id = sites["hq"].unit_id
    body = '{"name": "Hội trường \\ud83c\\udfdb NaN Infinity", "unit_id": ' + f"{unit_id}}}"
    response = client.post("/api/v1/sites", content=body.encode(), headers={**admin, **JSON})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Hội trường \U0001f3db NaN Infinity"


def test_sfu_event_with_nan_stats_is_refused(client: TestClient) -> None:
    body = (
        '{"events": [{"id": "abcdefgh01", "type": "stats", "at": "2026-01-05T08:00:00Z",'
        ' "node_id": "n", "room": "occ-1", "occurrence_id": 1, "site_id": 1,'
        ' "stats": {"rtt_ms": NaN, "packets": 1}}]}'
    )
    response = client.post(
        "/api/v1/sfu/events",
        content=body.encode(),
        headers={"Authorization": f"Bearer {NODE_SECRET}", **JSON},
    )
    assert response.status_code == 422, response.text


# --- dates far away ------------------------------------------------------------------------------

FAR_DATES = ["0001-01-01", "9999-12-31", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"]


@pytest.mark.parametrize("value", FAR_DATES)
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/occurrences?{name}={value}",
        "/api/v1/series/{series_id}/occurrences?{name}={value}",
        "/api/v1/reports/online-ratio?{name}={value}",
        "/api/v1/reports/attendance?{name}={value}",
    ],
)
@pytest.mark.parametrize("name", ["from", "to"])
def test_date_queries_in_year_1_or_9999_are_refused(
    client: TestClient,
    world: Callable[[str], tuple[str, Headers]],
    path: str,
    name: str,
    value: str,
) -> None:
    target, headers = world(path.replace("{name}", name).replace("{value}", value))
    response = client.get(target.replace("+", "%2B"), headers=headers)
    assert response.status_code == 422, response.text
    assert name in response.text


@pytest.mark.parametrize("value", FAR_DATES)
@pytest.mark.parametrize(
    "path",
    [
        "/reports?from_date={value}",
        "/reports?to_date={value}",
        "/reports/attendance?to_date={value}",
        "/reports/online-ratio.csv?from_date={value}",
        "/calendar?day={value}",
        "/calendar?view=month&day={value}",
    ],
)
def test_web_pages_with_dates_in_year_1_or_9999_answer_without_a_server_error(
    client: TestClient, database: Database, path: str, value: str
) -> None:
    create_user(database, "xem", Role.viewer)
    assert sign_in(client, "xem").status_code == 303
    response = client.get(path.replace("{value}", value).replace("+", "%2B"))
    assert response.status_code < 500, response.text


@pytest.mark.parametrize(
    "start_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "0001-01-01"]
)
def test_moving_an_occurrence_to_year_1_or_9999_is_refused(
    client: TestClient, world: Callable[[str], tuple[str, Headers]], start_at: str
) -> None:
    path, headers = world("/api/v1/occurrences/{occurrence_id}")
    response = client.patch(path, json={"start_at": start_at}, headers=headers)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("dtstart", ["0001-01-01T08:00:00", "9999-12-31T23:00:00"])
def test_a_series_starting_in_year_1_or_9999_is_refused(
    client: TestClient, admin: Headers, sites: dict[str, Site], dtstart: str
) -> None:
    response = client.post(
        "/api/v1/series",
        json={
            "title": "Giao ban",
            "kind": "giao_ban",
            "rrule": "FREQ=WEEKLY;BYDAY=MO",
            "dtstart": dtstart,
            "duration_min": 60,
            "chair_site_id": sites["hq"].id,
        },
        headers=admin,
    )
    assert response.status_code == 422, response.text


# --- line breaks in names and titles -------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["Giao ban\r\nDTSTART:20260101T000000Z", "A\nB", "A\tB", "A\u2028B"]
)
def test_titles_and_names_with_line_breaks_are_refused(
    client: TestClient, admin: Headers, sites: dict[str, Site], text: str
) -> None:
    series = {
        "title": text,
        "kind": "giao_ban",
        "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=2",
        "dtstart": "2030-01-07T08:00:00",
        "duration_min": 60,
        "chair_site_id": sites["hq"].id,
    }
    attempts = [
        client.post("/api/v1/series", json=series, headers=admin),
        client.post(
            "/api/v1/sites", json={"name": text, "unit_id": sites["hq"].unit_id}, headers=admin
        ),
        client.patch(f"/api/v1/sites/{sites['p1'].id}", json={"name": text}, headers=admin),
        client.post("/api/v1/units", json={"name": text, "kind": "ward"}, headers=admin),
    ]
    for response in attempts:
        assert response.status_code == 422, response.text
        assert "one line" in response.text


def test_calendar_feeds_survive_names_stored_with_line_breaks(
    client: TestClient, admin: Headers, sites: dict[str, Site], database: Database
) -> None:
    """Names stored before they were checked still make valid feeds, one content line each."""
    from icalendar import Calendar

    from confbridge.meetings.models import Series

    created = client.post(
        "/api/v1/series",
        json={
            "title": "Giao ban",
            "kind": "giao_ban",
            "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=2",
            "dtstart": "2030-01-07T08:00:00",
            "duration_min": 60,
            "chair_site_id": sites["hq"].id,
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    with database.session() as session:
        session.get(Series, created.json()["id"]).title = "Giao ban\r\nX-EVIL:1\x0b"
        session.get(Site, sites["hq"].id).name = "Hội trường\nX-EVIL:2"
        session.commit()
    for path in (
        f"/api/v1/series/{created.json()['id']}/calendar.ics",
        f"/api/v1/sites/{sites['hq'].id}/calendar.ics",
    ):
        response = client.get(path, headers=admin)
        assert response.status_code == 200, response.text
        lines = response.content.split(b"\r\n")
        assert not any(b"\n" in line or b"\r" in line or b"\x0b" in line for line in lines)
        assert not any(line.startswith(b"X-EVIL") for line in lines)
        calendar = Calendar.from_ical(response.content)
        event = calendar.walk("VEVENT")[0]
        assert "X-EVIL" in str(event["summary"]) + str(event["location"])
