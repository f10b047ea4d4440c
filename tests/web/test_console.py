"""The chair console's server side: the programme grant and floor actions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge import signing
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings import service as meeting_service
from confbridge.nodes import placement
from confbridge.settings import Settings
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import PeerRole
from sfu.grants import GrantVerifier
from tests.support.factories import create_user, make_settings, register_node
from tests.support.servers import free_port
from tests.support.web import csrf_of, sign_in


@pytest.fixture
def console_settings(database: Database, tmp_path: Path) -> Settings:
    # A worker address where nothing listens: floor commands find the media server down.
    return make_settings(
        database.settings.database_url or "",
        tmp_path,
        sfu={"public_url": f"http://127.0.0.1:{free_port()}"},
    )


def _occurrence(session: Session, settings: Settings, communes: dict[str, int], start: Any) -> int:
    series = meeting_service.create(
        session=session,
        series_in={
            "title": "Giao ban trực tuyến", "kind": "giao_ban", "mode": "online",
            "rrule": "FREQ=DAILY;COUNT=1", "dtstart": start.isoformat(timespec="minutes"),
            "duration_min": 60, "chair_site_id": communes["hq"],
            "site_ids": [communes["c0"]], "skip_holidays": False,
        },
        settings=settings.meetings, now=utcnow() - timedelta(days=1),
    )  # fmt: skip
    session.commit()
    return series.occurrences[0].id


@pytest.fixture
def console_client(
    console_settings: Settings, database: Database
) -> Iterator[tuple[TestClient, str]]:
    create_user(database, "chutri", Role.secretariat)
    register_node(database, public_url=console_settings.sfu.public_url)
    with TestClient(create_app(console_settings, database=database)) as client:
        assert sign_in(client, "chutri").status_code == 303
        yield client, csrf_of(client.get("/calendar").text)


def test_console_grant_is_a_viewer_grant_for_the_room(
    console_client: tuple[TestClient, str],
    console_settings: Settings,
    session: Session,
    communes: dict[str, int],
) -> None:
    client, token = console_client
    occurrence_id = _occurrence(session, console_settings, communes, utcnow())
    page = client.get(f"/occurrences/{occurrence_id}/console")
    assert page.status_code == 200
    assert f'<meta name="csrf-token" content="{token}">' in page.text
    path = f"/occurrences/{occurrence_id}/console/grant"
    assert client.post(path).status_code == 403  # no CSRF header
    response = client.post(path, headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["whep_url"] == f"{console_settings.sfu.public_url}/whep/occ-{occurrence_id}"
    public_pem = signing.signer_for(console_settings.grant_key_path).public_pem
    verifier = GrantVerifier(public_pem.encode())
    claims = verifier.verify(body["token"], room=f"occ-{occurrence_id}")
    assert claims.role is PeerRole.viewer
    assert claims.room == f"occ-{occurrence_id}"
    assert claims.site_id == 0  # not a site of the meeting: attendance ignores it
    assert claims.chair_site_id == communes["hq"]


def test_console_grant_outside_the_meeting_is_refused(
    console_client: tuple[TestClient, str],
    console_settings: Settings,
    session: Session,
    communes: dict[str, int],
) -> None:
    client, token = console_client
    occurrence_id = _occurrence(session, console_settings, communes, utcnow() + timedelta(days=2))
    response = client.post(
        f"/occurrences/{occurrence_id}/console/grant", headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 409
    assert "Có thể xem hình ảnh hội nghị từ" in response.json()["detail"]


def test_console_floor_actions_report_a_media_server_that_is_down(
    console_client: tuple[TestClient, str],
    console_settings: Settings,
    session: Session,
    communes: dict[str, int],
) -> None:
    client, token = console_client
    occurrence_id = _occurrence(session, console_settings, communes, utcnow())
    placement.place_room(session=session, occurrence_id=occurrence_id, now=utcnow())
    session.commit()  # the room is on the node, as after a first join
    path = f"/occurrences/{occurrence_id}/floor"
    form = {"csrf_token": token, "action": "give", "site_id": str(communes["c0"])}
    as_script = client.post(path, data=form, headers={"Accept": "application/json"})
    assert as_script.status_code == 503
    assert as_script.json()["detail"] == "Không kết nối được máy chủ truyền hình; hãy thử lại."
    as_form = client.post(path, data=form)
    assert as_form.status_code == 503
    assert "Không kết nối được máy chủ truyền hình" in as_form.text
    # stopping the presentation is one of the console's actions: it reaches the (dead) node
    stop = client.post(
        path,
        data={"csrf_token": token, "action": "stop_content"},
        headers={"Accept": "application/json"},
    )
    assert stop.status_code == 503
    for bad in ({"action": "dance"}, {"action": "raise_hand"}, {"action": ""}):
        refused = client.post(path, data={"csrf_token": token, **bad})
        assert refused.status_code == 422
        assert "Thao tác không hợp lệ." in refused.text
    not_invited = client.post(
        path,
        data={"csrf_token": token, "action": "mute", "site_id": str(communes["c2"])},
        headers={"Accept": "application/json"},
    )
    assert not_invited.status_code == 422
    assert client.post("/occurrences/999999/floor", data=form).status_code == 404


def test_console_is_for_the_secretariat_only(
    web: Any, session: Session, settings: Settings, communes: dict[str, int]
) -> None:
    occurrence_id = _occurrence(session, settings, communes, utcnow())
    viewer = web(Role.viewer)
    assert viewer.get(f"/occurrences/{occurrence_id}").status_code == 200
    assert viewer.get(f"/occurrences/{occurrence_id}/console").status_code == 403
    token = csrf_of(viewer.get("/calendar").text)
    refused = viewer.post(
        f"/occurrences/{occurrence_id}/floor", data={"csrf_token": token, "action": "take"}
    )
    assert refused.status_code == 403


def test_console_extends_and_ends_a_running_meeting(
    console_client: tuple[TestClient, str],
    console_settings: Settings,
    session: Session,
    communes: dict[str, int],
) -> None:
    client, token = console_client
    occurrence_id = _occurrence(session, console_settings, communes, utcnow())
    occurrence = occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
    end_at = occurrence.end_at
    page = client.get(f"/occurrences/{occurrence_id}/console")
    assert "Gia hạn +15 phút" in page.text and "Kết thúc ngay" in page.text
    path = f"/occurrences/{occurrence_id}/schedule"
    as_script = {"Accept": "application/json"}
    extended = client.post(
        path, data={"csrf_token": token, "action": "extend", "minutes": "15"}, headers=as_script
    )
    assert extended.status_code == 200, extended.text
    schedule = extended.json()["schedule"]
    assert schedule["end_at"] == (end_at + timedelta(minutes=15)).isoformat()
    assert schedule["ended"] is False
    for bad in ({"action": "extend", "minutes": "7"}, {"action": "stop"}):
        refused = client.post(path, data={"csrf_token": token, **bad}, headers=as_script)
        assert refused.status_code == 422 and refused.json()["detail"] == "Thao tác không hợp lệ."
    # the occurrence page's plain form: back to the page
    from_page = client.post(
        path,
        data={"csrf_token": token, "action": "end", "next": f"/occurrences/{occurrence_id}"},
        follow_redirects=False,
    )
    assert from_page.status_code == 303
    assert from_page.headers["location"] == f"/occurrences/{occurrence_id}"
    session.expire_all()
    ended = occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
    assert ended.ended_at is not None and ended.end_at <= utcnow()
    again = client.post(
        path, data={"csrf_token": token, "action": "extend", "minutes": "30"}, headers=as_script
    )
    assert again.status_code == 409
    assert again.json()["detail"] == "Chỉ gia hạn hoặc kết thúc được cuộc họp đang diễn ra."
    assert "Cuộc họp đã kết thúc." in client.get(f"/occurrences/{occurrence_id}/console").text
