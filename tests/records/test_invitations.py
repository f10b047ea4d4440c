"""Invitations and agendas of series and occurrences over the API."""

from __future__ import annotations

from typing import Any

import icalendar
from fastapi.testclient import TestClient

from confbridge.sites.models import Site
from tests.support.records import Meeting

Headers = dict[str, str]

SERIES_INVITATION: dict[str, Any] = {
    "document_number": "125/GM-UBND",
    "document_date": "2026-01-02",
    "issuing_body": "ỦY BAN NHÂN DÂN TỈNH QUẢNG NINH",
    "place": "Quảng Ninh",
    "signer_name": "Nguyễn Văn Thắng",
    "signer_title": "KT. CHỦ TỊCH\nPHÓ CHỦ TỊCH",
    "summary": "Giao ban trực tuyến tình hình kinh tế - xã hội tuần.",
}


def _agenda(sites: dict[str, Site]) -> list[dict[str, Any]]:
    return [
        {"title": "Khai mạc, giới thiệu đại biểu", "presenter": "Văn phòng UBND", "planned_min": 5},
        {
            "title": "Báo cáo tình hình thu ngân sách",
            "presenter": "Sở Tài chính",
            "presenter_site_id": sites["p1"].id,
            "planned_min": 20,
        },
    ]


def test_series_invitation_round_trip_with_agenda_and_attendees(
    client: TestClient, secretariat: Headers, meeting: Meeting, sites: dict[str, Site]
) -> None:
    body = {
        **SERIES_INVITATION,
        "attendees": [
            {
                "site_id": sites["p1"].id,
                "text": "Lãnh đạo phường",
                "roles": ["Chủ tịch UBND phường"],
            },
            {"text": "Đại diện các sở, ngành", "roles": []},
        ],
        "agenda": _agenda(sites),
    }
    url = f"/api/v1/series/{meeting.series_id}/invitation"
    written = client.patch(url, json=body, headers=secretariat)
    assert written.status_code == 200, written.text
    read = client.get(url, headers=secretariat).json()
    assert read["signer_title"] == "KT. CHỦ TỊCH\nPHÓ CHỦ TỊCH"
    assert [i["position"] for i in read["agenda"]] == [1, 2]
    assert read["agenda"][1]["presenter_site_name"] == sites["p1"].name
    assert read["attendees"][0]["site_name"] == sites["p1"].name
    assert read["attendees"][0]["roles"] == ["Chủ tịch UBND phường"]


def test_occurrence_invitation_overrides_series_fields_and_falls_back(
    client: TestClient, secretariat: Headers, meeting: Meeting, sites: dict[str, Site]
) -> None:
    client.patch(
        f"/api/v1/series/{meeting.series_id}/invitation",
        json={**SERIES_INVITATION, "agenda": _agenda(sites)},
        headers=secretariat,
    )
    url = f"/api/v1/occurrences/{meeting.occurrence_id}/invitation"
    own = client.patch(
        url,
        json={"document_number": "130/GM-UBND", "document_date": "2026-01-09"},
        headers=secretariat,
    )
    assert own.status_code == 200, own.text
    read = own.json()
    assert read["document_number"] == "130/GM-UBND"
    assert read["signer_name"] == "Nguyễn Văn Thắng"  # the series'
    assert sorted(read["own_fields"]) == ["document_date", "document_number"]
    assert len(read["agenda"]) == 2  # the series' agenda
    back = client.patch(url, json={"document_number": None}, headers=secretariat).json()
    assert back["document_number"] == "125/GM-UBND"
    assert client.delete(url, headers=secretariat).status_code == 204
    assert client.get(url, headers=secretariat).json()["own_fields"] == []
    assert client.delete(url, headers=secretariat).status_code == 404


def test_occurrence_agenda_replaces_series_agenda_keeping_item_ids(
    client: TestClient, secretariat: Headers, meeting: Meeting, sites: dict[str, Site]
) -> None:
    url = f"/api/v1/occurrences/{meeting.occurrence_id}/invitation"
    first = client.patch(url, json={"agenda": _agenda(sites)}, headers=secretariat).json()
    ids = [item["id"] for item in first["agenda"]]
    reordered = [
        {"id": ids[1], "title": "Báo cáo thu ngân sách (sửa)"},
        {"title": "Kết luận", "presenter": "Chủ tịch UBND tỉnh"},
    ]
    second = client.patch(url, json={"agenda": reordered}, headers=secretariat).json()
    assert second["agenda"][0]["id"] == ids[1]
    assert [item["title"] for item in second["agenda"]] == [
        "Báo cáo thu ngân sách (sửa)",
        "Kết luận",
    ]
    assert "agenda" in second["own_fields"]
    foreign = client.patch(
        url, json={"agenda": [{"id": ids[0], "title": "x"}]}, headers=secretariat
    )
    assert foreign.status_code == 422
    assert "not on this agenda" in foreign.json()["detail"]


def test_invitation_refuses_bad_input(
    client: TestClient, secretariat: Headers, meeting: Meeting
) -> None:
    url = f"/api/v1/series/{meeting.series_id}/invitation"
    for body in (
        {"document_number": "12/GM\nUBND"},
        {"document_date": "1999-12-31"},
        {"attendees": [{"site_id": 999_999, "roles": []}]},
        {"agenda": [{"title": ""}]},
        {"agenda": [{"title": "x", "planned_min": 0}]},
        {"unknown": 1},
    ):
        response = client.patch(url, json=body, headers=secretariat)
        assert response.status_code == 422, (body, response.text)
    assert (
        client.patch("/api/v1/series/999999/invitation", json={}, headers=secretariat).status_code
        == 404
    )


def test_invitation_is_written_by_the_secretariat_only(
    client: TestClient, make_user: Any, meeting: Meeting
) -> None:
    viewer = make_user("viewer")
    url = f"/api/v1/series/{meeting.series_id}/invitation"
    assert client.patch(url, json={"summary": "x"}, headers=viewer).status_code == 403
    assert client.patch(url, json={"summary": "x"}, headers=meeting.hq).status_code == 403
    assert client.get(url, headers=viewer).status_code == 200


def test_occurrence_invitation_read_by_invited_terminals_only(
    client: TestClient, secretariat: Headers, meeting: Meeting, sites: dict[str, Site]
) -> None:
    client.patch(
        f"/api/v1/series/{meeting.series_id}/invitation",
        json={**SERIES_INVITATION, "agenda": _agenda(sites)},
        headers=secretariat,
    )
    url = f"/api/v1/occurrences/{meeting.occurrence_id}/invitation"
    hall = client.get(url, headers=meeting.p1)
    assert hall.status_code == 200
    assert hall.json()["agenda"][0]["title"] == "Khai mạc, giới thiệu đại biểu"
    assert client.get(url, headers=meeting.outsider).status_code == 404
    assert client.get(url).status_code == 401


def test_current_item_is_marked_and_seen_by_halls(
    client: TestClient, secretariat: Headers, meeting: Meeting, sites: dict[str, Site]
) -> None:
    url = f"/api/v1/occurrences/{meeting.occurrence_id}/invitation"
    items = client.patch(url, json={"agenda": _agenda(sites)}, headers=secretariat).json()["agenda"]
    current = f"/api/v1/occurrences/{meeting.occurrence_id}/current-item"
    marked = client.put(current, json={"agenda_item_id": items[1]["id"]}, headers=secretariat)
    assert marked.status_code == 200, marked.text
    assert client.get(url, headers=meeting.p1).json()["current_item_id"] == items[1]["id"]
    wrong = client.put(current, json={"agenda_item_id": 999_999}, headers=secretariat)
    assert wrong.status_code == 422
    cleared = client.put(current, json={"agenda_item_id": None}, headers=secretariat)
    assert cleared.json()["current_item_id"] is None


def test_calendar_events_describe_the_invitation_and_agenda(
    client: TestClient, secretariat: Headers, meeting: Meeting, sites: dict[str, Site]
) -> None:
    client.patch(
        f"/api/v1/series/{meeting.series_id}/invitation",
        json={**SERIES_INVITATION, "agenda": _agenda(sites)},
        headers=secretariat,
    )
    for url, headers in (
        (f"/api/v1/series/{meeting.series_id}/calendar.ics", secretariat),
        (f"/api/v1/sites/{sites['p1'].id}/calendar.ics", meeting.p1),
    ):
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        events = icalendar.Calendar.from_ical(response.content).walk("VEVENT")
        description = str(events[0]["description"])
        assert "Giấy mời số 125/GM-UBND" in description
        assert "Chương trình:\n1. Khai mạc, giới thiệu đại biểu – Văn phòng UBND (5 phút)" in (
            description
        )
