"""Units and sites over HTTP: tree, validation, archive, errors."""

from __future__ import annotations

from fastapi.testclient import TestClient

from confbridge.sites.models import Site, Unit

Headers = dict[str, str]


def test_units_create_tree_and_read_children(client: TestClient, secretariat: Headers) -> None:
    province = client.post(
        "/api/v1/units",
        json={"name": "Quảng Ninh", "kind": "province", "code": "22"},
        headers=secretariat,
    )
    assert province.status_code == 201, province.text
    pid = province.json()["id"]
    ward = client.post(
        "/api/v1/units",
        json={"name": "Phường Hồng Gai", "kind": "ward", "parent_id": pid},
        headers=secretariat,
    )
    assert ward.status_code == 201
    detail = client.get(f"/api/v1/units/{pid}", headers=secretariat).json()
    assert [c["name"] for c in detail["children"]] == ["Phường Hồng Gai"]
    listed = client.get(f"/api/v1/units?parent_id={pid}", headers=secretariat).json()
    assert listed["total"] == 1


def test_units_bad_input_gives_clear_4xx(client: TestClient, secretariat: Headers) -> None:
    cases = [
        ({"name": "", "kind": "province"}, 422),
        ({"name": "X", "kind": "galaxy"}, 422),
        ({"name": "X", "kind": "ward"}, 422),  # a ward cannot be at the top
        ({"name": "X", "kind": "ward", "parent_id": 999}, 404),
        ({"name": "X", "kind": "province", "parent_id": 2**70}, 422),
    ]
    for body, code in cases:
        response = client.post("/api/v1/units", json=body, headers=secretariat)
        assert response.status_code == code, (body, response.text)
        assert response.json()["detail"]
    assert client.post("/api/v1/units", content=b"{", headers=secretariat).status_code == 422


def test_units_duplicate_code_is_409(client: TestClient, secretariat: Headers) -> None:
    body = {"name": "Quảng Ninh", "kind": "province", "code": "22"}
    assert client.post("/api/v1/units", json=body, headers=secretariat).status_code == 201
    again = client.post("/api/v1/units", json={**body, "name": "Khác"}, headers=secretariat)
    assert again.status_code == 409
    assert "22" in again.json()["detail"]


def test_sites_crud(client: TestClient, secretariat: Headers, province: Unit) -> None:
    created = client.post(
        "/api/v1/sites",
        json={"name": "Phòng họp trực tuyến", "unit_id": province.id},
        headers=secretariat,
    )
    assert created.status_code == 201
    site_id = created.json()["id"]
    patched = client.patch(
        f"/api/v1/sites/{site_id}", json={"name": "Phòng họp số 2"}, headers=secretariat
    )
    assert patched.json()["name"] == "Phòng họp số 2"
    found = client.get("/api/v1/sites?q=số 2", headers=secretariat).json()
    assert [s["id"] for s in found["items"]] == [site_id]
    assert client.delete(f"/api/v1/sites/{site_id}", headers=secretariat).status_code == 204
    assert client.get(f"/api/v1/sites/{site_id}", headers=secretariat).json()["archived_at"]
    assert site_id not in [
        s["id"] for s in client.get("/api/v1/sites", headers=secretariat).json()["items"]
    ]


def test_sites_list_by_unit_includes_descendants(
    client: TestClient, secretariat: Headers, province: Unit, sites: dict[str, Site]
) -> None:
    listed = client.get(f"/api/v1/sites?unit_id={province.id}", headers=secretariat).json()
    assert listed["total"] == 4
    page = client.get(
        f"/api/v1/sites?unit_id={province.id}&limit=2&offset=2", headers=secretariat
    ).json()
    assert len(page["items"]) == 2


def test_sites_errors(client: TestClient, secretariat: Headers, sites: dict[str, Site]) -> None:
    assert client.get("/api/v1/sites/999999", headers=secretariat).status_code == 404
    assert client.get("/api/v1/sites/0", headers=secretariat).status_code == 422
    assert client.get(f"/api/v1/sites/{2**64}", headers=secretariat).status_code == 422
    assert client.get("/api/v1/sites/abc", headers=secretariat).status_code == 422
    dup = client.post(
        "/api/v1/sites",
        json={"name": sites["p1"].name, "unit_id": sites["p1"].unit_id},
        headers=secretariat,
    )
    assert dup.status_code == 409
    assert (
        client.post(
            "/api/v1/sites", json={"name": "X", "unit_id": 424242}, headers=secretariat
        ).status_code
        == 404
    )
    assert (
        client.patch(
            f"/api/v1/sites/{sites['p1'].id}", json={"name": "x" * 201}, headers=secretariat
        ).status_code
        == 422
    )
    assert client.get("/api/v1/sites?limit=0", headers=secretariat).status_code == 422


def test_sites_delete_refused_while_booked(
    client: TestClient, secretariat: Headers, sites: dict[str, Site]
) -> None:
    body = {
        "title": "Giao ban",
        "kind": "giao_ban",
        "rrule": "FREQ=WEEKLY;BYDAY=MO",
        "dtstart": "2030-01-07T07:30",
        "duration_min": 60,
        "chair_site_id": sites["hq"].id,
        "site_ids": [sites["p1"].id],
    }
    assert client.post("/api/v1/series", json=body, headers=secretariat).status_code == 201
    response = client.delete(f"/api/v1/sites/{sites['p1'].id}", headers=secretariat)
    assert response.status_code == 409
    assert response.json()["series"][0]["title"] == "Giao ban"
    assert (
        client.get(f"/api/v1/sites/{sites['p1'].id}", headers=secretariat).json()["archived_at"]
        is None
    )
