"""The booking page's emergency path (họp khẩn) in headless Chromium: a clash offers to book
over the meetings it names; the reason and the confirmation are asked for; the displaced
meeting is moved or cancelled and both meetings' pages say who overrode what."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Occurrence, OccurrenceStatus
from confbridge.timeutil import utcnow
from tests.support.browsers import artifact, skip_without_chromium, sync_chromium
from tests.support.database import empty_tables
from tests.support.factories import PASSWORD, create_user, make_commune_province, make_settings
from tests.support.servers import ServerThread
from tests.support.web import next_weekday

skip_without_chromium()
TIMEOUT_MS = 10_000


@pytest.fixture
def website(
    migrated_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, int], int]]:
    """The server, the province's sites, and a training on Wednesday 14:00 at commune c0."""
    settings = make_settings(
        migrated_database.settings.database_url or "", tmp_path_factory.mktemp("web")
    )
    wednesday = next_weekday(2)
    with migrated_database.session() as session:
        sites = make_commune_province(session)
        series = meeting_service.create(
            session=session,
            series_in={
                "title": "Tập huấn chuyển đổi số", "kind": "tap_huan", "mode": "online",
                "rrule": "FREQ=DAILY;COUNT=1", "dtstart": f"{wednesday.isoformat()}T14:00",
                "duration_min": 120, "chair_site_id": sites["dept"],
                "site_ids": [sites["c0"]], "skip_holidays": False,
            },
            settings=settings.meetings, now=utcnow(),
        )  # fmt: skip
        session.commit()
        training = series.occurrences[0].id
    create_user(migrated_database, "vanphong", Role.secretariat)
    server = ServerThread(create_app(settings, database=migrated_database)).start()
    try:
        yield server.url, sites, training
    finally:
        server.stop()
        empty_tables(migrated_database)


@pytest.fixture
def page(website: tuple[str, dict[str, int], int]) -> Iterator[Page]:
    with sync_chromium() as chromium:
        yield _open(chromium, website[0])


def _open(chromium: Browser, url: str) -> Page:
    context = chromium.new_context(base_url=url, locale="vi-VN")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto("/sign-in")
    page.get_by_label("Tên đăng nhập").fill("vanphong")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name="Lịch họp", exact=True)).to_be_visible()
    return page


def test_browser_emergency_books_over_a_training_and_moves_it(
    page: Page, website: tuple[str, dict[str, int], int], migrated_database: Database
) -> None:
    """The secretariat books an emergency meeting over a commune's training, moving it."""
    _url, _sites, training = website
    wednesday = next_weekday(2)
    page.goto("/bookings/new")
    page.get_by_label("Tên cuộc họp").fill("Họp khẩn phòng chống bão")
    page.get_by_label("Chỉ họp một lần, không lặp").check()
    page.get_by_label("Ngày họp đầu tiên").fill(wednesday.isoformat())
    page.get_by_label("Giờ bắt đầu").fill("14:30")
    page.get_by_label("Điểm cầu chủ trì").select_option(label="Hội trường UBND tỉnh")
    page.get_by_label("Hội trường UBND Xã An Bình").check()
    page.get_by_role("button", name="Kiểm tra trùng lịch").click()
    expect(page.locator("#conflicts")).to_contain_text("Tập huấn chuyển đổi số")
    panel = page.locator("#emergency")
    panel.locator("summary").click()
    expect(panel.locator(f'tr[data-displaced="{training}"]')).to_contain_text(
        "Tập huấn chuyển đổi số"
    )
    # without a reason and a confirmation it is refused, and nothing changes
    panel.get_by_role("button", name="Đặt lịch họp khẩn").click()
    expect(page.locator("#emergency-message")).to_have_text(
        "Hãy đánh dấu xác nhận: các cuộc họp trong danh sách sẽ bị hủy hoặc dời."
    )
    panel = page.locator("#emergency")
    panel.get_by_label("Tôi xác nhận").check()
    panel.get_by_role("button", name="Đặt lịch họp khẩn").click()
    expect(page.locator("#emergency-message")).to_have_text("Hãy ghi lý do họp khẩn.")
    # moved onto the emergency meeting itself: refused with the meeting named
    panel = page.locator("#emergency")
    panel.get_by_label("Dời sang").check()
    panel.get_by_label("Dời “Tập huấn chuyển đổi số” đến giờ").fill("15:00")
    panel.get_by_label("Lý do họp khẩn").fill("Bão số 3 đổ bộ, cần họp ứng phó ngay")
    panel.get_by_label("Tôi xác nhận").check()
    panel.get_by_role("button", name="Đặt lịch họp khẩn").click()
    expect(page.locator("#emergency-message")).to_contain_text(
        "Không dời được cuộc họp “Tập huấn chuyển đổi số”"
    )
    page.screenshot(path=artifact("web-emergency-refused.png"), full_page=True)
    panel = page.locator("#emergency")
    expect(panel.get_by_label("Lý do họp khẩn")).to_have_value(
        "Bão số 3 đổ bộ, cần họp ứng phó ngay"
    )
    new_time = panel.get_by_label("Dời “Tập huấn chuyển đổi số” đến giờ")
    expect(new_time).to_have_value("15:00")  # the choices made are kept
    expect(panel.get_by_label("Dời sang")).to_be_checked()
    new_time.fill("17:00")
    panel.get_by_label("Tôi xác nhận").check()
    panel.get_by_role("button", name="Đặt lịch họp khẩn").click()
    expect(page).to_have_url(re.compile(r"/occurrences/\d+$"))
    notes = page.locator("#emergency-notes")
    expect(notes).to_contain_text("Họp khẩn: cuộc họp “Tập huấn chuyển đổi số”")
    expect(notes).to_contain_text("đã bị dời để nhường lịch, người quyết định: vanphong")
    expect(notes).to_contain_text("Lý do: Bão số 3 đổ bộ, cần họp ứng phó ngay")
    page.screenshot(path=artifact("web-emergency-booked.png"), full_page=True)
    notes.get_by_role("link", name="mở").click()
    expect(page.get_by_role("heading", name="Tập huấn chuyển đổi số")).to_be_visible()
    expect(page.locator("#emergency-notes")).to_contain_text(
        "để tổ chức họp khẩn “Họp khẩn phòng chống bão”"
    )
    with migrated_database.session() as session:
        moved = session.scalars(select(Occurrence).where(Occurrence.id == training)).one()
        assert moved.status == OccurrenceStatus.scheduled.value
        assert moved.start_at - moved.recurrence_at == timedelta(hours=3)
