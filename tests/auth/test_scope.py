"""Scoped roles over the API: each rule with real requests, two provinces on one installation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.auth import scope as scope_service
from confbridge.auth import service as auth_service
from confbridge.auth.models import Role
from confbridge.db import Database
from tests.support.factories import PASSWORD
from tests.support.scopes import Headers, TwoProvinces, make_two_provinces, scoped_user


@pytest.fixture
def world(session: Session) -> TwoProvinces:
    return make_two_provinces(session)


@pytest.fixture
def users(
    database: Database, client: TestClient, world: TwoProvinces, admin: Headers
) -> dict[str, Headers]:
    """Signed-in users: the root admin, secretariats of province A, its two wards and
    province B, province A's IT and administrator, a viewer of ward p1."""
    units = world.units
    made = {"root": admin}
    for name, unit, role in (
        ("sec_a", units["a"], Role.secretariat),
        ("sec_p1", units["p1"], Role.secretariat),
        ("sec_p2", units["p2"], Role.secretariat),
        ("sec_b", units["b"], Role.secretariat),
        ("it_a", units["a"], Role.it),
        ("admin_a", units["a"], Role.admin),
        ("viewer_p1", units["p1"], Role.viewer),
    ):
        made[name] = scoped_user(database, client, name, [(unit, role)])
    return made


def _series(chair: int, *invited: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Giao ban",
        "kind": "giao_ban",
        "mode": "online",
        "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=4",
        "dtstart": "2030-03-04T07:30:00",
        "duration_min": 60,
        "chair_site_id": chair,
        "site_ids": list(invited),
    }
    body.update(changes)
    return body


def _book(client: TestClient, headers: Headers, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/series", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _first_occurrence(client: TestClient, headers: Headers, series_id: int) -> int:
    response = client.get(
        f"/api/v1/series/{series_id}/occurrences?from=2030-01-01&to=2031-01-01", headers=headers
    )
    assert response.status_code == 200, response.text
    return int(response.json()["items"][0]["id"])


def test_scope_of_a_ward_is_its_subtree_and_the_root_is_everything(
    session: Session, world: TwoProvinces
) -> None:
    user = auth_service.create(
        session=session,
        username="hai_vai",
        password=PASSWORD,
        memberships=[
            auth_service.MembershipIn(unit_id=world.units["p1"], role=Role.secretariat),
            auth_service.MembershipIn(unit_id=world.units["a"], role=Role.viewer),
        ],
    )
    booking = scope_service.scope_of(session=session, user=user, roles=[Role.secretariat])
    reading = scope_service.scope_of(session=session, user=user)
    assert booking.unit_ids == {world.units["p1"]}
    assert reading.covers(world.units["p2"]) and not reading.covers(world.units["b"])
    assert not booking.covers(None) and not reading.whole
    root = auth_service.create(session=session, username="goc", password=PASSWORD, role=Role.it)
    assert scope_service.scope_of(session=session, user=root, roles=[Role.it]).whole
    assert scope_service.scope_of(session=session, user=root, roles=[Role.secretariat]).empty
    user.active = False
    assert scope_service.scope_of(session=session, user=user).empty


def test_scope_ward_secretariat_books_only_its_ward(
    client: TestClient, world: TwoProvinces, users: dict[str, Headers]
) -> None:
    sites = world.sites
    own = client.post("/api/v1/series", json=_series(sites["p1"]), headers=users["sec_p1"])
    assert own.status_code == 201, own.text
    other_ward = client.post("/api/v1/series", json=_series(sites["p2"]), headers=users["sec_p1"])
    assert other_ward.status_code == 403
    upward = client.post(
        "/api/v1/series", json=_series(sites["p1"], sites["hq"]), headers=users["sec_p1"]
    )
    assert upward.status_code == 403
    assert "invitations upward" in upward.json()["detail"]
    # a site that does not exist gets the same answer as another unit's: nothing leaks
    missing = client.post(
        "/api/v1/series", json=_series(sites["p1"], 999_999), headers=users["sec_p1"]
    )
    assert missing.status_code == 403
    assert missing.json()["detail"].replace("999999", "X") == upward.json()["detail"].replace(
        str(sites["hq"]), "X"
    )
    units = client.post(
        "/api/v1/series",
        json=_series(sites["p1"], unit_ids=[world.units["a"]]),
        headers=users["sec_p1"],
    )
    assert units.status_code == 403
    # the province's secretariat invites its wards
    _book(
        client,
        users["sec_a"],
        _series(sites["hq"], sites["p1"], sites["p2"], dtstart="2030-03-04T14:00"),
    )


def test_scope_ward_cannot_see_or_move_another_wards_meetings(
    client: TestClient, world: TwoProvinces, users: dict[str, Headers]
) -> None:
    theirs = _book(client, users["sec_p2"], _series(world.sites["p2"], title="Họp phường Hai"))
    occurrence_id = _first_occurrence(client, users["sec_p2"], theirs["id"])
    p1 = users["sec_p1"]
    assert client.get(f"/api/v1/series/{theirs['id']}", headers=p1).status_code == 404
    moved = client.patch(
        f"/api/v1/occurrences/{occurrence_id}",
        json={"start_at": "2030-03-04T03:00:00Z"},
        headers=p1,
    )
    assert moved.status_code == 404
    assert (
        client.patch(f"/api/v1/series/{theirs['id']}", json={"title": "x"}, headers=p1).status_code
        == 404
    )
    assert client.delete(f"/api/v1/series/{theirs['id']}", headers=p1).status_code == 404
    assert client.get(f"/api/v1/occurrences/{occurrence_id}", headers=p1).status_code == 404
    assert (
        client.get(f"/api/v1/occurrences/{occurrence_id}/attendance", headers=p1).status_code == 404
    )
    assert client.get("/api/v1/series", headers=p1).json()["total"] == 0
    listed = client.get("/api/v1/occurrences?from=2030-01-01&to=2031-01-01", headers=p1).json()
    assert listed["total"] == 0
    assert client.get(f"/api/v1/sites/{world.sites['p2']}", headers=p1).status_code == 404
    assert (
        client.get(f"/api/v1/sites/{world.sites['p2']}/calendar.ics", headers=p1).status_code == 404
    )
    # its own secretariat and the province's see it and may move it
    assert client.get(f"/api/v1/series/{theirs['id']}", headers=users["sec_a"]).status_code == 200
    moved = client.patch(
        f"/api/v1/occurrences/{occurrence_id}",
        json={"start_at": "2030-03-04T03:00:00Z"},
        headers=users["sec_a"],
    )
    assert moved.status_code == 200, moved.text


def test_scope_invited_ward_sees_the_province_meeting_but_may_not_change_it(
    client: TestClient, world: TwoProvinces, users: dict[str, Headers]
) -> None:
    sites = world.sites
    briefing = _book(
        client, users["sec_a"], _series(sites["hq"], sites["p1"], sites["p2"], title="Tỉnh")
    )
    occurrence_id = _first_occurrence(client, users["sec_p1"], briefing["id"])
    p1 = users["sec_p1"]
    assert client.get(f"/api/v1/series/{briefing['id']}", headers=p1).status_code == 200
    detail = client.get(f"/api/v1/occurrences/{occurrence_id}", headers=p1).json()
    assert detail["site_ids"] == [sites["p1"]] and detail["site_count"] == 3
    changed = client.patch(
        f"/api/v1/occurrences/{occurrence_id}", json={"status": "cancelled"}, headers=p1
    )
    assert changed.status_code == 403 and "chaired by another unit" in changed.json()["detail"]
    attendance = client.get(f"/api/v1/occurrences/{occurrence_id}/attendance", headers=p1)
    assert attendance.status_code == 200
    assert [r["site_id"] for r in attendance.json()["records"]] == [sites["p1"]]


def test_scope_provinces_see_nothing_of_each_other_conflicts_included(
    client: TestClient, world: TwoProvinces, users: dict[str, Headers]
) -> None:
    sites = world.sites
    root, sec_b = users["root"], users["sec_b"]
    national = _book(
        client, root, _series(sites["hq"], sites["p1"], sites["hq_b"], title="Họp toàn quốc")
    )
    own_a = _book(
        client,
        users["sec_a"],
        _series(sites["hq"], title="Riêng tỉnh A", dtstart=("2030-03-04T10:00")),
    )
    clash = client.post(
        "/api/v1/series", json=_series(sites["hq_b"], title="Tỉnh B họp"), headers=sec_b
    )
    assert clash.status_code == 409
    text = clash.text
    assert "Họp toàn quốc" in text  # it books B's own hall, so B sees it
    for name in ("Thử", "Phường Một", "Riêng tỉnh A"):
        assert name not in text
    assert {c["site_id"] for c in clash.json()["conflicts"]} == {sites["hq_b"]}
    # lists, details and calendars of province A are not there for B
    assert client.get(f"/api/v1/series/{own_a['id']}", headers=sec_b).status_code == 404
    assert [s["id"] for s in client.get("/api/v1/series", headers=sec_b).json()["items"]] == [
        national["id"]
    ]
    listed_sites = client.get("/api/v1/sites", headers=sec_b).json()["items"]
    assert {s["id"] for s in listed_sites} == {sites["hq_b"], sites["wb"]}
    listed_units = client.get("/api/v1/units", headers=sec_b).json()["items"]
    assert {u["id"] for u in listed_units} == {world.units["b"], world.units["wb"]}
    roots = client.get("/api/v1/units?roots=true", headers=sec_b).json()["items"]
    assert [u["id"] for u in roots] == [world.units["b"]]
    assert client.get(f"/api/v1/units/{world.units['a']}", headers=sec_b).status_code == 404
    occurrence_id = _first_occurrence(client, sec_b, national["id"])
    detail = client.get(f"/api/v1/occurrences/{occurrence_id}", headers=sec_b).json()
    assert detail["site_ids"] == [sites["hq_b"]]
    # a room system address taken in province A is not named to province B
    taken = client.patch(
        f"/api/v1/sites/{sites['hq']}", json={"sip_uri": "sip:hq@a.example"}, headers=root
    )
    assert taken.status_code == 200, taken.text
    refused = client.patch(
        f"/api/v1/sites/{sites['hq_b']}", json={"sip_uri": "sip:hq@a.example"}, headers=sec_b
    )
    assert refused.status_code == 409
    assert "another site" in refused.json()["detail"] and "Thử" not in refused.text
    # reports: B's own unit by default, A's is as unknown as a unit that does not exist
    report = client.get("/api/v1/reports/attendance?from=2030-01-01&to=2030-12-31", headers=sec_b)
    assert report.status_code == 200 and report.json()["unit"]["id"] == world.units["b"]
    other = client.get(
        f"/api/v1/reports/attendance?unit_id={world.units['a']}&from=2030-01-01", headers=sec_b
    )
    assert other.status_code == 422 and "does not exist" in other.json()["detail"]


def test_scope_root_admin_does_everything(
    client: TestClient, world: TwoProvinces, users: dict[str, Headers]
) -> None:
    ward = _book(client, users["sec_p2"], _series(world.sites["p2"]))
    root = users["root"]
    changed = client.patch(f"/api/v1/series/{ward['id']}", json={"title": "Đổi"}, headers=root)
    assert changed.status_code == 200 and changed.json()["title"] == "Đổi"
    assert client.get("/api/v1/sites", headers=root).json()["total"] == 6
    national = client.post(
        "/api/v1/series",
        json=_series(world.sites["hq"], world.sites["hq_b"], dtstart="2030-03-04T15:00"),
        headers=root,
    )
    assert national.status_code == 201
    top = client.post("/api/v1/units", json={"name": "Tỉnh Ba", "kind": "province"}, headers=root)
    assert top.status_code == 201
    refused = client.post(
        "/api/v1/units", json={"name": "Tỉnh Tư", "kind": "province"}, headers=users["sec_a"]
    )
    assert refused.status_code == 403
    assert client.get("/api/v1/sfu/nodes", headers=users["it_a"]).status_code == 403
    assert client.get("/api/v1/sfu/nodes", headers=root).status_code == 200


def test_scope_province_admin_manages_only_its_users(
    client: TestClient, world: TwoProvinces, users: dict[str, Headers]
) -> None:
    admin_a = users["admin_a"]
    created = client.post(
        "/api/v1/users",
        json={
            "username": "thu_ky_p1",
            "memberships": [{"unit_id": world.units["p1"], "role": "secretariat"}],
        },
        headers=admin_a,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["must_change_password"] and len(body["password"]) >= 12
    assert body["memberships"] == [{"unit_id": world.units["p1"], "role": "secretariat"}]
    for memberships in (
        [{"unit_id": None, "role": "viewer"}],
        [{"unit_id": world.units["b"], "role": "viewer"}],
    ):
        refused = client.post(
            "/api/v1/users",
            json={"username": "khac", "password": "mat-khau-dai-du", "memberships": memberships},
            headers=admin_a,
        )
        assert refused.status_code == 403
    names = {u["username"] for u in client.get("/api/v1/users", headers=admin_a).json()}
    assert "thu_ky_p1" in names and "sec_b" not in names and "admin" not in names
    others = {
        u["username"]: u["id"] for u in client.get("/api/v1/users", headers=users["root"]).json()
    }
    assert client.get(f"/api/v1/users/{others['sec_b']}", headers=admin_a).status_code == 404
    assert (
        client.patch(
            f"/api/v1/users/{others['sec_b']}", json={"active": False}, headers=admin_a
        ).status_code
        == 404
    )
    # disabling: the account stays, its sessions end, it cannot sign in
    disabled = client.patch(
        f"/api/v1/users/{others['sec_p2']}", json={"active": False}, headers=admin_a
    )
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    assert client.get("/api/v1/me", headers=users["sec_p2"]).status_code == 401
    signed = client.post("/api/v1/auth/token", data={"username": "sec_p2", "password": PASSWORD})
    assert signed.status_code == 401 and "disabled" in signed.json()["detail"]
    assert client.delete(f"/api/v1/users/{others['sec_p2']}", headers=admin_a).status_code == 405


def test_scope_last_root_admin_stays_root(
    client: TestClient, world: TwoProvinces, users: dict[str, Headers]
) -> None:
    root = users["root"]
    ids = {u["username"]: u["id"] for u in client.get("/api/v1/users", headers=root).json()}
    to_province = {"memberships": [{"unit_id": world.units["a"], "role": "admin"}]}
    own = client.patch(f"/api/v1/users/{ids['admin']}", json=to_province, headers=root)
    assert own.status_code == 409
    created = client.post(
        "/api/v1/users",
        json={"username": "admin2", "password": "mat-khau-dai-du", "role": "admin"},
        headers=root,
    )
    assert created.status_code == 201
    token = client.post(
        "/api/v1/auth/token", data={"username": "admin2", "password": "mat-khau-dai-du"}
    ).json()["access_token"]
    admin2 = {"Authorization": f"Bearer {token}"}
    moved = client.patch(f"/api/v1/users/{ids['admin']}", json=to_province, headers=admin2)
    assert moved.status_code == 200, moved.text
    # admin2 is now the last administrator of everything: it cannot step down
    last = client.patch(f"/api/v1/users/{created.json()['id']}", json=to_province, headers=admin2)
    assert last.status_code == 409
    # and the province admin that `admin` became cannot reach it
    assert client.get(f"/api/v1/users/{created.json()['id']}", headers=root).status_code == 404


def test_scope_it_sees_only_its_provinces_terminals(
    client: TestClient, world: TwoProvinces, users: dict[str, Headers]
) -> None:
    root = users["root"]
    made = {}
    for key in ("p1", "hq_b"):
        response = client.post(
            "/api/v1/terminals", json={"site_id": world.sites[key], "name": key}, headers=root
        )
        assert response.status_code == 201, response.text
        made[key] = response.json()["terminal"]["id"]
    listed = client.get("/api/v1/terminals", headers=users["it_a"]).json()
    assert [t["id"] for t in listed["items"]] == [made["p1"]]
    assert client.get(f"/api/v1/terminals/{made['hq_b']}", headers=users["it_a"]).status_code == 404
    revoke = client.post(f"/api/v1/terminals/{made['hq_b']}/revoke", headers=users["it_a"])
    assert revoke.status_code == 404
    refused = client.post(
        "/api/v1/terminals",
        json={"site_id": world.sites["hq_b"], "name": "x"},
        headers=users["it_a"],
    )
    assert refused.status_code == 404
    overview = client.get("/api/v1/overview", headers=users["it_a"]).json()
    assert overview["nodes"] == []
    assert {t["site_id"] for t in overview["offline_terminals"]} <= {world.sites["p1"]}
