"""Administration of units and sites over plain HTTP, as a browser's forms send it: a unit's
page (rename, kind, disable), a site's page, importing a province; refusals with a message."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.auth.models import AuditEntry, Role
from confbridge.db import Database
from confbridge.settings import Settings
from confbridge.sites.models import Site, Unit
from confbridge.timeutil import utcnow
from tests.support.factories import book_occurrence, province_sites
from tests.support.scopes import TwoProvinces
from tests.support.web import post_form


def _error(html: str) -> str:
    found = re.search(r'id="admin-error">([^<]*)<', html)
    assert found is not None, "the page shows no error"
    return found.group(1)


def _audit(session: Session, action: str) -> list[AuditEntry]:
    session.expire_all()
    return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_admin_unit_page_renames_and_changes_kind_with_the_change_audited(
    browser_as: Callable[..., TestClient], world: TwoProvinces, session: Session
) -> None:
    sec_a = browser_as("sec_a", world.units["a"], Role.secretariat)
    ward = world.units["p1"]
    page = sec_a.get(f"/admin/units/{ward}")
    assert page.status_code == 200 and "Phường Một" in page.text
    renamed = post_form(
        sec_a,
        f"/admin/units/{ward}",
        f"/admin/units/{ward}",
        {"name": "Phường Một Mới", "kind": "commune"},
    )
    assert renamed.status_code == 303
    session.expire_all()
    unit = session.get(Unit, ward)
    assert unit is not None and (unit.name, unit.kind) == ("Phường Một Mới", "commune")
    [entry] = _audit(session, "unit_updated")
    assert entry.actor == "user:sec_a" and entry.entity_id == ward
    assert entry.detail["changes"] == {
        "name": ["Phường Một", "Phường Một Mới"],
        "kind": ["ward", "commune"],
    }


def test_admin_unit_forms_refuse_bad_input_with_a_message(
    browser_as: Callable[..., TestClient], world: TwoProvinces
) -> None:
    sec_a = browser_as("sec_a", world.units["a"], Role.secretariat)
    ward = world.units["p1"]
    url = f"/admin/units/{ward}"
    empty = post_form(sec_a, url, url, {"name": "   ", "kind": "ward"})
    assert empty.status_code == 422 and _error(empty.text).endswith("Hãy đặt tên.")
    taken = post_form(sec_a, url, url, {"name": "Phường Hai", "kind": "ward"})
    assert taken.status_code == 409 and "Phường Hai" in _error(taken.text)
    kind = post_form(sec_a, url, url, {"name": "Phường Một", "kind": "hành tinh"})
    assert kind.status_code == 422 and _error(kind.text) == "Hãy chọn loại đơn vị."
    province = post_form(sec_a, url, url, {"name": "Phường Một", "kind": "province"})
    assert province.status_code == 422 and "không thể" in _error(province.text)
    site = post_form(sec_a, "/admin/units", "/admin/sites", {"name": "", "unit_id": str(ward)})
    assert site.status_code == 422 and _error(site.text).endswith("Hãy đặt tên.")
    unknown = post_form(sec_a, "/admin/units", "/admin/sites", {"name": "X", "unit_id": "999999"})
    assert unknown.status_code == 404 and "không tồn tại" in _error(unknown.text)
    no_unit = post_form(sec_a, "/admin/units", "/admin/sites", {"name": "X", "unit_id": "abc"})
    assert no_unit.status_code == 422 and _error(no_unit.text) == "Hãy chọn đơn vị."
    assert sec_a.get("/admin/units/999999").status_code == 404
    assert sec_a.get("/admin/units/abc").status_code == 404


def test_admin_pages_of_another_ward_are_not_found(
    browser_as: Callable[..., TestClient], world: TwoProvinces
) -> None:
    ward_sec = browser_as("ward_sec", world.units["p1"], Role.secretariat)
    tree = ward_sec.get("/admin/units")
    assert tree.status_code == 200 and "Phường Một" in tree.text
    assert "Phường Hai" not in tree.text and "Tỉnh Thử" not in tree.text
    other_ward, other_site = world.units["p2"], world.sites["p2"]
    assert ward_sec.get(f"/admin/units/{other_ward}").status_code == 404
    assert ward_sec.get(f"/admin/sites/{other_site}").status_code == 404
    assert ward_sec.get(f"/admin/units/{world.units['a']}").status_code == 404
    own = f"/admin/units/{world.units['p1']}"
    renamed = post_form(ward_sec, own, f"/admin/units/{other_ward}", {"name": "X", "kind": "ward"})
    assert renamed.status_code == 404
    disabled = post_form(ward_sec, own, f"/admin/units/{other_ward}/disable", {})
    assert disabled.status_code == 404
    edited = post_form(
        ward_sec, own, f"/admin/sites/{other_site}", {"name": "X", "unit_id": str(other_ward)}
    )
    assert edited.status_code == 404


def test_admin_site_page_renames_sets_address_and_moves(
    browser_as: Callable[..., TestClient], world: TwoProvinces, session: Session
) -> None:
    sec_a = browser_as("sec_a", world.units["a"], Role.secretariat)
    site_id = world.sites["p1"]
    url = f"/admin/sites/{site_id}"
    saved = post_form(
        sec_a,
        url,
        url,
        {"name": "Phòng họp P1", "unit_id": str(world.units["p2"]), "sip_uri": "sip:p1@rooms.vn"},
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"{url}?saved=1"
    session.expire_all()
    site = session.get(Site, site_id)
    assert site is not None
    assert (site.name, site.unit_id, site.sip_uri) == (
        "Phòng họp P1",
        world.units["p2"],
        "sip:p1@rooms.vn",
    )
    [entry] = _audit(session, "site_updated")
    assert entry.detail["changes"] == {
        "name": ["Hội trường UBND Phường Một", "Phòng họp P1"],
        "unit_id": [world.units["p1"], world.units["p2"]],
        "sip_uri": [None, "sip:p1@rooms.vn"],
    }
    bad_address = post_form(
        sec_a,
        url,
        url,
        {"name": "Phòng họp P1", "unit_id": str(world.units["p2"]), "sip_uri": "p1"},
    )
    assert bad_address.status_code == 422 and "sip:" in _error(bad_address.text)
    outside = post_form(sec_a, url, url, {"name": "Phòng họp P1", "unit_id": str(world.units["b"])})
    assert outside.status_code == 404


def test_admin_disabling_a_unit_archives_its_sites_and_keeps_the_unit(
    browser_as: Callable[..., TestClient], world: TwoProvinces, session: Session
) -> None:
    sec_a = browser_as("sec_a", world.units["a"], Role.secretariat)
    ward = world.units["p2"]
    url = f"/admin/units/{ward}"
    disabled = post_form(sec_a, url, f"{url}/disable", {})
    assert disabled.status_code == 303
    session.expire_all()
    unit = session.get(Unit, ward)
    site = session.get(Site, world.sites["p2"])
    assert unit is not None and unit.disabled_at is not None
    assert site is not None and site.archived_at is not None
    [entry] = _audit(session, "unit_disabled")
    assert entry.detail["sites_archived"] == [world.sites["p2"]]
    assert entry.detail["changes"] == {"disabled": [False, True]}
    tree = sec_a.get("/admin/units").text
    assert re.search(rf'data-unit="{ward}" class="unit-disabled"', tree)
    again = post_form(sec_a, url, f"{url}/disable", {})
    assert again.status_code == 409 and _error(again.text).endswith("Đơn vị này đã bị khóa.")
    site_in_it = post_form(
        sec_a, "/admin/units", "/admin/sites", {"name": "Y", "unit_id": str(ward)}
    )
    assert site_in_it.status_code == 409
    province = post_form(sec_a, "/admin/units", f"/admin/units/{world.units['a']}/disable", {})
    assert province.status_code == 403


def test_admin_import_province_is_for_staff_of_the_whole_installation(
    browser_as: Callable[..., TestClient], world: TwoProvinces
) -> None:
    sec_a = browser_as("sec_a", world.units["a"], Role.secretariat)
    refused = post_form(sec_a, "/admin/units", "/admin/units/import", {"province": "Quảng Ninh"})
    assert refused.status_code == 403
    assert 'id="import-province"' not in sec_a.get("/admin/units").text
    root = browser_as("root_admin", None, Role.admin)
    unknown = post_form(root, "/admin/units", "/admin/units/import", {"province": "Atlantis"})
    assert unknown.status_code == 404 and "34" in _error(unknown.text)
    empty = post_form(root, "/admin/units", "/admin/units/import", {"province": " "})
    assert empty.status_code == 422


def test_admin_disabling_a_unit_a_series_needs_is_refused(
    browser_as: Callable[..., TestClient],
    world: TwoProvinces,
    session: Session,
    database: Database,
    settings: Settings,
) -> None:
    book_occurrence(database, settings, province_sites(session), utcnow() + timedelta(days=2))
    sec_a = browser_as("sec_a", world.units["a"], Role.secretariat)
    url = f"/admin/units/{world.units['p1']}"
    refused = post_form(sec_a, url, f"{url}/disable", {})
    assert refused.status_code == 409 and "chuỗi cuộc họp" in _error(refused.text)
    session.expire_all()
    unit = session.get(Unit, world.units["p1"])
    site = session.get(Site, world.sites["p1"])
    assert unit is not None and unit.disabled_at is None
    assert site is not None and site.archived_at is None
    assert _audit(session, "unit_disabled") == []
