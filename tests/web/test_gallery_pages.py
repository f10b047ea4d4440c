"""The halls' gallery pages: the console's with the floor at hand, the read-only one for
secretariat and IT staff, and the gallery grant behind both."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge import signing
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.meetings import service as meeting_service
from confbridge.settings import Settings
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import GrantPurpose, PeerRole
from sfu.grants import GrantVerifier
from tests.support.factories import create_user, make_settings, register_node
from tests.support.servers import free_port
from tests.support.web import csrf_of, sign_in

Client = tuple[TestClient, str]


@pytest.fixture
def gallery_settings(database: Database, tmp_path: Path) -> Settings:
    return make_settings(
        database.settings.database_url or "",
        tmp_path,
        sfu={"public_url": f"http://127.0.0.1:{free_port()}"},
    )


@pytest.fixture
def signed_in(gallery_settings: Settings, database: Database) -> Iterator[Callable[[Role], Client]]:
    """`signed_in(role)`: a client of a new user of `role`, and its CSRF token."""
    register_node(database, public_url=gallery_settings.sfu.public_url)
    app = create_app(gallery_settings, database=database)
    clients: list[TestClient] = []

    def open_client(role: Role) -> Client:
        username = f"gallery-{role.value}-{len(clients)}"
        create_user(database, username, role)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        assert sign_in(client, username).status_code == 303
        return client, csrf_of(client.get("/calendar").text)

    yield open_client
    for client in clients:
        client.__exit__(None, None, None)


def _occurrence(session: Session, settings: Settings, communes: dict[str, int], days: int) -> int:
    series = meeting_service.create(
        session=session,
        series_in={
            "title": "Giao ban trực tuyến", "kind": "giao_ban", "mode": "online",
            "rrule": "FREQ=DAILY;COUNT=1",
            "dtstart": (utcnow() + timedelta(days=days)).isoformat(timespec="minutes"),
            "duration_min": 60, "chair_site_id": communes["hq"],
            "site_ids": [communes["c0"], communes["c1"]], "skip_holidays": False,
        },
        settings=settings.meetings, now=utcnow() - timedelta(days=1),
    )  # fmt: skip
    session.commit()
    return series.occurrences[0].id


def test_gallery_page_is_read_only_for_it_staff(
    signed_in: Callable[[Role], Client],
    gallery_settings: Settings,
    session: Session,
    communes: dict[str, int],
) -> None:
    """IT staff see the gallery with no floor control, and cannot give the floor anyway."""
    client, token = signed_in(Role.it)
    occurrence_id = _occurrence(session, gallery_settings, communes, 0)
    meeting = client.get(f"/occurrences/{occurrence_id}")
    assert f'href="/occurrences/{occurrence_id}/gallery"' in meeting.text
    page = client.get(f"/occurrences/{occurrence_id}/gallery")
    assert page.status_code == 200
    assert 'data-controls="0"' in page.text
    assert "Hình ảnh các điểm cầu (điểm danh)" in page.text
    assert "Bắt đầu điểm danh" in page.text
    assert 'id="preview-floor"' not in page.text and 'data-action="give"' not in page.text
    refused = client.post(
        f"/occurrences/{occurrence_id}/floor",
        data={"csrf_token": token, "action": "give", "site_id": str(communes["c0"])},
        headers={"Accept": "application/json"},
    )
    assert refused.status_code == 403


def test_gallery_grant_views_every_halls_thumbnail(
    signed_in: Callable[[Role], Client],
    gallery_settings: Settings,
    session: Session,
    communes: dict[str, int],
) -> None:
    occurrence_id = _occurrence(session, gallery_settings, communes, 0)
    path = f"/occurrences/{occurrence_id}/gallery/grant"
    public_pem = signing.signer_for(gallery_settings.grant_key_path).public_pem
    verifier = GrantVerifier(public_pem.encode())
    for role in (Role.it, Role.secretariat):
        client, token = signed_in(role)
        assert client.post(path).status_code == 403  # no CSRF header
        response = client.post(path, headers={"X-CSRF-Token": token})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["whep_url"] == f"{gallery_settings.sfu.public_url}/whep/occ-{occurrence_id}"
        claims = verifier.verify(body["token"], room=f"occ-{occurrence_id}")
        assert claims.purpose is GrantPurpose.gallery
        assert (claims.role, claims.site_id) == (PeerRole.viewer, 0)
    later = _occurrence(session, gallery_settings, communes, 2)
    refused = client.post(f"/occurrences/{later}/gallery/grant", headers={"X-CSRF-Token": token})
    assert refused.status_code == 409
    assert "Có thể xem hình ảnh hội nghị từ" in refused.json()["detail"]
    missing = client.post("/occurrences/999999/gallery/grant", headers={"X-CSRF-Token": token})
    assert missing.status_code == 404


def test_gallery_is_refused_to_viewers(
    signed_in: Callable[[Role], Client],
    gallery_settings: Settings,
    session: Session,
    communes: dict[str, int],
) -> None:
    client, token = signed_in(Role.viewer)
    occurrence_id = _occurrence(session, gallery_settings, communes, 0)
    meeting = client.get(f"/occurrences/{occurrence_id}")
    assert f"/occurrences/{occurrence_id}/gallery" not in meeting.text
    assert client.get(f"/occurrences/{occurrence_id}/gallery").status_code == 403
    grant = client.post(
        f"/occurrences/{occurrence_id}/gallery/grant", headers={"X-CSRF-Token": token}
    )
    assert grant.status_code == 403


def test_console_shows_the_gallery_with_the_floor_at_hand(
    signed_in: Callable[[Role], Client],
    gallery_settings: Settings,
    session: Session,
    communes: dict[str, int],
) -> None:
    client, _token = signed_in(Role.secretariat)
    occurrence_id = _occurrence(session, gallery_settings, communes, 0)
    page = client.get(f"/occurrences/{occurrence_id}/console")
    assert page.status_code == 200
    assert 'data-controls="1"' in page.text
    assert 'id="preview-floor"' in page.text
    assert 'data-page-size="25"' in page.text
