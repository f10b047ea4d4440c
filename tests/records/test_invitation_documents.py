"""The invitation as PDF (read back by poppler's pdftotext and pdffonts) and DOCX."""

from __future__ import annotations

import io
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import docx
import pytest
from fastapi.testclient import TestClient

from confbridge.sites.models import Site
from tests.support.records import Meeting

Headers = dict[str, str]

INVITATION: dict[str, Any] = {
    "document_number": "125/GM-UBND",
    "document_date": "2026-01-02",
    "parent_body": "Tỉnh Quảng Ninh",
    "issuing_body": "Ủy ban nhân dân thành phố Hạ Long",
    "place": "Hạ Long",
    "signer_name": "Nguyễn Văn Hạnh",
    "signer_title": "KT. CHỦ TỊCH\nPHÓ CHỦ TỊCH",
    "summary": "Đánh giá kết quả thực hiện nhiệm vụ tuần; triển khai nhiệm vụ trọng tâm.",
    "agenda": [
        {
            "title": "Báo cáo tình hình thu ngân sách",
            "presenter": "Phòng Tài chính - Kế hoạch",
            "planned_min": 15,
        },
        {"title": "Ý kiến của các phường", "planned_min": 40},
    ],
}
EXPECTED = (
    "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
    "Độc lập - Tự do - Hạnh phúc",
    "TỈNH QUẢNG NINH",
    "ỦY BAN NHÂN DÂN THÀNH PHỐ HẠ LONG",
    "Số: 125/GM-UBND",
    "Hạ Long, ngày 02 tháng 01 năm 2026",
    "GIẤY MỜI",
    "Kính gửi:",
    "Báo cáo tình hình thu ngân sách - Phòng Tài chính - Kế hoạch (15 phút)",
    "Nơi nhận:",
    "KT. CHỦ TỊCH",
    "PHÓ CHỦ TỊCH",
    "Nguyễn Văn Hạnh",
)


def _poppler(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} (poppler-utils) is not installed")
    return found


def _flat(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


@pytest.fixture
def invited(
    client: TestClient, secretariat: Headers, meeting: Meeting, sites: dict[str, Site]
) -> Meeting:
    response = client.patch(
        f"/api/v1/series/{meeting.series_id}/invitation",
        json={
            **INVITATION,
            "attendees": [{"site_id": sites["p1"].id, "roles": ["Chủ tịch UBND phường"]}],
        },
        headers=secretariat,
    )
    assert response.status_code == 200, response.text
    return meeting


def test_invitation_pdf_text_has_diacritics_and_fonts_are_embedded(
    client: TestClient,
    secretariat: Headers,
    invited: Meeting,
    sites: dict[str, Site],
    tmp_path: Path,
) -> None:
    response = client.get(
        f"/api/v1/occurrences/{invited.occurrence_id}/invitation.pdf", headers=secretariat
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert "giay-moi-" in response.headers["content-disposition"]
    path = tmp_path / "giay-moi.pdf"
    path.write_bytes(response.content)
    text = subprocess.run(
        [_poppler("pdftotext"), "-raw", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flat = _flat(text)
    for expected in EXPECTED:
        assert expected in flat, expected
    assert f"{sites['p1'].name}: Chủ tịch UBND phường" in flat
    fonts = subprocess.run(
        [_poppler("pdffonts"), str(path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    assert fonts, "no font listed"
    for line in fonts:
        columns = line.split()
        # name type encoding emb sub uni object-id: every font embedded, as a subset
        assert "DejaVuSerif" in columns[0]
        assert columns[-5] == "yes", line


def test_invitation_docx_opens_with_the_layout_parts(client: TestClient, invited: Meeting) -> None:
    response = client.get(
        f"/api/v1/occurrences/{invited.occurrence_id}/invitation.docx", headers=invited.p1
    )
    assert response.status_code == 200, response.text
    document = docx.Document(io.BytesIO(response.content))
    texts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for cell in table._cells:
            texts += [p.text for p in cell.paragraphs]
    flat = _flat("\n".join(texts))
    for expected in EXPECTED:
        assert expected in flat, expected
    assert document.styles["Normal"].font.name == "Times New Roman"
    assert document.sections[0].left_margin.mm == pytest.approx(30, abs=0.1)


def test_invitation_document_is_hidden_from_sites_not_invited(
    client: TestClient, invited: Meeting
) -> None:
    url = f"/api/v1/occurrences/{invited.occurrence_id}/invitation"
    assert client.get(f"{url}.pdf", headers=invited.outsider).status_code == 404
    assert client.get(f"{url}.docx", headers=invited.outsider).status_code == 404
    assert client.get(f"{url}.odt", headers=invited.p1).status_code in (404, 422)
    assert (
        client.get("/api/v1/occurrences/999999/invitation.pdf", headers=invited.p1).status_code
        == 404
    )


def test_invitation_draft_without_number_or_date_leaves_blanks(
    client: TestClient, secretariat: Headers, meeting: Meeting, tmp_path: Path
) -> None:
    response = client.get(
        f"/api/v1/occurrences/{meeting.occurrence_id}/invitation.pdf", headers=secretariat
    )
    assert response.status_code == 200
    path = tmp_path / "draft.pdf"
    path.write_bytes(response.content)
    text = _flat(
        subprocess.run(
            [_poppler("pdftotext"), str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert "Số: …../GM" in text
    assert "ngày ….. tháng ….. năm ….." in text.lower()
    assert "Giao ban trực tuyến" in text or "giao ban trực tuyến" in text
