"""A series' own invitation and agenda over HTTP, as a browser sends the forms
(`/series/{id}/record`): what they store, what the series' meetings then say, the audit, the
refusals (in Vietnamese, beside the field; never a server error) and who may use the page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from confbridge.auth.models import AuditEntry, Role
from confbridge.db import Database
from confbridge.records.service import TEXT_FIELDS
from confbridge.settings import Settings
from confbridge.sites.models import Site
from tests.support.records import Meeting, open_meeting
from tests.support.scopes import TwoProvinces
from tests.support.untranslated import untranslated
from tests.support.web import csrf_of
from tests.web.test_untranslated import VisibleText

Headers = dict[str, str]


class SeriesSecretary:
    """A signed-in secretariat user's client on a series' invitation and agenda page."""

    def __init__(self, client: TestClient, series_id: int) -> None:
        self.client = client
        self.base = f"/series/{series_id}/record"
        self.token = csrf_of(client.get(self.base).text)

    def post(self, path: str, data: dict[str, Any]) -> Any:
        return self.client.post(
            f"{self.base}{path}", data={"csrf_token": self.token, **data}, follow_redirects=False
        )


@pytest.fixture
def meeting(database: Database, settings: Settings, sites: dict[str, Site]) -> Meeting:
    """A briefing on now chaired by hq, inviting p1."""
    return open_meeting(database, settings, sites)


@pytest.fixture
def secretary(web: Callable[..., TestClient], meeting: Meeting) -> SeriesSecretary:
    return SeriesSecretary(web(Role.secretariat), meeting.series_id)


def _vietnamese(html: str) -> str:
    text = VisibleText.of(html)
    assert untranslated(text) == [], untranslated(text)
    return text


def _series(client: TestClient, headers: Headers, meeting: Meeting) -> Any:
    return client.get(f"/api/v1/series/{meeting.series_id}/invitation", headers=headers).json()


def _occurrence(client: TestClient, headers: Headers, meeting: Meeting) -> Any:
    url = f"/api/v1/occurrences/{meeting.occurrence_id}/invitation"
    return client.get(url, headers=headers).json()


def _audit(database: Database, entity: str) -> list[AuditEntry]:
    with database.session() as session:
        query = select(AuditEntry).where(AuditEntry.entity == entity).order_by(AuditEntry.id)
        return list(session.scalars(query))


def test_series_record_invitation_is_every_meetings_until_it_sets_its_own(
    client: TestClient,
    secretariat: Headers,
    secretary: SeriesSecretary,
    meeting: Meeting,
    sites: dict[str, Site],
    database: Database,
) -> None:
    # linked from the series' page and from its meeting's record page
    for linked in (
        f"/series/{meeting.series_id}/edit",
        f"/occurrences/{meeting.occurrence_id}/record",
    ):
        assert f'href="{secretary.base}"' in secretary.client.get(linked).text, linked
    page = secretary.client.get(secretary.base)
    assert page.status_code == 200
    text = _vietnamese(page.text)
    assert "Giấy mời và chương trình chung của chuỗi cuộc họp" in text
    assert "Tài liệu cuộc họp" not in text and "Kết luận" not in text
    assert sites["p1"].name in page.text  # the series' sites are offered
    saved = secretary.post(
        "/invitation",
        {
            "document_number": "7/GM-UBND",
            "document_date": "05/01/2026",
            "issuing_body": "ỦY BAN NHÂN DÂN TỈNH",
            "signer_title": "KT. CHỦ TỊCH\r\nPHÓ CHỦ TỊCH",
            "signer_name": "Trần Thị Lan",
            "summary": "Giao ban hằng tuần.",
            "attendee_site": [str(sites["p1"].id), ""],
            "attendee_roles": ["Chủ tịch UBND phường", ""],
            "attendee_text": ["", "Lãnh đạo các phòng"],
        },
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"{secretary.base}?saved=invitation#invitation"
    series = _series(client, secretariat, meeting)
    assert (series["document_number"], series["document_date"]) == ("7/GM-UBND", "2026-01-05")
    assert series["signer_title"] == "KT. CHỦ TỊCH\nPHÓ CHỦ TỊCH"
    assert [(g["site_id"], g["roles"], g["text"]) for g in series["attendees"]] == [
        (sites["p1"].id, ["Chủ tịch UBND phường"], ""),
        (None, [], "Lãnh đạo các phòng"),
    ]
    # the meeting has no invitation of its own: it says the series'
    occurrence = _occurrence(client, secretariat, meeting)
    assert occurrence["own_fields"] == []
    assert (occurrence["document_number"], occurrence["signer_name"]) == (
        "7/GM-UBND",
        "Trần Thị Lan",
    )
    assert (
        "Giao ban hằng tuần." in secretary.client.get(f"/occurrences/{meeting.occurrence_id}").text
    )
    [entry] = _audit(database, "series")
    assert (entry.action, entry.entity_id) == ("invitation_updated", meeting.series_id)
    assert entry.actor.startswith("user:web-secretariat-")
    assert entry.detail == {"fields": sorted([*TEXT_FIELDS, "attendees"]), "via": "web"}
    # on the series' own form an emptied field is cleared (there is nothing above it to follow)
    again = secretary.post("/invitation", {"document_number": "8/GM-UBND", "summary": ""})
    assert again.status_code == 303
    series = _series(client, secretariat, meeting)
    assert (series["document_number"], series["summary"], series["attendees"]) == (
        "8/GM-UBND",
        None,
        None,
    )
    shown = secretary.client.get(f"{secretary.base}?saved=invitation").text
    assert "Đã lưu giấy mời." in _vietnamese(shown)
    assert 'value="8/GM-UBND"' in shown


def test_series_record_agenda_add_edit_move_delete(
    client: TestClient,
    secretariat: Headers,
    secretary: SeriesSecretary,
    meeting: Meeting,
    sites: dict[str, Site],
    database: Database,
) -> None:
    for title, minutes in (("Khai mạc", "5"), ("Báo cáo thu ngân sách", "20"), ("Bế mạc", "")):
        added = secretary.post("/agenda", {"title": title, "planned_min": minutes})
        assert added.status_code == 303, added.text
        assert added.headers["location"].endswith("?saved=agenda#agenda")
    first, second, third = (i["id"] for i in _series(client, secretariat, meeting)["agenda"])
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
    agenda = _series(client, secretariat, meeting)["agenda"]
    # changed in place: the items keep their ids
    assert [(i["id"], i["position"], i["title"]) for i in agenda] == [
        (second, 1, "Báo cáo thu, chi ngân sách"),
        (first, 2, "Khai mạc"),
    ]
    assert (agenda[0]["presenter"], agenda[0]["presenter_site_id"], agenda[0]["planned_min"]) == (
        "Sở Tài chính",
        sites["p1"].id,
        25,
    )
    # the meeting follows the series' agenda, not a copy of it
    occurrence = _occurrence(client, secretariat, meeting)
    assert "agenda" not in occurrence["own_fields"]
    assert [i["id"] for i in occurrence["agenda"]] == [second, first]
    page = secretary.client.get(f"{secretary.base}?saved=agenda").text
    assert "Đã lưu chương trình họp." in _vietnamese(page)
    assert page.index("Báo cáo thu, chi ngân sách") < page.index('value="Khai mạc"')
    details = [e.detail for e in _audit(database, "series")]
    assert details == [{"fields": ["agenda"], "via": "web"}] * 3 + [
        {"fields": ["agenda"], "action": action, "via": "web"}
        for action in ("save", "up", "delete")
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"document_date": "31/02/2026"}, "Nhập ngày dạng 05/01/2026."),
        ({"document_number": "1" * 61}, "Quá dài: tối đa 60 ký tự."),
        ({"signer_name": "Trần\tLan"}, "Nội dung có ký tự không được phép"),
    ],
)
def test_series_record_invitation_refusals_are_shown_beside_the_field(
    client: TestClient,
    secretariat: Headers,
    secretary: SeriesSecretary,
    meeting: Meeting,
    fields: dict[str, str],
    message: str,
) -> None:
    refused = secretary.post("/invitation", {"place": "Quảng Ninh", **fields})
    assert refused.status_code == 422, refused.text
    text = _vietnamese(refused.text)
    assert message in text
    assert "Vui lòng sửa các ô được đánh dấu bên dưới." in text
    assert 'aria-invalid="true"' in refused.text
    assert 'value="Quảng Ninh"' in refused.text  # what was typed comes back
    assert _series(client, secretariat, meeting)["place"] is None


def test_series_record_refusals_of_the_service_and_the_agenda(
    client: TestClient, secretariat: Headers, secretary: SeriesSecretary, meeting: Meeting
) -> None:
    gone_site = secretary.post(
        "/invitation",
        {"attendee_site": "999999", "attendee_roles": "Chủ tịch", "attendee_text": ""},
    )
    assert gone_site.status_code == 422
    assert "Một điểm cầu đã chọn không còn" in _vietnamese(gone_site.text)
    for fields, message in (
        ({"title": ""}, "Vui lòng nhập ô này."),
        ({"title": "Khai mạc", "planned_min": "nửa giờ"}, "Nhập số phút dự kiến, từ 1 đến 1440."),
        ({"title": "Khai mạc", "presenter_site_id": "999999"}, "Một điểm cầu đã chọn không còn"),
    ):
        refused = secretary.post("/agenda", fields)
        assert refused.status_code == 422, (fields, refused.status_code)
        assert message in _vietnamese(refused.text), fields
    assert _series(client, secretariat, meeting)["agenda"] is None
    gone = secretary.post("/agenda/999999", {"action": "delete"})
    assert gone.status_code == 422
    assert "Mục này không còn trong chương trình họp." in _vietnamese(gone.text)
    assert secretary.post("/agenda/1", {"action": "fly"}).status_code == 404
    assert secretary.post("/agenda/abc", {"action": "up"}).status_code == 404
    missing_token = secretary.client.post(
        f"{secretary.base}/invitation", data={"summary": "x"}, follow_redirects=False
    )
    assert missing_token.status_code == 403
    assert secretary.client.get("/series/999999/record").status_code == 404
    assert secretary.client.get("/series/x/record").status_code == 404


def _book(client: TestClient, admin: Headers, chair: int, site_ids: list[int], day: str) -> int:
    response = client.post(
        "/api/v1/series",
        json={
            "title": "Giao ban",
            "kind": "giao_ban",
            "mode": "online",
            "rrule": "FREQ=WEEKLY;COUNT=1",
            "dtstart": f"{day}T07:30:00",
            "duration_min": 60,
            "chair_site_id": chair,
            "site_ids": site_ids,
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_series_record_scope_as_the_api(
    client: TestClient,
    admin: Headers,
    world: TwoProvinces,
    browser_as: Callable[[str, int | None, Role], TestClient],
) -> None:
    """Another ward's secretariat does not see a ward's series (404); a ward's secretariat
    sees the province's series that invites it, but may not change it (403); a viewer's role
    may not use the page (403). Nothing changes."""
    sites, units = world.sites, world.units
    ward_series = _book(client, admin, sites["p1"], [sites["p1"]], "2030-03-04")
    province_series = _book(client, admin, sites["hq"], [sites["hq"], sites["p1"]], "2030-03-05")
    own = browser_as("vp_p1", units["p1"], Role.secretariat)
    other = browser_as("vp_p2", units["p2"], Role.secretariat)
    viewer = browser_as("xem_p1", units["p1"], Role.viewer)
    assert own.get(f"/series/{ward_series}/record").status_code == 200
    posts = (
        ("/invitation", {"document_number": "1/GM"}),
        ("/agenda", {"title": "Nội dung khác"}),
        ("/agenda/1", {"action": "delete"}),
    )
    for client_, series_id, status in (
        (other, ward_series, 404),
        (own, province_series, 403),
        (viewer, ward_series, 403),
    ):
        page = client_.get(f"/series/{series_id}/record")
        assert page.status_code == status, (series_id, status)
        _vietnamese(page.text)
        token = csrf_of(client_.get("/calendar").text)
        for path, data in posts:
            refused = client_.post(
                f"/series/{series_id}/record{path}",
                data={"csrf_token": token, **data},
                follow_redirects=False,
            )
            assert refused.status_code == status, (series_id, path, refused.status_code)
    forbidden = own.get(f"/series/{province_series}/record").text
    assert "do đơn vị khác chủ trì" in forbidden
    for series_id in (ward_series, province_series):
        stored = client.get(f"/api/v1/series/{series_id}/invitation", headers=admin).json()
        assert stored["document_number"] is None and stored["agenda"] is None
