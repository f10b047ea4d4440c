"""SIP guests in attendance: shown beside the invited sites, never counted as invited."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from confbridge.db import Database
from confbridge.sites import service as site_service
from confbridge.sites.models import Site
from confbridge_kernel.contracts import EventType
from tests.support.events import event, local, media

Headers = dict[str, str]
J, L = EventType.joined, EventType.left


def test_sip_guest_appears_in_the_attendance_marked_and_outside_the_counts(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    meeting: Callable[..., int],
    post_events: Callable[..., None],
    database: Database,
) -> None:
    occ = meeting("2025-03-03T08:00:00", 60)
    hq = sites["hq"].id
    with database.session() as session:
        guest = site_service.sip_guest_site(
            session=session, caller_uri="sip:minh@partner.vn", display_name="Anh Minh"
        ).id
        session.commit()
    post_events(
        event(occ, hq, J, local("2025-03-03 07:55")),
        *media(occ, hq, local("2025-03-03 07:55"), local("2025-03-03 09:00")),
        event(occ, hq, L, local("2025-03-03 09:00")),
        event(occ, guest, J, local("2025-03-03 08:00")),
        *media(occ, guest, local("2025-03-03 08:00"), local("2025-03-03 09:00")),
        event(occ, guest, L, local("2025-03-03 09:00")),
    )
    for _ in range(2):  # computed live at the first read, then from the stored rows
        body = client.get(f"/api/v1/occurrences/{occ}/attendance", headers=secretariat).json()
        records = {r["site_id"]: r for r in body["records"]}
        assert records[guest]["guest"] is True and records[guest]["status"] == "present"
        assert records[guest]["site_name"] == "Khách: Anh Minh"
        assert [r["guest"] for r in body["records"]] == [False, False, False, True]
        summary = body["summary"]
        assert (summary["invited"], summary["present"], summary["absent"]) == (3, 1, 2)
        assert summary["guests"] == 1
    csv = client.get(f"/api/v1/occurrences/{occ}/attendance?format=csv", headers=secretariat).text
    assert "Khách mời (SIP)" in csv.splitlines()[0] and "Khách: Anh Minh" in csv
    # Reports count invited sites only: the guest is neither a row nor in the denominator.
    report = client.get(
        "/api/v1/reports/attendance",
        params={"from": "2025-03-01", "to": "2025-03-31"},
        headers=secretariat,
    ).json()
    assert guest not in {row["site_id"] for row in report["rows"]}
    assert (report["invited"], report["present"]) == (3, 1)
    ratio = client.get(
        "/api/v1/reports/online-ratio",
        params={"from": "2025-03-01", "to": "2025-03-31"},
        headers=secretariat,
    ).json()
    # Only the chair had media besides the guest: not verified as held on the bridge.
    assert ratio["rows"][0]["online_verified"] == 0


def test_sip_guest_attendance_cannot_be_corrected(
    client: TestClient,
    secretariat: Headers,
    sites: dict[str, Site],
    meeting: Callable[..., int],
    post_events: Callable[..., None],
    database: Database,
) -> None:
    occ = meeting("2025-03-03T08:00:00", 60)
    with database.session() as session:
        guest = site_service.sip_guest_site(
            session=session, caller_uri="sip:lan@partner.vn", display_name=""
        ).id
        session.commit()
    post_events(event(occ, guest, J, local("2025-03-03 08:00")))
    response = client.post(
        f"/api/v1/occurrences/{occ}/attendance/{guest}/corrections",
        json={"status": "present", "reason": "Khách mời tham dự đủ"},
        headers=secretariat,
    )
    assert response.status_code == 422 and "not invited" in response.json()["detail"]
