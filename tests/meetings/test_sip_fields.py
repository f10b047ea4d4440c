"""A series' dial-in fields over HTTP: meeting number, PIN, SIP address, upstream bridges."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from confbridge.auth.models import AuditEntry, Role
from confbridge.db import Database
from confbridge.settings import Settings
from tests.support.factories import make_settings

Headers = dict[str, str]
DOMAIN = "hop.halong.gov.vn"
# A second series that does not clash with the first (Mondays).
TUESDAYS: dict[str, Any] = {"dtstart": "2030-03-05T07:30:00", "rrule": "FREQ=WEEKLY;BYDAY=TU"}


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return make_settings(database.settings.database_url or "", tmp_path, sip={"domain": DOMAIN})


def test_series_get_a_free_meeting_number_and_a_pin_at_creation(
    client: TestClient, secretariat: Headers, book: Callable[..., dict[str, Any]]
) -> None:
    first, second = book(), book(**TUESDAYS)
    for series in (first, second):
        number, pin = series["meeting_number"], series["pin"]
        assert len(number) == 7 and number.isdigit() and number[0] != "0"
        assert len(pin) == 6 and pin.isdigit()
        assert series["sip_address"] == f"sip:{number}@{DOMAIN}"
        assert series["upstream_sip_uri"] is None
    assert first["meeting_number"] != second["meeting_number"]
    read = client.get(f"/api/v1/series/{first['id']}", headers=secretariat).json()
    assert (read["meeting_number"], read["pin"]) == (first["meeting_number"], first["pin"])


def test_series_explicit_dial_in_fields_are_validated_and_a_taken_number_is_409(
    client: TestClient,
    secretariat: Headers,
    book: Callable[..., dict[str, Any]],
    series_body: Callable[..., dict[str, Any]],
) -> None:
    series = book(
        meeting_number="246813579", pin="0042", upstream_sip_uri="SIP:CP@Bridge.ChinhPhu.VN:5060"
    )
    assert series["meeting_number"] == "246813579" and series["pin"] == "0042"
    assert series["upstream_sip_uri"] == "sip:CP@bridge.chinhphu.vn"
    taken = client.post(
        "/api/v1/series",
        json=series_body(**TUESDAYS, meeting_number="246813579"),
        headers=secretariat,
    )
    assert taken.status_code == 409
    assert "246813579 is already the number of series" in taken.json()["detail"]
    bad = [
        {"meeting_number": "012345"},
        {"meeting_number": "12345"},
        {"meeting_number": "1234567890"},
        {"meeting_number": 1234567},
        {"pin": "123"},
        {"pin": "123456789"},
        {"pin": "12a4"},
        {"upstream_sip_uri": "http://bridge.vn"},
        {"upstream_sip_uri": "sip:bridge.vn"},
    ]
    for fields in bad:
        response = client.post(
            "/api/v1/series",
            json=series_body(dtstart="2030-03-06T07:30:00", **fields),
            headers=secretariat,
        )
        assert response.status_code == 422, (fields, response.text)


def test_series_update_changes_dial_in_fields_and_refuses_nulls(
    client: TestClient, secretariat: Headers, book: Callable[..., dict[str, Any]]
) -> None:
    series, other = book(), book(**TUESDAYS)
    url = f"/api/v1/series/{series['id']}"
    changed = client.patch(
        url,
        json={"meeting_number": "7654321", "pin": "13572468", "upstream_sip_uri": "sip:a@b.vn"},
        headers=secretariat,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["meeting_number"], body["pin"]) == ("7654321", "13572468")
    assert body["sip_address"] == f"sip:7654321@{DOMAIN}"
    assert body["occurrence_count"] == series["occurrence_count"]  # nothing re-planned
    same = client.patch(url, json={"meeting_number": "7654321"}, headers=secretariat)
    assert same.status_code == 200  # its own number is not "taken"
    taken = client.patch(url, json={"meeting_number": other["meeting_number"]}, headers=secretariat)
    assert taken.status_code == 409 and "already the number" in taken.json()["detail"]
    for name in ("meeting_number", "pin"):
        refused = client.patch(url, json={name: None}, headers=secretariat)
        assert refused.status_code == 422 and name in refused.json()["detail"]
    cleared = client.patch(url, json={"upstream_sip_uri": None}, headers=secretariat)
    assert cleared.json()["upstream_sip_uri"] is None


def test_series_pin_is_shown_to_secretariat_and_admins_only(
    client: TestClient,
    book: Callable[..., dict[str, Any]],
    make_user: Callable[..., Headers],
) -> None:
    series = book()
    for role, sees in ((Role.admin, True), (Role.it, False), (Role.viewer, False)):
        headers = make_user(role)
        one = client.get(f"/api/v1/series/{series['id']}", headers=headers).json()
        listed = client.get("/api/v1/series", headers=headers).json()["items"][0]
        for read in (one, listed):
            assert read["meeting_number"] == series["meeting_number"]
            assert (read["pin"] == series["pin"]) if sees else read["pin"] is None


def test_series_pin_is_never_logged_nor_audited(
    client: TestClient,
    secretariat: Headers,
    book: Callable[..., dict[str, Any]],
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    series = book(pin="86420135")
    client.patch(f"/api/v1/series/{series['id']}", json={"pin": "97531864"}, headers=secretariat)
    with database.session() as session:
        audit = [e.detail for e in session.scalars(select(AuditEntry))]
    assert {"pin": "(changed)"} in audit
    assert "86420135" not in repr(audit) and "97531864" not in repr(audit)
    assert "86420135" not in caplog.text and "97531864" not in caplog.text


def test_occurrence_upstream_overrides_without_a_move(
    client: TestClient,
    secretariat: Headers,
    book: Callable[..., dict[str, Any]],
    occurrences: Callable[[int], list[dict[str, Any]]],
) -> None:
    series = book(upstream_sip_uri="sip:cp@bridge.chinhphu.vn")
    first = occurrences(series["id"])[0]
    assert first["upstream_sip_uri"] is None
    url = f"/api/v1/occurrences/{first['id']}"
    changed = client.patch(
        url, json={"upstream_sip_uri": "sips:Tinh@Bridge.VN"}, headers=secretariat
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["upstream_sip_uri"] == "sips:Tinh@bridge.vn"
    assert changed.json()["start_at"] == first["start_at"]
    detail = client.get(url, headers=secretariat).json()
    assert detail["upstream_sip_uri"] == "sips:Tinh@bridge.vn"
    bad = client.patch(url, json={"upstream_sip_uri": "tel:+84"}, headers=secretariat)
    assert bad.status_code == 422
    cleared = client.patch(url, json={"upstream_sip_uri": None}, headers=secretariat)
    assert cleared.json()["upstream_sip_uri"] is None
