"""The meeting record's forms over HTTP, as a browser sends them: what they store, and the
messages (in Vietnamese, beside the field) for what they refuse; never a server error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.records.models import Document
from confbridge.settings import Settings
from confbridge.sites.models import Site
from tests.records.test_documents import _docx
from tests.support.factories import create_user
from tests.support.pdfs import multi_page_pdf
from tests.support.records import Meeting
from tests.support.untranslated import untranslated
from tests.support.web import csrf_of, sign_in
from tests.web.test_untranslated import VisibleText

Headers = dict[str, str]


class Secretary:
    """A signed-in secretariat user's browser-like client on the meeting's record page."""

    def __init__(self, client: TestClient, occurrence_id: int) -> None:
        self.client = client
        self.base = f"/occurrences/{occurrence_id}/record"
        self.token = csrf_of(client.get(self.base).text)

    def post(self, path: str, data: dict[str, Any], **kwargs: Any) -> Any:
        return self.client.post(
            f"{self.base}{path}",
            data={"csrf_token": self.token, **data},
            follow_redirects=False,
            **kwargs,
        )

    def upload(self, name: str, content: bytes, item_id: int | str = "") -> Any:
        return self.post(
            "/documents", {"agenda_item_id": str(item_id)}, files={"file": (name, content)}
        )


@pytest.fixture
def secretary(app: Any, database: Database, meeting: Meeting) -> Iterator[Secretary]:
    create_user(database, "thuky-web", Role.secretariat)
    with TestClient(app) as client:
        assert sign_in(client, "thuky-web").status_code == 303
        yield Secretary(client, meeting.occurrence_id)


def _vietnamese(html: str) -> str:
    text = VisibleText.of(html)
    assert untranslated(text) == [], untranslated(text)
    return text


def _invitation(client: TestClient, secretariat: Headers, meeting: Meeting) -> Any:
    url = f"/api/v1/occurrences/{meeting.occurrence_id}/invitation"
    return client.get(url, headers=secretariat).json()


def test_record_forms_build_the_invitation_and_agenda(
    client: TestClient,
    secretariat: Headers,
    secretary: Secretary,
    meeting: Meeting,
    sites: dict[str, Site],
) -> None:
    saved = secretary.post(
        "/invitation",
        {
            "document_number": "125/GM-UBND",
            "document_date": "05/01/2026",
            "signer_title": "KT. CHỦ TỊCH\r\nPHÓ CHỦ TỊCH",
            "signer_name": "Nguyễn Văn Hạnh",
            "summary": "Giao ban kinh tế - xã hội tháng 1.",
            "attendee_site": [str(sites["p1"].id), ""],
            "attendee_roles": ["Chủ tịch UBND phường\nPhó Chủ tịch UBND phường", ""],
            "attendee_text": ["", ""],
        },
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].endswith("?saved=invitation#invitation")
    for title, minutes in (("Khai mạc", "5"), ("Báo cáo thu ngân sách", "20"), ("Bế mạc", "")):
        added = secretary.post("/agenda", {"title": title, "planned_min": minutes})
        assert added.status_code == 303, added.text
    invitation = _invitation(client, secretariat, meeting)
    assert invitation["document_number"] == "125/GM-UBND"
    assert invitation["document_date"] == "2026-01-05"
    assert invitation["signer_title"] == "KT. CHỦ TỊCH\nPHÓ CHỦ TỊCH"
    assert invitation["attendees"] == [
        {
            "site_id": sites["p1"].id,
            "site_name": sites["p1"].name,
            "text": "",
            "roles": ["Chủ tịch UBND phường", "Phó Chủ tịch UBND phường"],
        }
    ]
    first, second, third = (i["id"] for i in invitation["agenda"])
    # edit the second, move it up, delete the third
    changed = secretary.post(
        f"/agenda/{second}",
        {
            "action": "save",
            "title": "Báo cáo thu, chi ngân sách",
            "presenter": "Sở Tài chính",
            "presenter_site_id": str(sites["p1"].id),
            "planned_min": "25",
        },
    )
    assert changed.status_code == 303, changed.text
    assert secretary.post(f"/agenda/{second}", {"action": "up"}).status_code == 303
    assert secretary.post(f"/agenda/{third}", {"action": "delete"}).status_code == 303
    agenda = _invitation(client, secretariat, meeting)["agenda"]
    assert [(i["id"], i["position"], i["title"]) for i in agenda] == [
        (second, 1, "Báo cáo thu, chi ngân sách"),
        (first, 2, "Khai mạc"),
    ]
    assert (agenda[0]["presenter"], agenda[0]["presenter_site_id"], agenda[0]["planned_min"]) == (
        "Sở Tài chính",
        sites["p1"].id,
        25,
    )
    page = secretary.client.get(f"{secretary.base}?saved=agenda")
    text = _vietnamese(page.text)
    assert "Đã lưu chương trình họp." in text


def test_record_forms_follow_the_series_until_changed(
    client: TestClient, secretariat: Headers, secretary: Secretary, meeting: Meeting
) -> None:
    """Fields as the series says them stay the series'; its agenda is copied on a change, and
    the documents attached to its items follow their copies."""
    series = client.patch(
        f"/api/v1/series/{meeting.series_id}/invitation",
        json={
            "document_number": "1/GM-UBND",
            "signer_name": "Trần Thị Lan",
            "agenda": [{"title": "Khai mạc"}, {"title": "Thảo luận"}],
        },
        headers=secretariat,
    ).json()
    series_item = series["agenda"][1]["id"]
    document = client.post(
        f"/api/v1/occurrences/{meeting.occurrence_id}/documents",
        files={"file": ("thao-luan.pdf", multi_page_pdf(1))},
        data={"agenda_item_id": str(series_item)},
        headers=secretariat,
    ).json()
    page = secretary.client.get(secretary.base).text
    assert 'value="1/GM-UBND"' in page
    saved = secretary.post("/invitation", {"document_number": "1/GM-UBND", "summary": "Riêng"})
    assert saved.status_code == 303
    own = _invitation(client, secretariat, meeting)
    assert own["own_fields"] == ["summary"]
    assert own["signer_name"] == "Trần Thị Lan"
    assert secretary.post(f"/agenda/{series_item}", {"action": "up"}).status_code == 303
    own = _invitation(client, secretariat, meeting)
    assert "agenda" in own["own_fields"]
    assert [i["title"] for i in own["agenda"]] == ["Thảo luận", "Khai mạc"]
    copy = own["agenda"][0]["id"]
    assert copy != series_item
    listed = client.get(
        f"/api/v1/occurrences/{meeting.occurrence_id}/documents", headers=secretariat
    ).json()
    assert [(d["id"], d["agenda_item_id"]) for d in listed] == [(document["id"], copy)]
    # the series keeps its own agenda
    series_now = client.get(
        f"/api/v1/series/{meeting.series_id}/invitation", headers=secretariat
    ).json()
    assert [i["title"] for i in series_now["agenda"]] == ["Khai mạc", "Thảo luận"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"document_date": "31/02/2026"}, "Nhập ngày dạng 05/01/2026."),
        ({"document_date": "1999-12-31"}, "Nhập ngày trong khoảng 01/01/2000 đến 31/12/2199."),
        ({"document_number": "1" * 61}, "Quá dài: tối đa 60 ký tự."),
        ({"signer_name": "Nguyễn\tVăn"}, "Nội dung có ký tự không được phép"),
        ({"attendee_site": "abc", "attendee_roles": "", "attendee_text": ""}, "Chọn một điểm cầu"),
    ],
)
def test_record_forms_invitation_refusals_are_shown_beside_the_field(
    client: TestClient,
    secretariat: Headers,
    secretary: Secretary,
    meeting: Meeting,
    fields: dict[str, str],
    message: str,
) -> None:
    refused = secretary.post("/invitation", {"document_number": "9/GM", **fields})
    assert refused.status_code == 422, refused.text
    text = _vietnamese(refused.text)
    assert message in text
    assert "Vui lòng sửa các ô được đánh dấu bên dưới." in text
    assert 'aria-invalid="true"' in refused.text
    assert _invitation(client, secretariat, meeting)["document_number"] is None


def test_record_forms_agenda_refusals(
    client: TestClient, secretariat: Headers, secretary: Secretary, meeting: Meeting
) -> None:
    for fields, message in (
        ({"title": ""}, "Vui lòng nhập ô này."),
        ({"title": "Khai mạc", "planned_min": "nửa giờ"}, "Nhập số phút dự kiến, từ 1 đến 1440."),
        ({"title": "Khai mạc", "planned_min": "2000"}, "Nhập số phút dự kiến, từ 1 đến 1440."),
        ({"title": "Khai mạc", "presenter_site_id": "x"}, "Chọn một điểm cầu trong danh sách."),
        ({"title": "Khai mạc", "presenter_site_id": "999999"}, "Một điểm cầu đã chọn không còn"),
    ):
        refused = secretary.post("/agenda", fields)
        assert refused.status_code == 422, (fields, refused.status_code)
        assert message in _vietnamese(refused.text), fields
    assert _invitation(client, secretariat, meeting)["agenda"] == []
    gone = secretary.post("/agenda/999999", {"action": "delete"})
    assert gone.status_code == 422
    assert "Mục này không còn trong chương trình họp." in _vietnamese(gone.text)
    assert secretary.post("/agenda/1", {"action": "fly"}).status_code == 404


def test_record_forms_documents_upload_delete_and_refusals(
    secretary: Secretary, meeting: Meeting, settings: Settings, database: Database
) -> None:
    added = secretary.post("/agenda", {"title": "Báo cáo"})
    assert added.status_code == 303
    page = secretary.client.get(secretary.base).text
    item_id = page.split('name="agenda_item_id"><option value="">', 1)[1].split('value="')[1]
    item_id = item_id.split('"')[0]
    uploaded = secretary.upload("Báo cáo tháng 1.pdf", multi_page_pdf(2), item_id)
    assert uploaded.status_code == 303, uploaded.text
    with database.session() as session:
        document = session.scalars(select(Document)).one()
        assert (document.name, document.agenda_item_id) == ("Báo cáo tháng 1.pdf", int(item_id))
        document_id = document.id
    listed = secretary.client.get(secretary.base).text
    assert "Báo cáo tháng 1.pdf" in listed and "1. Báo cáo" in listed
    settings.records.max_document_mb = 1
    for name, content, status, message in (
        ("bao-cao.pdf", b"MZ\x90\x00 not a document", 422, "Tệp không phải tài liệu PDF, DOCX"),
        ("bao-cao.pdf", b"%PDF-1.4\n" + b"0" * (2 << 20), 413, "Tệp lớn hơn giới hạn 1 MB."),
        ("", b"", 422, "Chọn một tệp để tải lên."),
    ):
        refused = secretary.upload(name, content)
        assert refused.status_code == status, (name, refused.status_code)
        text = _vietnamese(refused.text)
        assert message in text, text
    assert secretary.upload("bao-cao.docx", _docx(), "999999").status_code == 422
    forged = secretary.client.post(
        f"{secretary.base}/documents",
        files={"file": ("x.pdf", multi_page_pdf(1))},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    deleted = secretary.post(f"/documents/{document_id}/delete", {})
    assert deleted.status_code == 303
    with database.session() as session:
        assert session.scalars(select(Document)).all() == []
    stored = [p for p in (settings.data_dir / "documents").glob("*.bin")]
    assert stored == []
    assert secretary.post(f"/documents/{document_id}/delete", {}).status_code == 404


def test_record_forms_conclusions_with_tasks(
    client: TestClient, secretariat: Headers, secretary: Secretary, meeting: Meeting
) -> None:
    base = {
        "document_number": "12/TB-UBND",
        "document_date": "2026-01-06",
        "signer_title": "CHÁNH VĂN PHÒNG",
        "signer_name": "Lê Văn Bình",
        "text": "Thu ngân sách đạt kế hoạch.\r\nCác phường đẩy nhanh giải ngân.",
    }
    refused = secretary.post(
        "/conclusions",
        {
            **base,
            "task_content": ["Rà soát nguồn thu", "Báo cáo giải ngân", ""],
            "task_unit": ["", "Phường Một", ""],
            "task_deadline": ["", "31/04/2026", ""],
        },
    )
    assert refused.status_code == 422
    text = _vietnamese(refused.text)
    assert "Vui lòng nhập ô này." in text and "Nhập ngày dạng 05/01/2026." in text
    assert 'value="Phường Một"' in refused.text  # what was typed comes back
    saved = secretary.post(
        "/conclusions",
        {
            **base,
            "task_content": ["Rà soát nguồn thu", "", "Báo cáo giải ngân"],
            "task_unit": ["Sở Tài chính", "", "Phường Một"],
            "task_deadline": ["2026-01-31", "", ""],
        },
    )
    assert saved.status_code == 303, saved.text
    conclusions = client.get(
        f"/api/v1/occurrences/{meeting.occurrence_id}/conclusions", headers=secretariat
    ).json()
    assert conclusions["text"] == "Thu ngân sách đạt kế hoạch.\nCác phường đẩy nhanh giải ngân."
    assert [(t["unit"], t["deadline_date"]) for t in conclusions["tasks"]] == [
        ("Sở Tài chính", "2026-01-31"),
        ("Phường Một", None),
    ]
    page = secretary.client.get(secretary.base).text
    assert f"/occurrences/{meeting.occurrence_id}/conclusions.pdf" in page


def test_record_forms_are_for_the_secretariat_in_scope(
    app: Any, database: Database, secretary: Secretary, meeting: Meeting
) -> None:
    create_user(database, "xem", Role.viewer)
    with TestClient(app) as viewer:
        assert sign_in(viewer, "xem").status_code == 303
        assert viewer.get(secretary.base).status_code == 403
        page = viewer.get(f"/occurrences/{meeting.occurrence_id}").text
        assert f"{secretary.base}" not in page
    assert secretary.client.get("/occurrences/999999/record").status_code == 404
    missing_token = secretary.client.post(
        f"{secretary.base}/invitation", data={"summary": "x"}, follow_redirects=False
    )
    assert missing_token.status_code == 403
    occurrence_page = secretary.client.get(f"/occurrences/{meeting.occurrence_id}").text
    assert "Soạn hồ sơ cuộc họp" in occurrence_page
