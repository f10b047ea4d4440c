"""The pages' side of past and held meetings: the booking form records meetings already over
only when asked, its preview counting what is saved; the occurrence form says why a move is
refused, in Vietnamese."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from confbridge.auth.models import Role
from confbridge.meetings.models import Occurrence, Series
from confbridge.settings import Settings
from confbridge.timeutil import utcnow
from tests.support.factories import LOCAL_TZ
from tests.support.web import csrf_of
from tests.web.test_pages import book_existing, booking_data


def test_booking_with_a_past_first_date_is_recorded_only_when_chosen(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session
) -> None:
    client = web(Role.secretariat)
    three_weeks_ago = (utcnow() - timedelta(days=21)).astimezone(LOCAL_TZ).date()
    data = booking_data(
        client,
        communes,
        action="check",
        words="hằng ngày, 30 lần",
        start_date=three_weeks_ago.isoformat(),
    )
    del data["skip_holidays"]  # every day of the 30
    refused = client.post("/bookings/check", data=data)
    assert "cuộc họp của lịch này đã kết thúc trước hôm nay" in refused.text
    assert "Ghi nhận cuộc họp đã diễn ra" in refused.text
    assert client.post("/bookings/new", data={**data, "action": "save"}).status_code == 422
    assert session.scalar(select(func.count()).select_from(Series)) == 0

    preview = client.post("/bookings/check", data={**data, "record_past": "1"})
    planned = int(re.search(r"Sẽ lên lịch (\d+) buổi họp", preview.text).group(1))  # type: ignore[union-attr]
    past = int(re.search(r"Trong đó (\d+) cuộc họp đã diễn ra", preview.text).group(1))  # type: ignore[union-attr]
    saved = client.post(
        "/bookings/new", data={**data, "record_past": "1", "action": "save"}, follow_redirects=False
    )
    assert saved.status_code == 303
    occurrences = session.scalars(select(Occurrence)).all()
    # the preview's count is what was saved, the meetings already over included
    assert planned == len(occurrences) == 30
    assert past == sum(o.end_at <= utcnow() for o in occurrences) >= 20


def test_occurrence_form_refuses_a_move_into_the_past_unless_recorded(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session, settings: Settings
) -> None:
    series = book_existing(session, settings, communes)
    occurrence = series.occurrences[0]
    client = web(Role.secretariat)
    page = client.get(f"/occurrences/{occurrence.id}")
    assert "Ghi nhận cuộc họp đã diễn ra (thời gian trong quá khứ)" in page.text
    form = {
        "csrf_token": csrf_of(page.text),
        "start_date": "2025-03-03",
        "start_time": "08:00",
        "status": "scheduled",
    }
    refused = client.post(f"/occurrences/{occurrence.id}/edit", data=form)
    assert refused.status_code == 422
    assert "Thay đổi này sẽ ghi nhận một cuộc họp đã kết thúc" in refused.text
    recorded = client.post(
        f"/occurrences/{occurrence.id}/edit",
        data={**form, "record_past": "1"},
        follow_redirects=False,
    )
    assert recorded.status_code == 303
    session.expire_all()
    moved = session.get(Occurrence, occurrence.id)
    assert moved is not None and moved.end_at <= utcnow()
