"""Administration pages: users, units and sites, terminals and the audit log, each within the
signed-in user's scope."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.auth.models import Role
from confbridge.sites.models import Site, Unit
from tests.support.scopes import TwoProvinces
from tests.support.web import post_form, sign_in


def test_admin_users_page_creates_and_disables_users_of_its_province_only(
    browser_as: Callable[..., TestClient], world: TwoProvinces
) -> None:
    browser_as("sec_b", world.units["b"], Role.secretariat)
    admin_a = browser_as("admin_a", world.units["a"], Role.admin)
    page = admin_a.get("/admin/users")
    assert page.status_code == 200 and "Người dùng" in page.text
    assert "admin_a" in page.text and "sec_b" not in page.text
    assert "Tỉnh Bên" not in page.text and 'value="root"' not in page.text
    created = post_form(
        admin_a,
        "/admin/users",
        "/admin/users",
        {"username": "thu_ky_p1", "unit_id": str(world.units["p1"]), "role": "secretariat"},
    )
    assert created.status_code == 201
    password = re.search(r'id="one-time-password">.*?<code>([^<]+)</code>', created.text)
    assert password is not None and len(password.group(1)) >= 12
    root = post_form(
        admin_a,
        "/admin/users",
        "/admin/users",
        {"username": "goc", "unit_id": "root", "role": "viewer"},
    )
    assert root.status_code == 403
    other = post_form(
        admin_a,
        "/admin/users",
        "/admin/users",
        {"username": "ben", "unit_id": str(world.units["b"]), "role": "viewer"},
    )
    assert other.status_code == 403
    # the new user signs in with the one-time password and must change it
    fresh = TestClient(admin_a.app)
    assert sign_in(fresh, "thu_ky_p1", password.group(1)).status_code == 303
    user_id = re.search(r'href="/admin/users/(\d+)">thu_ky_p1<', created.text)
    assert user_id is not None
    disabled = post_form(
        admin_a, "/admin/users", f"/admin/users/{user_id.group(1)}/active", {"active": "0"}
    )
    assert disabled.status_code == 303
    assert sign_in(TestClient(admin_a.app), "thu_ky_p1", password.group(1)).status_code != 303
    own = re.search(r'href="/admin/users/(\d+)">admin_a<', created.text)
    assert own is not None
    itself = post_form(
        admin_a, "/admin/users", f"/admin/users/{own.group(1)}/active", {"active": "0"}
    )
    assert itself.status_code == 409  # nobody locks themselves out


def test_admin_units_page_adds_moves_and_disables_within_its_scope(
    browser_as: Callable[..., TestClient], world: TwoProvinces, session: Session
) -> None:
    sec_a = browser_as("sec_a", world.units["a"], Role.secretariat)
    page = sec_a.get("/admin/units")
    assert page.status_code == 200 and "Phường Một" in page.text and "Tỉnh Bên" not in page.text
    added = post_form(
        sec_a,
        "/admin/units",
        "/admin/units",
        {"name": "Phường Ba", "kind": "ward", "parent_id": str(world.units["a"])},
    )
    assert added.status_code == 303
    ward = session.query(Unit).filter_by(name="Phường Ba").one()
    site = post_form(
        sec_a, "/admin/units", "/admin/sites", {"name": "Hội trường Ba", "unit_id": str(ward.id)}
    )
    assert site.status_code == 303
    new_site = session.query(Site).filter_by(name="Hội trường Ba").one()
    moved = post_form(
        sec_a,
        "/admin/units",
        f"/admin/sites/{new_site.id}/move",
        {"unit_id": str(world.units["p1"])},
    )
    assert moved.status_code == 303
    session.expire_all()
    assert session.get(Site, new_site.id).unit_id == world.units["p1"]
    outside = post_form(
        sec_a,
        "/admin/units",
        f"/admin/sites/{new_site.id}/move",
        {"unit_id": str(world.units["b"])},
    )
    assert outside.status_code == 404
    top = post_form(sec_a, "/admin/units", "/admin/units", {"name": "Tỉnh Mới", "kind": "province"})
    assert top.status_code == 403
    archived = post_form(sec_a, "/admin/units", f"/admin/sites/{new_site.id}/archive", {})
    assert archived.status_code == 303
    session.expire_all()
    assert session.get(Site, new_site.id).archived_at is not None
    other = post_form(sec_a, "/admin/units", f"/admin/sites/{world.sites['hq_b']}/archive", {})
    assert other.status_code == 404


def test_admin_terminals_page_pairs_and_revokes_within_its_scope(
    browser_as: Callable[..., TestClient], world: TwoProvinces
) -> None:
    it_a = browser_as("it_a", world.units["a"], Role.it)
    created = post_form(
        it_a,
        "/admin/terminals",
        "/admin/terminals",
        {"site_id": str(world.sites["p1"]), "name": "Máy phường Một"},
    )
    assert created.status_code == 201
    code = re.search(r'id="pairing-code">.*?<code>([^<]+)</code>', created.text)
    assert code is not None
    paired = it_a.post("/api/v1/terminals/pair", json={"code": code.group(1)})
    assert paired.status_code == 200, paired.text
    assert "Máy phường Một" in it_a.get("/admin/terminals").text
    refused = post_form(
        it_a, "/admin/terminals", "/admin/terminals", {"site_id": str(world.sites["hq_b"])}
    )
    assert refused.status_code == 404
    terminal_id = re.search(r'action="/admin/terminals/(\d+)/revoke"', created.text)
    assert terminal_id is not None
    revoked = post_form(
        it_a, "/admin/terminals", f"/admin/terminals/{terminal_id.group(1)}/revoke", {}
    )
    assert revoked.status_code == 303
    assert "đã thu hồi" in it_a.get("/admin/terminals").text


def test_admin_audit_page_shows_and_exports_its_scope(
    browser_as: Callable[..., TestClient], world: TwoProvinces
) -> None:
    sec_b = browser_as("sec_b", world.units["b"], Role.secretariat)
    post_form(
        sec_b, "/admin/units", "/admin/sites", {"name": "Điểm B", "unit_id": str(world.units["b"])}
    )
    admin_a = browser_as("admin_a", world.units["a"], Role.admin)
    post_form(
        admin_a,
        "/admin/users",
        "/admin/users",
        {"username": "xem_a", "unit_id": str(world.units["a"]), "role": "viewer"},
    )
    page = admin_a.get("/admin/audit")
    assert page.status_code == 200 and "Nhật ký thao tác" in page.text
    assert "user_created" in page.text and "user:sec_b" not in page.text
    csv_file = admin_a.get("/admin/audit.csv?action=user_created")
    assert csv_file.status_code == 200 and "user_created" in csv_file.content.decode("utf-8-sig")
    viewer = browser_as("viewer_a", world.units["a"], Role.viewer)
    assert viewer.get("/admin/audit").status_code == 403
    assert viewer.get("/admin/units").status_code == 403
