"""The meeting record and recordings follow the user's scope (`meetings.access`): a ward's
secretariat neither reads nor changes another ward's invitation, documents or recordings
(404, as if they did not exist), and sees, but may not change, a meeting another unit chairs
(403)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.auth.models import Role
from confbridge.db import Database
from tests.support.scopes import Headers, TwoProvinces, make_two_provinces, scoped_user
from tests.support.web import csrf_of, sign_in

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
RECORDING_ID = "0123456789abcdef0123456789abcdef"


@dataclass
class WardMeeting:
    """Ward p1's meeting (chaired by its hall, inviting only it), with a document."""

    series_id: int
    occurrence_id: int
    document_id: int
    sec_p1: Headers
    sec_p2: Headers


def _book(client: TestClient, headers: Headers, chair: int, title: str) -> tuple[int, int]:
    """Book a meeting chaired (and attended only) by `chair`: series and first occurrence ids."""
    response = client.post(
        "/api/v1/series",
        json={
            "title": title,
            "kind": "giao_ban",
            "mode": "online",
            "rrule": "FREQ=WEEKLY;COUNT=1",
            "dtstart": "2030-03-04T07:30:00",
            "duration_min": 60,
            "chair_site_id": chair,
            "site_ids": [chair],
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    series_id = response.json()["id"]
    occurrences = client.get(
        f"/api/v1/series/{series_id}/occurrences?from=2030-01-01&to=2031-01-01", headers=headers
    ).json()["items"]
    return series_id, occurrences[0]["id"]


@pytest.fixture
def world(session: Session) -> TwoProvinces:
    return make_two_provinces(session)


@pytest.fixture
def ward_meeting(client: TestClient, database: Database, world: TwoProvinces) -> WardMeeting:
    sec_p1 = scoped_user(database, client, "vp_p1", [(world.units["p1"], Role.secretariat)])
    sec_p2 = scoped_user(database, client, "vp_p2", [(world.units["p2"], Role.secretariat)])
    series_id, occurrence_id = _book(client, sec_p1, world.sites["p1"], "Giao ban phường Một")
    uploaded = client.post(
        f"/api/v1/occurrences/{occurrence_id}/documents",
        files={"file": ("bao-cao.pdf", PDF, "application/pdf")},
        headers=sec_p1,
    )
    assert uploaded.status_code == 201, uploaded.text
    return WardMeeting(series_id, occurrence_id, uploaded.json()["id"], sec_p1, sec_p2)


def test_record_scope_other_ward_cannot_read_invitation_documents_or_recordings(
    client: TestClient, ward_meeting: WardMeeting
) -> None:
    occ = f"/api/v1/occurrences/{ward_meeting.occurrence_id}"
    reads = [
        f"/api/v1/series/{ward_meeting.series_id}/invitation",
        f"{occ}/invitation",
        f"{occ}/invitation.pdf",
        f"{occ}/documents",
        f"/api/v1/documents/{ward_meeting.document_id}",
        f"{occ}/notices",
        f"{occ}/recordings",
        f"{occ}/recordings/{RECORDING_ID}/file",
    ]
    for path in reads:
        refused = client.get(path, headers=ward_meeting.sec_p2)
        assert refused.status_code == 404, f"{path}: {refused.status_code}"
        # the ward that chairs it reads them (the recording's file aside: there is none)
        if not path.endswith("/file"):
            own = client.get(path, headers=ward_meeting.sec_p1)
            assert own.status_code == 200, f"{path}: {own.status_code} {own.text[:80]}"


def test_record_scope_other_ward_cannot_change_invitation_documents_or_recordings(
    client: TestClient, ward_meeting: WardMeeting
) -> None:
    occ = f"/api/v1/occurrences/{ward_meeting.occurrence_id}"
    other = ward_meeting.sec_p2
    writes = [
        ("PATCH", f"/api/v1/series/{ward_meeting.series_id}/invitation", {"place": "Nơi khác"}),
        ("PATCH", f"{occ}/invitation", {"document_number": "1/GM-UBND"}),
        ("DELETE", f"{occ}/invitation", None),
        ("PUT", f"{occ}/conclusions", {"text": "Kết luận của phường khác."}),
        ("POST", f"{occ}/notices", {"kind": "invitation"}),
        ("POST", f"{occ}/recording", {"action": "start"}),
        ("DELETE", f"/api/v1/documents/{ward_meeting.document_id}", None),
    ]
    for method, path, body in writes:
        response = client.request(method, path, json=body, headers=other)
        assert response.status_code == 404, f"{method} {path}: {response.status_code}"
    upload = client.post(
        f"{occ}/documents", files={"file": ("khac.pdf", PDF, "application/pdf")}, headers=other
    )
    assert upload.status_code == 404
    # nothing changed: the document is still there, the invitation unset
    documents = client.get(f"{occ}/documents", headers=ward_meeting.sec_p1).json()
    assert [d["id"] for d in documents] == [ward_meeting.document_id]
    invitation = client.get(f"{occ}/invitation", headers=ward_meeting.sec_p1).json()
    assert invitation["place"] is None and invitation["document_number"] is None


def test_record_scope_visible_but_chaired_elsewhere_is_forbidden(
    client: TestClient, database: Database, admin: Headers, world: TwoProvinces
) -> None:
    """The province chairs and invites ward p1: p1's secretariat reads the record (403 only
    on changes), and may not upload, edit or record."""
    sec_p1 = scoped_user(database, client, "vp_p1", [(world.units["p1"], Role.secretariat)])
    series_id, occurrence_id = _book(client, admin, world.sites["hq"], "Họp tỉnh")
    client.patch(
        f"/api/v1/series/{series_id}",
        json={"site_ids": [world.sites["hq"], world.sites["p1"]]},
        headers=admin,
    ).raise_for_status()
    occ = f"/api/v1/occurrences/{occurrence_id}"
    assert client.get(f"{occ}/invitation", headers=sec_p1).status_code == 200
    assert client.get(f"{occ}/documents", headers=sec_p1).status_code == 200
    writes = [
        client.patch(f"{occ}/invitation", json={"place": "Phường Một"}, headers=sec_p1),
        client.post(
            f"{occ}/documents", files={"file": ("a.pdf", PDF, "application/pdf")}, headers=sec_p1
        ),
        client.post(f"{occ}/recording", json={"action": "start"}, headers=sec_p1),
    ]
    assert [w.status_code for w in writes] == [403, 403, 403]
    own = client.patch(f"{occ}/invitation", json={"place": "Hội trường tỉnh"}, headers=admin)
    assert own.status_code == 200


def test_record_scope_pages_hide_another_wards_downloads(
    app: Any, ward_meeting: WardMeeting
) -> None:
    """The web downloads answer "not found" to the other ward, and serve the chairing one."""
    occ = f"/occurrences/{ward_meeting.occurrence_id}"
    paths = [f"{occ}/invitation.pdf", f"/documents/{ward_meeting.document_id}"]
    with TestClient(app) as other, TestClient(app) as own:
        assert sign_in(other, "vp_p2").status_code == 303
        assert sign_in(own, "vp_p1").status_code == 303
        for path in paths:
            assert other.get(path).status_code == 404, path
            assert own.get(path).status_code == 200, path
        page = own.get(occ).text
        marked = other.post(
            f"{occ}/current-item",
            data={"csrf_token": csrf_of(other.get("/calendar").text), "agenda_item_id": ""},
            follow_redirects=False,
        )
        assert marked.status_code == 404
        assert "bao-cao.pdf" in page


def test_record_scope_forms_are_not_found_for_another_ward(
    app: Any, client: TestClient, ward_meeting: WardMeeting
) -> None:
    """The record's page and its forms answer "not found" to the other ward's secretariat and
    change nothing; the chairing ward builds its record there."""
    base = f"/occurrences/{ward_meeting.occurrence_id}/record"
    with TestClient(app) as other, TestClient(app) as own:
        assert sign_in(other, "vp_p2").status_code == 303
        assert sign_in(own, "vp_p1").status_code == 303
        assert other.get(base).status_code == 404
        assert own.get(base).status_code == 200
        token = csrf_of(other.get("/calendar").text)
        for path, data in (
            ("/invitation", {"document_number": "1/GM-UBND"}),
            ("/agenda", {"title": "Nội dung khác"}),
            ("/conclusions", {"text": "Kết luận khác"}),
            (f"/documents/{ward_meeting.document_id}/delete", {}),
        ):
            refused = other.post(
                f"{base}{path}", data={"csrf_token": token, **data}, follow_redirects=False
            )
            assert refused.status_code == 404, path
        upload = other.post(
            f"{base}/documents",
            data={"csrf_token": token},
            files={"file": ("khac.pdf", PDF)},
            follow_redirects=False,
        )
        assert upload.status_code == 404
    occ = f"/api/v1/occurrences/{ward_meeting.occurrence_id}"
    invitation = client.get(f"{occ}/invitation", headers=ward_meeting.sec_p1).json()
    assert invitation["document_number"] is None and invitation["agenda"] == []
    documents = client.get(f"{occ}/documents", headers=ward_meeting.sec_p1).json()
    assert [d["id"] for d in documents] == [ward_meeting.document_id]
