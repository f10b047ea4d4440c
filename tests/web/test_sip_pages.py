"""The series page shows how to dial in; a site's page edits its room system's SIP address."""

from __future__ import annotations

import html
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.auth.models import AuditEntry, Role
from confbridge.settings import Settings
from confbridge.sites import service as site_service
from confbridge.sites.models import Site
from tests.support.web import csrf_of
from tests.web.test_pages import book_existing


def test_series_page_shows_meeting_number_pin_and_sip_address_in_vietnamese(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session, settings: Settings
) -> None:
    series = book_existing(session, settings, communes, meeting_number="2468135", pin="975310")
    page = web(Role.secretariat).get(f"/series/{series.id}/edit")
    assert page.status_code == 200
    text = page.text
    for label in ("Số phòng họp", "Mã PIN", "Địa chỉ SIP"):
        assert label in text
    assert '<strong id="meeting-number">2468135</strong>' in text
    assert '<strong id="meeting-pin">975310</strong>' in text
    assert '<code id="sip-address">sip:2468135@127.0.0.1</code>' in text
    # IT staff do not reach the series page (nor its PIN).
    assert web(Role.it).get(f"/series/{series.id}/edit").status_code == 403


def test_site_page_edits_the_sip_address_and_refuses_bad_ones(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session
) -> None:
    site_id = communes["c0"]
    client = web(Role.it)
    page = client.get(f"/sites/{site_id}")
    assert page.status_code == 200 and "Địa chỉ SIP của thiết bị phòng họp" in page.text
    token = csrf_of(page.text)
    saved = client.post(
        f"/sites/{site_id}",
        data={"csrf_token": token, "sip_uri": "SIP:Xa-An-Binh@Rooms.VN"},
        follow_redirects=False,
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"/sites/{site_id}?saved=1"
    session.expire_all()
    assert session.get(Site, site_id).sip_uri == "sip:Xa-An-Binh@rooms.vn"  # type: ignore[union-attr]
    assert "Đã lưu." in client.get(f"/sites/{site_id}?saved=1").text
    bad = client.post(f"/sites/{site_id}", data={"csrf_token": token, "sip_uri": "sip:rooms.vn"})
    assert bad.status_code == 422 and 'role="alert"' in bad.text
    assert "cần có phần tên người dùng" in html.unescape(bad.text)
    assert "needs a user part" not in html.unescape(bad.text)
    assert 'value="sip:rooms.vn"' in bad.text  # what was typed stays in the field
    other = session.get(Site, communes["c1"])
    assert other is not None
    site_service.update_site(session=session, site=other, sip_uri="sip:c1@rooms.vn")
    session.commit()
    taken = client.post(
        f"/sites/{site_id}", data={"csrf_token": token, "sip_uri": "sip:c1@rooms.vn"}
    )
    assert taken.status_code == 409
    assert f"sip:c1@rooms.vn đã là địa chỉ của điểm cầu {other.name}" in html.unescape(taken.text)
    cleared = client.post(
        f"/sites/{site_id}", data={"csrf_token": token, "sip_uri": ""}, follow_redirects=False
    )
    assert cleared.status_code == 303
    session.expire_all()
    assert session.get(Site, site_id).sip_uri is None  # type: ignore[union-attr]
    audit = session.scalars(select(AuditEntry).where(AuditEntry.entity == "site")).all()
    assert [e.detail["changes"]["sip_uri"] for e in audit] == [
        [None, "sip:Xa-An-Binh@rooms.vn"],
        ["sip:Xa-An-Binh@rooms.vn", None],
    ]


def test_site_page_is_read_only_for_viewers_and_missing_sites_are_404(
    web: Callable[..., TestClient], communes: dict[str, int]
) -> None:
    viewer = web(Role.viewer)
    page = viewer.get(f"/sites/{communes['c0']}")
    assert page.status_code == 200 and 'name="sip_uri"' not in page.text
    refused = viewer.post(
        f"/sites/{communes['c0']}", data={"csrf_token": csrf_of(page.text), "sip_uri": "sip:a@b.vn"}
    )
    assert refused.status_code == 403
    assert viewer.get("/sites/999999").status_code == 404
    assert viewer.get("/sites/abc").status_code == 404
