"""A user's administration page over plain HTTP: memberships added and removed, the password
reset (as the API's password policy wants it), the last administrator of the whole
installation kept; refusals with a message."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.models import AuditEntry, Role, User
from tests.support.factories import PASSWORD
from tests.support.scopes import TwoProvinces
from tests.support.web import post_form, sign_in


def _error(html: str) -> str:
    found = re.search(r'id="admin-error">([^<]*)<', html)
    assert found is not None, "the page shows no error"
    return found.group(1)


def _user(session: Session, username: str) -> User:
    session.expire_all()
    user = auth_service.get_by_username(session=session, username=username)
    assert user is not None
    return user


def test_admin_user_page_adds_and_removes_memberships(
    browser_as: Callable[..., TestClient], world: TwoProvinces, session: Session
) -> None:
    admin_a = browser_as("admin_a", world.units["a"], Role.admin)
    browser_as("thu_ky", world.units["p1"], Role.secretariat)
    user_id = _user(session, "thu_ky").id
    url = f"/admin/users/{user_id}"
    page = admin_a.get(url)
    assert page.status_code == 200 and 'id="memberships"' in page.text and "Phường Một" in page.text
    added = post_form(
        admin_a, url, f"{url}/memberships", {"unit_id": str(world.units["p2"]), "role": "it"}
    )
    assert added.status_code == 303
    assert {(m.unit_id, m.role) for m in _user(session, "thu_ky").memberships} == {
        (world.units["p1"], "secretariat"),
        (world.units["p2"], "it"),
    }
    shown = admin_a.get(url).text
    assert "Phường Hai" in shown and "Cán bộ kỹ thuật" in shown
    removed = post_form(
        admin_a,
        url,
        f"{url}/memberships/remove",
        {"unit_id": str(world.units["p1"]), "role": "secretariat"},
    )
    assert removed.status_code == 303
    assert [(m.unit_id, m.role) for m in _user(session, "thu_ky").memberships] == [
        (world.units["p2"], "it")
    ]
    entries = session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "user_updated", AuditEntry.entity_id == user_id
        )
    ).all()
    assert [e.detail["changes"]["memberships"][1] for e in entries] == [
        [f"secretariat@{world.units['p1']}", f"it@{world.units['p2']}"],
        [f"it@{world.units['p2']}"],
    ]
    assert all(e.actor == "user:admin_a" for e in entries)


def test_admin_user_page_refuses_bad_memberships_with_a_message(
    browser_as: Callable[..., TestClient], world: TwoProvinces, session: Session
) -> None:
    admin_a = browser_as("admin_a", world.units["a"], Role.admin)
    browser_as("thu_ky", world.units["p1"], Role.secretariat)
    browser_as("sec_b", world.units["b"], Role.secretariat)
    url = f"/admin/users/{_user(session, 'thu_ky').id}"
    other = post_form(
        admin_a, url, f"{url}/memberships", {"unit_id": str(world.units["b"]), "role": "viewer"}
    )
    assert other.status_code == 403 and "đơn vị của mình" in _error(other.text)
    root = post_form(admin_a, url, f"{url}/memberships", {"unit_id": "root", "role": "viewer"})
    assert root.status_code == 403
    no_role = post_form(
        admin_a, url, f"{url}/memberships", {"unit_id": str(world.units["p1"]), "role": "vua"}
    )
    assert no_role.status_code == 422 and _error(no_role.text) == "Hãy chọn vai trò."
    no_unit = post_form(admin_a, url, f"{url}/memberships", {"unit_id": "x", "role": "viewer"})
    assert no_unit.status_code == 422 and _error(no_unit.text) == "Hãy chọn đơn vị."
    last = post_form(
        admin_a,
        url,
        f"{url}/memberships/remove",
        {"unit_id": str(world.units["p1"]), "role": "secretariat"},
    )
    assert last.status_code == 422 and "ít nhất một vai trò" in _error(last.text)
    missing = post_form(
        admin_a,
        url,
        f"{url}/memberships/remove",
        {"unit_id": str(world.units["p2"]), "role": "viewer"},
    )
    assert missing.status_code == 404
    p1 = str(world.units["p1"])
    accents = post_form(
        admin_a,
        "/admin/users",
        "/admin/users",
        {"username": "thư ký", "unit_id": p1, "role": "viewer"},
    )
    assert accents.status_code == 422 and "không dấu" in _error(accents.text)
    taken = post_form(
        admin_a,
        "/admin/users",
        "/admin/users",
        {"username": "thu_ky", "unit_id": p1, "role": "viewer"},
    )
    assert taken.status_code == 409 and "thu_ky" in _error(taken.text)
    # a user of another province is not found; an unknown user neither
    sec_b = _user(session, "sec_b").id
    assert admin_a.get(f"/admin/users/{sec_b}").status_code == 404
    assert admin_a.get("/admin/users/999999").status_code == 404
    hidden = post_form(admin_a, url, f"/admin/users/{sec_b}/password", {})
    assert hidden.status_code == 404


def test_admin_user_page_resets_the_password_under_the_policy(
    app: object, browser_as: Callable[..., TestClient], world: TwoProvinces, session: Session
) -> None:
    admin_a = browser_as("admin_a", world.units["a"], Role.admin)
    browser_as("thu_ky", world.units["p1"], Role.secretariat)
    url = f"/admin/users/{_user(session, 'thu_ky').id}"
    weak = post_form(admin_a, url, f"{url}/password", {"password": "ngan"})
    assert weak.status_code == 422 and "quá ngắn" in _error(weak.text)
    common = post_form(admin_a, url, f"{url}/password", {"password": "a" * 14})
    assert common.status_code == 422 and "dễ đoán" in _error(common.text)
    reset = post_form(admin_a, url, f"{url}/password", {})
    assert reset.status_code == 200
    found = re.search(r'id="password-reset">.*?<code>([^<]+)</code>', reset.text, re.DOTALL)
    assert found is not None
    user = _user(session, "thu_ky")
    assert user.must_change_password
    with TestClient(app) as fresh:  # type: ignore[arg-type]
        assert sign_in(fresh, "thu_ky", PASSWORD).status_code != 303
        signed = sign_in(fresh, "thu_ky", found.group(1))
        assert signed.status_code == 303 and "/account/password" in signed.headers["location"]
    [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "password_reset")).all()
    assert entry.actor == "user:admin_a" and entry.detail["generated"] is True


def test_admin_the_last_root_administrator_keeps_the_role(
    browser_as: Callable[..., TestClient], world: TwoProvinces, session: Session
) -> None:
    root = browser_as("goc", None, Role.admin)
    url = f"/admin/users/{_user(session, 'goc').id}"
    added = post_form(
        root, url, f"{url}/memberships", {"unit_id": str(world.units["a"]), "role": "viewer"}
    )
    assert added.status_code == 303
    dropped = post_form(
        root, url, f"{url}/memberships/remove", {"unit_id": "root", "role": "admin"}
    )
    assert dropped.status_code == 409
    assert "quản trị" in _error(dropped.text)
    assert any(m.unit_id is None and m.role == "admin" for m in _user(session, "goc").memberships)
