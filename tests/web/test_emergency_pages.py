"""The booking form's emergency option through HTTP as a browser sends it: offered on a clash,
refused to a commune's secretariat over the province's meeting, nothing changed."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.meetings.models import Displacement, Occurrence, OccurrenceStatus
from confbridge.settings import Settings
from confbridge.sites.models import Site
from tests.support.factories import PASSWORD
from tests.support.web import csrf_of, next_weekday, sign_in
from tests.web.test_pages import book_existing


def _commune_secretariat(app: Any, database: Database, unit_id: int) -> TestClient:
    with database.session() as session:
        auth_service.create(
            session=session,
            username="vp-xa-an-binh",
            password=PASSWORD,
            memberships=[auth_service.MembershipIn(unit_id=unit_id, role=Role.secretariat)],
        )
        session.commit()
    client = TestClient(app)
    assert sign_in(client, "vp-xa-an-binh").status_code == 303
    return client


def test_emergency_pages_a_commune_cannot_displace_the_province_meeting(
    app: Any,
    database: Database,
    session: Session,
    settings: Settings,
    communes: dict[str, int],
) -> None:
    training = book_existing(session, settings, communes).occurrences[0].id
    commune = session.get(Site, communes["c0"])
    assert commune is not None
    client = _commune_secretariat(app, database, commune.unit_id)
    form: dict[str, Any] = {
        "csrf_token": csrf_of(client.get("/bookings/new").text),
        "title": "Họp khẩn của xã",
        "kind": "khac",
        "mode": "online",
        "words": "không lặp lại",
        "once": "1",
        "start_date": next_weekday(2).isoformat(),
        "start_time": "14:30",
        "duration_min": "60",
        "chair_site_id": str(communes["c0"]),
        "action": "check",
    }
    checked = client.post("/bookings/new", data=form)
    assert checked.status_code == 409
    assert 'id="emergency"' in checked.text
    assert f'name="displace_{training}"' in checked.text
    form |= {
        "action": "emergency",
        "displaced_ids": str(training),
        f"displace_{training}": "cancel",
        "emergency_reason": "Sạt lở đất",
        "emergency_confirm": "1",
    }
    refused = client.post("/bookings/new", data=form)
    assert refused.status_code == 403
    assert (
        "Bạn không có quyền hủy hoặc dời cuộc họp “Họp chuyên đề chuyển đổi số”: cuộc họp do "
        "điểm cầu của đơn vị khác chủ trì." in refused.text
    )
    assert "Sạt lở đất" in refused.text  # the form as it was
    session.expire_all()
    assert session.get(Occurrence, training).status == OccurrenceStatus.scheduled.value
    assert session.scalars(select(Displacement)).first() is None
