"""Conclusions and assigned tasks of a meeting, and their notice as PDF and DOCX."""

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

from confbridge.sites.models import Unit
from tests.support.records import Meeting

Headers = dict[str, str]


def _body(unit_id: int) -> dict[str, Any]:
    return {
        "document_number": "15/TB-UBND",
        "document_date": "2026-01-06",
        "signer_name": "Nguyễn Văn Hạnh",
        "signer_title": "CHỦ TỊCH",
        "text": "Thu ngân sách tuần đạt kế hoạch.\nCác phường đẩy nhanh giải phóng mặt bằng.",
        "tasks": [
            {
                "content": "Rà soát nguồn thu, báo cáo UBND tỉnh",
                "unit": "Sở Tài chính",
                "unit_id": unit_id,
                "deadline_date": "2026-01-15",
            },
            {"content": "Hoàn thành giải phóng mặt bằng", "unit": "UBND phường Một"},
        ],
    }


def _flat(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def test_conclusions_recorded_read_by_halls_and_replaced(
    client: TestClient, secretariat: Headers, meeting: Meeting, province: Unit
) -> None:
    url = f"/api/v1/occurrences/{meeting.occurrence_id}/conclusions"
    assert client.get(url, headers=secretariat).status_code == 404
    written = client.put(url, json=_body(province.id), headers=secretariat)
    assert written.status_code == 200, written.text
    read = client.get(url, headers=meeting.p1).json()
    assert [t["position"] for t in read["tasks"]] == [1, 2]
    assert read["tasks"][0]["deadline_date"] == "2026-01-15"
    assert read["recorded_by"] == "user:vanphong"
    replaced = client.put(url, json={"text": "Một kết luận", "tasks": []}, headers=secretariat)
    assert replaced.json()["tasks"] == []
    assert client.get(url, headers=meeting.outsider).status_code == 404
    assert client.put(url, json={"text": "x"}, headers=meeting.hq).status_code == 403


def test_conclusions_refuse_bad_tasks(
    client: TestClient, secretariat: Headers, meeting: Meeting
) -> None:
    url = f"/api/v1/occurrences/{meeting.occurrence_id}/conclusions"
    for tasks in (
        [{"content": "", "unit": "Sở"}],
        [{"content": "x", "unit": ""}],
        [{"content": "x", "unit": "Sở", "unit_id": 999_999}],
        [{"content": "x", "unit": "Sở", "deadline_date": "26/01/2026"}],
    ):
        response = client.put(url, json={"text": "x", "tasks": tasks}, headers=secretariat)
        assert response.status_code == 422, (tasks, response.text)


def test_conclusions_notice_pdf_and_docx(
    client: TestClient, secretariat: Headers, meeting: Meeting, province: Unit, tmp_path: Path
) -> None:
    url = f"/api/v1/occurrences/{meeting.occurrence_id}/conclusions"
    assert client.get(f"{url}.pdf", headers=secretariat).status_code == 404
    client.put(url, json=_body(province.id), headers=secretariat)
    expected = (
        "THÔNG BÁO",
        "Số: 15/TB-UBND",
        "Ngày 06 tháng 01 năm 2026",
        "2. Các phường đẩy nhanh giải phóng mặt bằng.",
        "Sở Tài chính: Rà soát nguồn thu, báo cáo UBND tỉnh Thời hạn: 15/01/2026.",
        "Nguyễn Văn Hạnh",
    )
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    pdf = client.get(f"{url}.pdf", headers=meeting.p1)
    assert pdf.status_code == 200
    path = tmp_path / "tb.pdf"
    path.write_bytes(pdf.content)
    text = _flat(
        subprocess.run(
            [pdftotext, "-raw", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
    )
    for line in expected:
        assert line in text, line
    notice = docx.Document(io.BytesIO(client.get(f"{url}.docx", headers=secretariat).content))
    texts = [p.text for p in notice.paragraphs]
    for table in notice.tables:
        for cell in table._cells:
            texts += [p.text for p in cell.paragraphs]
    flat = _flat("\n".join(texts))
    for line in expected:
        assert line in flat, line
