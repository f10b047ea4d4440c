"""The calendar, the booking form and the occurrence page, through HTTP as a browser sends it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.auth.models import AuditEntry, Role
from confbridge.db import Database
from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Occurrence, Series
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge.text import vietnamese_key
from confbridge.timeutil import utcnow
from tests.support.web import csrf_of, next_weekday


def booking_data(client: TestClient, communes: dict[str, int], **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "csrf_token": csrf_of(client.get("/bookings/new").text),
        "title": "Giao ban tuần các xã",
        "kind": "giao_ban",
        "mode": "online",
        "words": "hằng tuần vào thứ Hai",
        "start_date": next_weekday(0).isoformat(),
        "start_time": "07:30",
        "duration_min": "120",
        "chair_site_id": str(communes["hq"]),
        "site_ids": [str(communes[f"c{i}"]) for i in range(3)],
        "skip_holidays": "1",
        "action": "save",
    }
    data.update(changes)
    return data


def book_existing(
    session: Session, settings: Settings, communes: dict[str, int], **changes: Any
) -> Series:
    values: dict[str, Any] = {
        "title": "Họp chuyên đề chuyển đổi số",
        "kind": "chuyen_de",
        "mode": "hybrid",
        "rrule": "FREQ=DAILY;COUNT=1",
        "dtstart": f"{next_weekday(2).isoformat()}T14:00",
        "duration_min": 120,
        "chair_site_id": communes["dept"],
        "site_ids": [communes["c0"]],
        "skip_holidays": False,
    }
    values.update(changes)
    series = meeting_service.create(
        session=session, series_in=values, settings=settings.meetings, now=utcnow()
    )
    session.commit()
    return series


def test_booking_saves_a_weekly_briefing_and_shows_it_in_the_calendar(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session
) -> None:
    client = web(Role.secretariat)
    response = client.post(
        "/bookings/new", data=booking_data(client, communes), follow_redirects=False
    )
    assert response.status_code == 303
    assert "saved=" in response.headers["location"]
    series = session.scalars(select(Series)).one()
    assert series.rrule == "FREQ=WEEKLY;BYDAY=MO"
    assert {s.id for s in series.sites} == {communes[f"c{i}"] for i in range(3)}
    assert series.skip_holidays is True
    audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "series_created")).one()
    assert audit.actor.startswith("user:web-secretariat")
    calendar = client.get(response.headers["location"])
    assert "Đã lưu chuỗi cuộc họp." in calendar.text
    item = re.compile(r'class="item mode-online"[^>]*href="/occurrences/(\d+)"')
    assert item.search(calendar.text)
    # The following month holds every Monday of it (a holiday may take one).
    first = next_weekday(0)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    assert len(item.findall(client.get(f"/calendar?view=month&day={following}").text)) >= 3
    week = client.get(f"/calendar?view=week&day={next_weekday(0).isoformat()}")
    assert week.text.count("Giao ban tuần các xã") == 1
    assert "07:30–09:30" in week.text
    # The container must not share the row's class, or the whole calendar becomes one grid row.
    assert '<div class="calendar calendar-view-week"' in week.text
    assert week.text.count('<div class="calendar-week">') == 1


def test_booking_check_previews_without_saving(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session
) -> None:
    client = web(Role.secretariat)
    data = booking_data(client, communes, action="check", words="monthly on the first Friday")
    response = client.post("/bookings/new", data=data)
    assert response.status_code == 200
    assert "Không trùng lịch." in response.text
    assert "FREQ=MONTHLY;BYDAY=1FR" in response.text
    assert session.scalars(select(Series)).first() is None
    fragment = client.post("/bookings/check", data=data)
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div class="message ok"')


@pytest.mark.parametrize(
    "words",
    ["FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "FREQ=YEARLY;BYSETPOS=-366;BYMONTH=2", "FREQ=HOURLY"],
)
def test_booking_check_answers_costly_rules_quickly(
    web: Callable[..., TestClient], communes: dict[str, int], words: str
) -> None:
    """The form's live check books nothing and takes the same bounded path as the API."""
    import time

    client = web(Role.secretariat)
    data = booking_data(client, communes, action="check", words=words)
    started = time.perf_counter()
    fragment = client.post("/bookings/check", data=data)
    assert time.perf_counter() - started < 1.0  # a bound, not a benchmark
    assert fragment.status_code == 200
    # in the reader's words, not the rule checker's English
    assert "không bao giờ tạo ra buổi họp" in fragment.text or "một lần mỗi ngày" in fragment.text
    assert "never occurs" not in fragment.text and "rrule" not in fragment.text


def test_booking_names_the_clash_and_saves_nothing(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session, settings: Settings
) -> None:
    book_existing(session, settings, communes)
    client = web(Role.secretariat)
    data = booking_data(
        client, communes, words="hằng tuần vào thứ Tư", start_date=next_weekday(2).isoformat(),
        start_time="14:30", site_ids=[str(communes["c0"]), str(communes["c1"])],
    )  # fmt: skip
    for action in ("check", "save"):
        response = client.post("/bookings/new", data={**data, "action": action})
        assert response.status_code == 409
        assert (
            "Hội trường UBND Xã An Bình đã có lịch “Họp chuyên đề chuyển đổi số”" in response.text
        )
        assert "Chưa lưu gì." in response.text
        assert 'value="Giao ban tuần các xã"' in response.text  # the form keeps what was typed
    assert session.scalars(select(func_count_series())).one() == 1


def func_count_series() -> Any:
    from sqlalchemy import func

    return func.count(Series.id)


@pytest.mark.parametrize(
    ("changes", "field_message"),
    [
        ({"title": ""}, "Nhập tên cuộc họp."),
        ({"title": "x" * 301}, "Tên cuộc họp quá dài"),
        ({"title": "Giao ban\r\nDTSTART:20260101T000000Z"}, "phải viết trên một dòng"),
        ({"kind": "party"}, "Chọn loại cuộc họp."),
        ({"mode": "telepathy"}, "Chọn hình thức tổ chức."),
        ({"words": "thỉnh thoảng"}, "Không hiểu các từ: thỉnh thoảng"),
        ({"words": ""}, "Cho biết cuộc họp lặp lại thế nào"),
        ({"start_date": "31/02/2026"}, "Nhập ngày họp đầu tiên."),
        ({"start_date": "1999-01-01"}, "Năm phải nằm trong khoảng"),
        ({"start_time": "25:99"}, "Nhập giờ, ví dụ 07:30."),
        ({"duration_min": "-5"}, "Nhập thời lượng từ 1 đến 1440 phút."),
        ({"duration_min": "99999999999999999999"}, "Nhập thời lượng từ 1 đến 1440 phút."),
        ({"chair_site_id": "abc"}, "Chọn điểm cầu chủ trì."),
        ({"exdates": "tomorrow"}, "Nhập các ngày, ví dụ 16/02/2026"),
    ],
)
def test_booking_bad_input_shows_the_form_with_a_message(
    web: Callable[..., TestClient], communes: dict[str, int], changes: dict[str, Any],
    field_message: str,
) -> None:  # fmt: skip
    client = web(Role.secretariat)
    response = client.post("/bookings/new", data=booking_data(client, communes, **changes))
    assert response.status_code == 422
    assert field_message in response.text
    assert 'aria-invalid="true"' in response.text
    assert "Vui lòng sửa các ô được đánh dấu bên dưới." in response.text


@pytest.mark.parametrize(
    "changes",
    [
        {"chair_site_id": "999999"},
        {"site_ids": ["999999", "-1", "x", "9" * 40]},
        {"unit_ids": ["424242"]},
        {"words": "FREQ=SECONDLY"},
        {"words": "FREQ=WEEKLY;BYDAY=XX"},
        {"words": "FREQ=DAILY;BYHOUR=7,8"},
        {"words": "FREQ=WEEKLY;COUNT=1", "exdates": next_weekday(0).isoformat()},
    ],
)
def test_booking_refusals_by_the_service_are_shown_on_the_form(
    web: Callable[..., TestClient], communes: dict[str, int], changes: dict[str, Any]
) -> None:
    client = web(Role.secretariat)
    response = client.post("/bookings/new", data=booking_data(client, communes, **changes))
    assert response.status_code in (409, 422), response.text[:500]
    assert 'role="alert"' in response.text


def test_series_edit_form_round_trips_the_words(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session, settings: Settings
) -> None:
    series = book_existing(
        session, settings, communes, rrule="FREQ=MONTHLY;BYDAY=1FR", title="Sơ kết tháng"
    )
    client = web(Role.secretariat)
    page = client.get(f"/series/{series.id}/edit")
    assert 'value="hằng tháng vào thứ Sáu đầu tiên"' in page.text
    data = booking_data(
        client, communes, title="Sơ kết tháng (đổi tên)", words="hằng tháng vào thứ Sáu đầu tiên",
        start_date=series.dtstart.date().isoformat(), start_time="14:00",
        chair_site_id=str(communes["dept"]), site_ids=[str(communes["c0"])], kind="so_ket",
    )  # fmt: skip
    data["csrf_token"] = csrf_of(page.text)
    response = client.post(f"/series/{series.id}/edit", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text[:2000]
    session.expire_all()
    assert session.get(Series, series.id).title == "Sơ kết tháng (đổi tên)"  # type: ignore[union-attr]
    assert client.get("/series/0/edit").status_code == 404
    assert client.get("/series/abc/edit").status_code == 404


def test_one_occurrence_is_moved_or_cancelled_and_a_clash_is_named(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session, settings: Settings
) -> None:
    other = book_existing(session, settings, communes)
    weekly = book_existing(
        session, settings, communes, title="Giao ban tuần", rrule="FREQ=WEEKLY;COUNT=3",
        dtstart=f"{next_weekday(2).isoformat()}T08:00", chair_site_id=communes["hq"],
    )  # fmt: skip
    occurrence = weekly.occurrences[0]
    client = web(Role.secretariat)
    page = client.get(f"/occurrences/{occurrence.id}")
    assert page.status_code == 200
    assert "Chỉ sửa buổi họp này" in page.text
    token = csrf_of(page.text)
    clash = client.post(
        f"/occurrences/{occurrence.id}/edit",
        data={"csrf_token": token, "start_date": next_weekday(2).isoformat(),
              "start_time": "14:30", "status": "scheduled"},
    )  # fmt: skip
    assert clash.status_code == 409
    assert f"“{other.title}”: 1 buổi họp từ" in clash.text
    # the refusal sits beside the form, above the page's tables
    assert clash.text.index('id="conflicts"') < clash.text.index('id="sites-table"')
    moved = client.post(
        f"/occurrences/{occurrence.id}/edit",
        data={"csrf_token": token, "start_date": next_weekday(2).isoformat(),
              "start_time": "10:00", "status": "cancelled"},
        follow_redirects=False,
    )  # fmt: skip
    assert moved.status_code == 303
    session.expire_all()
    stored = session.get(Occurrence, occurrence.id)
    assert stored is not None and stored.status == "cancelled" and stored.moved
    bad = client.post(
        f"/occurrences/{occurrence.id}/edit",
        data={"csrf_token": token, "start_date": "soon", "start_time": "x", "status": "maybe"},
    )
    assert bad.status_code == 422
    assert "Nhập ngày, ví dụ 05/01/2026." in bad.text


def test_calendar_filters_by_unit_and_kind_and_survives_odd_queries(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session, settings: Settings,
    database: Database,
) -> None:  # fmt: skip
    book_existing(session, settings, communes)
    client = web(Role.viewer)
    day = next_weekday(2).isoformat()
    assert "Họp chuyên đề chuyển đổi số" in client.get(f"/calendar?day={day}").text
    commune_units = re.findall(
        r'<option value="(\d+)">[\s\u00a0]*Xã Phú Lộc', client.get("/calendar").text
    )
    other_unit = client.get(f"/calendar?day={day}&unit_id={commune_units[0]}").text
    assert "Họp chuyên đề chuyển đổi số" not in other_unit
    assert (
        "Họp chuyên đề chuyển đổi số" not in client.get(f"/calendar?day={day}&kind=giao_ban").text
    )
    assert "Họp chuyên đề chuyển đổi số" in client.get(f"/calendar?day={day}&kind=chuyen_de").text
    for query in (
        "view=year",
        "day=2026-99-99",
        "day=0001-01-01",
        "unit_id=-1",
        "unit_id=99999999999999999999999",
        "kind=%00",
        "day=" + "9" * 500,
    ):
        assert client.get(f"/calendar?{query}").status_code == 200, query  # fmt: skip


def test_calendar_subscription_link_is_made_shown_once_and_revoked(
    web: Callable[..., TestClient],
    communes: dict[str, int],
    session: Session,
    settings: Settings,
    app: Any,
    serve: Callable[..., Any],
) -> None:
    series = book_existing(session, settings, communes)
    client = web(Role.viewer)
    calendar = client.get("/calendar")
    assert "Tạo liên kết đăng ký" in calendar.text and "Thu hồi liên kết" not in calendar.text
    token = csrf_of(calendar.text)
    made = client.post(
        "/calendar/feed", data={"csrf_token": token, "action": "create", "target": "nonsense"}
    )
    assert made.status_code == 200
    https = re.search(r'value="([^"]+)" id="feed-https"', made.text)
    assert https, made.text
    link = https.group(1).replace("&amp;", "&")
    assert link.startswith(
        f"http://testserver/api/v1/sites/{communes['hq']}/calendar.ics?feed=cbf_"
    )
    webcal = re.search(r'href="(webcal://[^"]+)" id="feed-webcal"', made.text)
    assert webcal and webcal.group(1).replace("&amp;", "&") == "webcal://" + link[len("http://") :]
    feed = link.split("feed=")[1]

    # Another calendar, with the same secret: the page shows its links without a new token.
    shown = client.post(
        "/calendar/feed",
        data={
            "csrf_token": token,
            "action": "show",
            "token": feed,
            "target": f"series:{series.id}",
        },
    )
    assert f"/api/v1/series/{series.id}/calendar.ics?feed={feed}" in shown.text
    server = serve(app)
    fetched = httpx.get(f"{server.url}/api/v1/series/{series.id}/calendar.ics?feed={feed}")
    assert fetched.status_code == 200 and b"BEGIN:VCALENDAR" in fetched.content

    calendar = client.get("/calendar")
    assert "Tạo liên kết đăng ký mới" in calendar.text and feed not in calendar.text
    revoked = client.post(
        "/calendar/feed", data={"csrf_token": token, "action": "revoke"}, follow_redirects=False
    )
    assert revoked.headers["location"] == "/calendar?feed=revoked"
    assert "Đã thu hồi liên kết đăng ký" in client.get("/calendar?feed=revoked").text
    gone = httpx.get(f"{server.url}/api/v1/series/{series.id}/calendar.ics?feed={feed}")
    assert gone.status_code == 401
    stale = client.post(
        "/calendar/feed",
        data={
            "csrf_token": token,
            "action": "show",
            "token": feed,
            "target": f"series:{series.id}",
        },
        follow_redirects=False,
    )
    assert stale.headers["location"] == "/calendar?feed=expired"
    actions = session.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.action.like("feed_token_%"))
        .order_by(AuditEntry.id)
    ).all()
    assert actions == ["feed_token_created", "feed_token_revoked"]


def test_series_page_lists_unplanned_meetings_and_resolves_them(
    web: Callable[..., TestClient],
    communes: dict[str, int],
    session: Session,
    settings: Settings,
) -> None:
    """The planner could not book two Mondays (a training holds commune c0 both times): the
    series page lists them; one is moved to the afternoon, the other's skip is accepted."""
    from datetime import UTC, datetime, timedelta

    from confbridge.meetings import flows as meeting_flows

    settings.meetings.horizon_days = 30
    briefing = book_existing(
        session, settings, communes, title="Giao ban tuần", kind="giao_ban",
        rrule="FREQ=WEEKLY;BYDAY=MO", dtstart="2030-03-04T07:30", duration_min=90,
    )  # fmt: skip
    book_existing(
        session, settings, communes, title="Tập huấn", kind="tap_huan",
        rrule="FREQ=WEEKLY;COUNT=2", dtstart="2030-04-15T08:00", duration_min=60,
        chair_site_id=communes["c0"], site_ids=[],
    )  # fmt: skip
    meeting_flows.plan_ahead(
        session=session, settings=settings, now=datetime(2030, 3, 29, tzinfo=UTC)
    )
    session.commit()
    client = web(Role.secretariat)
    page = client.get(f"/series/{briefing.id}/edit")
    assert page.status_code == 200
    assert "Cuộc họp chưa xếp được lịch" in page.text and "Tập huấn" in page.text
    assert page.text.count("Chờ xử lý") == 2
    token = csrf_of(page.text)
    busy = client.post(
        f"/series/{briefing.id}/unplanned/2030-04-15",
        data={"csrf_token": token, "action": "move", "start_date": "2030-04-15",
              "start_time": "08:30"},
    )  # fmt: skip
    assert busy.status_code == 409 and "Thời gian mới trùng với" in busy.text
    moved = client.post(
        f"/series/{briefing.id}/unplanned/2030-04-15",
        data={"csrf_token": token, "action": "move", "start_date": "2030-04-15",
              "start_time": "14:00"},
        follow_redirects=False,
    )  # fmt: skip
    assert moved.status_code == 303, moved.text
    skipped = client.post(
        f"/series/{briefing.id}/unplanned/2030-04-22",
        data={"csrf_token": token, "action": "skip"},
        follow_redirects=False,
    )
    assert skipped.status_code == 303, skipped.text
    page = client.get(skipped.headers["location"])
    assert "Chờ xử lý" not in page.text and "Đã bỏ qua, do web-secretariat" in page.text
    afternoon = datetime(2030, 4, 15, 7, 0, tzinfo=UTC)
    session.expire_all()
    starts = [o.start_at for o in session.get(Series, briefing.id).occurrences]
    assert afternoon in starts and afternoon + timedelta(days=7) not in starts
    no_token = client.post(f"/series/{briefing.id}/unplanned/2030-04-22", data={"action": "skip"})
    assert no_token.status_code == 403


def test_occurrence_clash_is_one_line_per_clashing_series(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session, settings: Settings
) -> None:
    """Three halls booked by the same other series: one line naming the three, not three."""
    halls = [communes["c0"], communes["c1"], communes["c2"]]
    other = book_existing(session, settings, communes, site_ids=halls)
    weekly = book_existing(
        session, settings, communes, title="Giao ban tuần", rrule="FREQ=WEEKLY;COUNT=3",
        dtstart=f"{next_weekday(2).isoformat()}T08:00", chair_site_id=communes["hq"],
        site_ids=halls,
    )  # fmt: skip
    client = web(Role.secretariat)
    occurrence = weekly.occurrences[0]
    token = csrf_of(client.get(f"/occurrences/{occurrence.id}").text)
    clash = client.post(
        f"/occurrences/{occurrence.id}/edit",
        data={"csrf_token": token, "start_date": next_weekday(2).isoformat(),
              "start_time": "14:30", "status": "scheduled"},
    )  # fmt: skip
    assert clash.status_code == 409
    lines = re.findall(r"<li data-series=\"([^\"]*)\">(.*?)</li>", clash.text, re.S)
    assert [title for title, _text in lines] == [other.title]
    names = [session.get(Site, site_id).name for site_id in halls]
    assert ", ".join(sorted(names, key=vietnamese_key)) in lines[0][1]


def test_booking_a_meeting_that_does_not_repeat(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session
) -> None:
    client = web(Role.secretariat)
    choices = {
        "Họp 1": {"words": "một lần"},
        "Họp 2": {"words": "", "once": "1", "start_time": "14:00"},  # the form's choice
    }
    for title, choice in choices.items():
        data = booking_data(client, communes, title=title, **choice)
        saved = client.post("/bookings/new", data=data, follow_redirects=False)
        assert saved.status_code == 303, saved.text[:2000]
    for title in ("Họp 1", "Họp 2"):
        series = session.scalars(select(Series).where(Series.title == title)).one()
        assert series.rrule == "FREQ=DAILY;COUNT=1" and len(series.occurrences) == 1
        form = client.get(f"/series/{series.id}/edit").text
        assert 'value="không lặp lại"' in form and 'id="once" name="once"' in form
        assert re.search(r'id="once"[^>]*checked', form)


def test_booking_words_not_understood_are_echoed_as_typed_and_dates_read_ddmmyyyy(
    web: Callable[..., TestClient], communes: dict[str, int], session: Session
) -> None:
    client = web(Role.secretariat)
    refused = client.post(
        "/bookings/new", data=booking_data(client, communes, words="thỉnh thoảng vào thứ Hai")
    )
    assert refused.status_code == 422 and "thỉnh thoảng" in refused.text
    assert "thinh thoang" not in refused.text
    skip = next_weekday(0) + timedelta(days=7)
    saved = client.post(
        "/bookings/new",
        data=booking_data(client, communes, title="Giao ban bỏ ngày", exdates=f"{skip:%d/%m/%Y}"),
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text[:2000]
    series = session.scalars(select(Series).where(Series.title == "Giao ban bỏ ngày")).one()
    assert series.exdates == [skip.isoformat()]
    # shown back as the pages write dates
    assert f'value="{skip:%d/%m/%Y}"' in client.get(f"/series/{series.id}/edit").text
