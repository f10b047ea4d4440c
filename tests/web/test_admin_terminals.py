"""The terminals' administration page over plain HTTP: a new pairing code for a terminal of
the user's sites, none for a revoked one or another province's; the audit keeps both."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.auth.models import AuditEntry, Role
from tests.support.scopes import TwoProvinces
from tests.support.web import post_form

CODE = re.compile(r'id="pairing-code">.*?<code>([A-Z0-9]{4}-[A-Z0-9]{4})</code>', re.DOTALL)


def test_admin_terminals_page_gives_a_new_pairing_code_within_its_scope(
    browser_as: Callable[..., TestClient], world: TwoProvinces, session: Session
) -> None:
    it_a = browser_as("it_a", world.units["a"], Role.it)
    page = "/admin/terminals"
    created = post_form(it_a, page, page, {"site_id": str(world.sites["p1"]), "name": "Máy P1"})
    first = CODE.search(created.text)
    terminal = re.search(r'data-terminal="(\d+)"', created.text)
    assert created.status_code == 201 and first is not None and terminal is not None
    assert 'id="pairing-url"' in created.text and "/terminal?code=" in created.text
    url = f"/admin/terminals/{terminal.group(1)}"
    again = post_form(it_a, page, f"{url}/pairing-code", {})
    second = CODE.search(again.text)
    assert again.status_code == 201 and second is not None
    assert second.group(1) != first.group(1)
    # the first code no longer pairs; the second does
    old = it_a.post("/api/v1/terminals/pair", json={"code": first.group(1)})
    assert old.status_code in (400, 401, 404, 409, 422)
    paired = it_a.post("/api/v1/terminals/pair", json={"code": second.group(1)})
    assert paired.status_code == 200, paired.text
    revoked = post_form(it_a, page, f"{url}/revoke", {})
    assert revoked.status_code == 303
    late = post_form(it_a, page, f"{url}/pairing-code", {})
    assert late.status_code == 409 and "thu hồi" in late.text
    twice = post_form(it_a, page, f"{url}/revoke", {})
    assert twice.status_code == 409
    it_b = browser_as("it_b", world.units["b"], Role.it)
    assert post_form(it_b, page, f"{url}/pairing-code", {}).status_code == 404
    assert post_form(it_b, page, "/admin/terminals/abc/revoke", {}).status_code == 404
    no_site = post_form(it_a, page, page, {"site_id": "", "name": "X"})
    assert no_site.status_code == 422 and "Hãy chọn điểm cầu." in no_site.text
    actions = session.scalars(
        select(AuditEntry.action).where(AuditEntry.entity == "terminal").order_by(AuditEntry.id)
    ).all()
    assert actions == [
        "terminal_created",
        "terminal_pairing_code",
        "terminal_paired",
        "terminal_revoked",
    ]
