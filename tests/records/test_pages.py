"""The meeting's record on the occurrence page, and its downloads for signed-in users."""

from __future__ import annotations

import io
from typing import Any

import docx
from fastapi.testclient import TestClient

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.sites.models import Site
from tests.support.factories import create_user
from tests.support.records import Meeting
from tests.support.web import csrf_of, sign_in

Headers = dict[str, str]
PDF = b"%PDF-1.4\n%%EOF\n"


def _signed_in(app: Any, database: Database) -> TestClient:
    create_user(database, "thuky", Role.viewer)
    client = TestClient(app)
    assert sign_in(client, "thuky").status_code == 303
    return client


def test_record_pages_show_invitation_agenda_documents_and_conclusions(
    app: Any,
    database: Database,
    client: TestClient,
    secretariat: Headers,
    meeting: Meeting,
    sites: dict[str, Site],
) -> None:
    url = f"/api/v1/occurrences/{meeting.occurrence_id}"
    items = client.patch(
        f"{url}/invitation",
        json={
            "document_number": "125/GM-UBND",
            "signer_name": "Nguyễn Văn Hạnh",
            "signer_title": "CHỦ TỊCH",
            "attendees": [{"site_id": sites["p1"].id, "roles": ["Chủ tịch UBND phường"]}],
            "agenda": [
                {"title": "Báo cáo thu ngân sách", "presenter": "Sở Tài chính", "planned_min": 15},
                {"title": "Ý kiến các phường", "planned_min": 30},
            ],
        },
        headers=secretariat,
    ).json()["agenda"]
    client.put(f"{url}/current-item", json={"agenda_item_id": items[1]["id"]}, headers=secretariat)
    document = client.post(
        f"{url}/documents", files={"file": ("Báo cáo.pdf", PDF)}, headers=secretariat
    ).json()
    client.put(
        f"{url}/conclusions",
        json={
            "text": "Thu ngân sách đạt kế hoạch.",
            "tasks": [{"content": "Rà soát", "unit": "Sở Tài chính"}],
        },
        headers=secretariat,
    )
    with _signed_in(app, database) as web:
        page = web.get(f"/occurrences/{meeting.occurrence_id}")
        assert page.status_code == 200
        html = page.text
        for text in (
            "Giấy mời và chương trình",
            "125/GM-UBND",
            "CHỦ TỊCH Nguyễn Văn Hạnh",
            "Chủ tịch UBND phường",
            "Báo cáo thu ngân sách",
            "15 phút",
            "Tài liệu họp",
            "Báo cáo.pdf",
            "Thu ngân sách đạt kế hoạch.",
            "Thông báo kết luận",
        ):
            assert text in html, text
        assert f'data-item-id="{items[1]["id"]}" class="current" aria-current="step"' in html
        assert web.get(f"/documents/{document['id']}").content == PDF
        invitation = web.get(f"/occurrences/{meeting.occurrence_id}/invitation.docx")
        assert invitation.status_code == 200
        paragraphs = [p.text for p in docx.Document(io.BytesIO(invitation.content)).paragraphs]
        assert "GIẤY MỜI" in paragraphs
        notice = web.get(f"/occurrences/{meeting.occurrence_id}/conclusions.pdf")
        assert notice.headers["content-type"] == "application/pdf"
        assert web.get(f"/occurrences/{meeting.occurrence_id}/invitation.odt").status_code == 404
        assert web.get("/documents/999999").status_code == 404


def test_record_pages_downloads_need_a_signed_in_user(client: TestClient, meeting: Meeting) -> None:
    response = client.get(
        f"/occurrences/{meeting.occurrence_id}/invitation.pdf", follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/sign-in")


def test_record_pages_show_notices_to_the_secretariat(
    app: Any,
    database: Database,
    client: TestClient,
    secretariat: Headers,
    meeting: Meeting,
    sites: dict[str, Site],
) -> None:
    client.put(
        f"/api/v1/sites/{sites['p1'].id}/contacts",
        json=[{"email": "p1@phuong.gov.vn"}],
        headers=secretariat,
    )
    client.post(
        f"/api/v1/occurrences/{meeting.occurrence_id}/notices", json={}, headers=secretariat
    )
    create_user(database, "vp-web", Role.secretariat)
    with TestClient(app) as web:
        assert sign_in(web, "vp-web").status_code == 303
        html = web.get(f"/occurrences/{meeting.occurrence_id}").text
    assert "Thông báo (thư điện tử và webhook)" in html
    assert "p1@phuong.gov.vn" in html
    assert "Đang chờ gửi" in html


def test_record_pages_secretariat_marks_the_current_item(
    app: Any, database: Database, client: TestClient, secretariat: Headers, meeting: Meeting
) -> None:
    url = f"/api/v1/occurrences/{meeting.occurrence_id}"
    items = client.patch(
        f"{url}/invitation",
        json={"agenda": [{"title": "Khai mạc"}, {"title": "Báo cáo thu ngân sách"}]},
        headers=secretariat,
    ).json()["agenda"]
    create_user(database, "vp-current", Role.secretariat)
    with TestClient(app) as web:
        assert sign_in(web, "vp-current").status_code == 303
        page = web.get(f"/occurrences/{meeting.occurrence_id}").text
        assert "Đánh dấu đang thảo luận" in page
        marked = web.post(
            f"/occurrences/{meeting.occurrence_id}/current-item",
            data={"csrf_token": csrf_of(page), "agenda_item_id": str(items[1]["id"])},
            follow_redirects=False,
        )
        assert marked.status_code == 303, marked.text
        html = web.get(f"/occurrences/{meeting.occurrence_id}").text
        assert f'data-item-id="{items[1]["id"]}" class="current"' in html
        forged = web.post(
            f"/occurrences/{meeting.occurrence_id}/current-item",
            data={"agenda_item_id": str(items[0]["id"])},
            follow_redirects=False,
        )
        assert forged.status_code in (400, 403)
    assert (
        client.get(f"{url}/invitation", headers=meeting.p1).json()["current_item_id"]
        == (items[1]["id"])
    )
