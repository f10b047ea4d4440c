"""Sites' room-system SIP addresses, and the guest sites of SIP callers that are no site."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.auth.models import Role
from confbridge.errors import Invalid
from confbridge.sites import service as site_service
from confbridge.sites.models import Site, Unit, UnitKind
from confbridge.web.queries import flatten, unit_tree

Headers = dict[str, str]


def test_site_sip_uri_is_normalised_on_create_and_update(
    client: TestClient, secretariat: Headers, province: Unit, sites: dict[str, Site]
) -> None:
    created = client.post(
        "/api/v1/sites",
        json={"name": "Phòng họp 2", "unit_id": province.id, "sip_uri": "SIP:P2@Rooms.VN:5060"},
        headers=secretariat,
    )
    assert created.status_code == 201, created.text
    assert created.json()["sip_uri"] == "sip:P2@rooms.vn"
    assert created.json()["guest"] is False
    url = f"/api/v1/sites/{sites['p1'].id}"
    updated = client.patch(url, json={"sip_uri": "sips:p1@rooms.vn:5061"}, headers=secretariat)
    assert updated.status_code == 200 and updated.json()["sip_uri"] == "sips:p1@rooms.vn"
    renamed = client.patch(url, json={"name": "Hội trường P1"}, headers=secretariat)
    assert renamed.json()["sip_uri"] == "sips:p1@rooms.vn"  # untouched when not sent
    cleared = client.patch(url, json={"sip_uri": None}, headers=secretariat)
    assert cleared.status_code == 200 and cleared.json()["sip_uri"] is None
    assert client.get(url, headers=secretariat).json()["sip_uri"] is None


def test_site_sip_uri_refused_when_malformed_or_another_sites(
    client: TestClient, secretariat: Headers, sites: dict[str, Site]
) -> None:
    p1, p2 = (f"/api/v1/sites/{sites[k].id}" for k in ("p1", "p2"))
    for bad in ("http://rooms.vn", "sip:rooms.vn", "sip:a b@rooms.vn", "sip:a@b.vn;x=1", 5):
        response = client.patch(p1, json={"sip_uri": bad}, headers=secretariat)
        assert response.status_code == 422, (bad, response.text)
    assert (
        "not a SIP address"
        in client.patch(p1, json={"sip_uri": "sip:rooms.vn"}, headers=secretariat).text
    )
    assert client.patch(p1, json={"sip_uri": "sip:hall@rooms.vn"}, headers=secretariat).is_success
    taken = client.patch(p2, json={"sip_uri": "SIP:hall@ROOMS.vn"}, headers=secretariat)
    assert taken.status_code == 409
    assert "already the address of site" in taken.json()["detail"]


def test_sip_guest_site_is_found_by_caller_address_or_created_in_the_guest_unit(
    session: Session, sites: dict[str, Site]
) -> None:
    guest = site_service.sip_guest_site(
        session=session,
        caller_uri='"Anh Minh" <sip:minh@Partner.VN:5060;transport=tcp>;tag=7',
        display_name="Anh Minh",
    )
    assert guest.name == "Khách: Anh Minh" and guest.guest_uri == "minh@partner.vn"
    assert guest.unit.name == "Khách mời (SIP)" and guest.unit.kind == UnitKind.guest
    again = site_service.sip_guest_site(
        session=session, caller_uri="sip:minh@partner.vn", display_name="Someone else"
    )
    assert again.id == guest.id
    nameless = site_service.sip_guest_site(
        session=session, caller_uri="sip:lan@partner.vn", display_name="  "
    )
    assert nameless.name == "Khách: lan@partner.vn" and nameless.unit_id == guest.unit_id
    same_name = site_service.sip_guest_site(
        session=session, caller_uri="sip:minh2@partner.vn", display_name="Anh\nMinh"
    )
    assert same_name.name == "Khách: Anh Minh (2)"
    with pytest.raises(Invalid, match="caller_uri"):
        site_service.sip_guest_site(session=session, caller_uri="tel:+84", display_name="")


def test_guest_sites_are_listed_apart_and_never_invited_through_units(
    client: TestClient,
    secretariat: Headers,
    make_user: Callable[..., Headers],
    session: Session,
    sites: dict[str, Site],
) -> None:
    guest = site_service.sip_guest_site(
        session=session, caller_uri="sip:minh@partner.vn", display_name="Minh"
    )
    session.commit()
    ordinary = client.get("/api/v1/sites?limit=100", headers=secretariat).json()
    assert guest.id not in {s["id"] for s in ordinary["items"]} and ordinary["total"] == 4
    guests = client.get("/api/v1/sites?guest=true", headers=secretariat).json()
    assert [(s["id"], s["guest"]) for s in guests["items"]] == [(guest.id, True)]
    assert site_service.site_ids_under_units(session=session, unit_ids=[guest.unit_id]) == set()
    # The guest unit is the gateway's: no ordinary site goes there, no unit of that kind is made.
    moved = client.patch(
        f"/api/v1/sites/{sites['p1'].id}", json={"unit_id": guest.unit_id}, headers=secretariat
    )
    assert moved.status_code == 422
    made = client.post(
        "/api/v1/units", json={"name": "Khách", "kind": "guest"}, headers=secretariat
    )
    assert made.status_code == 422
    edited = client.patch(f"/api/v1/sites/{guest.id}", json={"name": "X"}, headers=secretariat)
    assert edited.status_code == 409
    it = make_user(Role.it)
    terminal = client.post(f"/api/v1/sites/{guest.id}/terminals", headers=it)
    assert terminal.status_code == 409 and "guests have no terminals" in terminal.json()["detail"]


def test_guest_sites_cannot_be_invited_nor_offered_on_the_booking_form(
    client: TestClient, secretariat: Headers, session: Session, sites: dict[str, Site]
) -> None:
    guest = site_service.sip_guest_site(
        session=session, caller_uri="sip:minh@partner.vn", display_name="Minh"
    )
    session.commit()
    body = {
        "title": "Giao ban",
        "kind": "giao_ban",
        "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=2",
        "dtstart": "2030-03-04T07:30:00",
        "duration_min": 60,
        "chair_site_id": sites["hq"].id,
        "site_ids": [sites["p1"].id, guest.id],
    }
    refused = client.post("/api/v1/series", json=body, headers=secretariat)
    assert refused.status_code == 422
    assert f"SIP guests cannot be invited: sites {guest.id}" in refused.json()["detail"]
    as_chair = client.post(
        "/api/v1/series",
        json={**body, "site_ids": [], "chair_site_id": guest.id},
        headers=secretariat,
    )
    assert as_chair.status_code == 422
    offered = flatten(unit_tree(session))
    assert guest.unit_id not in {node.id for node in offered}
    assert guest.id not in {site_id for node in offered for site_id, _name in node.sites}
    assert sites["p1"].id in {site_id for node in offered for site_id, _name in node.sites}
