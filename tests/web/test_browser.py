"""The pages in headless Chromium: sign in, book for a province's communes, see clashes, read
the calendar on an office screen and on a phone, switch language. One server for the module."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from confbridge.auth.models import Role
from confbridge.bridge import events as event_service
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.meetings import service as meeting_service
from confbridge.settings import Settings
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import PeerStats, SfuEvent, room_name
from tests.support.browsers import (
    DESKTOP,
    PHONE,
    artifact,
    skip_without_chromium,
    sync_chromium,
)
from tests.support.database import empty_tables
from tests.support.factories import PASSWORD, create_user, make_commune_province, make_settings
from tests.support.servers import ServerThread
from tests.support.web import next_weekday

skip_without_chromium()

TIMEOUT_MS = 10_000


@dataclass
class WebSite:
    url: str
    sites: dict[str, int]
    settings: Settings
    database: Database


@pytest.fixture(scope="module")
def website(
    migrated_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebSite]:
    settings = make_settings(
        migrated_database.settings.database_url or "", tmp_path_factory.mktemp("web")
    )
    with migrated_database.session() as session:
        sites = make_commune_province(session)
    create_user(migrated_database, "vanphong", Role.secretariat)
    server = ServerThread(create_app(settings, database=migrated_database)).start()
    try:
        yield WebSite(server.url, sites, settings, migrated_database)
    finally:
        server.stop()
        empty_tables(migrated_database)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_chromium() as chromium:
        yield chromium


def open_page(browser: Browser, website: WebSite, viewport: dict[str, int] = DESKTOP) -> Page:
    context = browser.new_context(viewport=viewport, base_url=website.url, locale="vi-VN")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Console errors too (a script or style refused by the Content-Security-Policy shows there),
    # except the 401/409/422 pages the tests ask for on purpose.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.errors = errors  # type: ignore[attr-defined]
    return page


@pytest.fixture
def page(browser: Browser, website: WebSite) -> Iterator[Page]:
    page = open_page(browser, website)
    yield page
    assert page.errors == []  # type: ignore[attr-defined]
    page.context.close()


def sign_in(page: Page, username: str = "vanphong") -> None:
    """With the keyboard only, as a user without a mouse would."""
    page.goto("/calendar")
    expect(page).to_have_url(re.compile(r"/sign-in\?next="))
    expect(page.get_by_label("Tên đăng nhập")).to_be_focused()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Lịch họp", exact=True)).to_be_visible()


def test_web_sign_in_refuses_a_wrong_password_then_lets_in(page: Page) -> None:
    page.goto("/sign-in")
    page.screenshot(path=artifact("web-sign-in.png"))
    page.get_by_label("Tên đăng nhập").fill("vanphong")
    page.get_by_label("Mật khẩu").fill("not-the-password")
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("alert")).to_have_text("Sai tên đăng nhập hoặc mật khẩu.")
    expect(page.get_by_label("Tên đăng nhập")).to_have_value("vanphong")
    sign_in(page)
    expect(page.get_by_role("link", name="Đặt lịch họp").first).to_be_visible()


def every_field_has_a_label(page: Page) -> list[str]:
    return page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea")]
            .filter((el) => el.type !== "hidden")
            .filter((el) => el.labels.length === 0 && !el.getAttribute("aria-label"))
            .map((el) => el.name || el.id)"""
    )


def test_web_book_a_weekly_briefing_for_the_communes(page: Page, website: WebSite) -> None:
    """The secretariat books Monday briefings for every commune and sees them in the calendar."""
    sign_in(page)
    page.get_by_role("link", name="Đặt lịch họp").first.click()
    expect(page.get_by_role("heading", name="Đặt lịch họp")).to_be_visible()
    assert every_field_has_a_label(page) == []
    monday = next_weekday(0)
    page.get_by_label("Tên cuộc họp").fill("Giao ban tuần các xã")
    page.get_by_label("Lặp lại").fill("hằng tuần vào thứ Hai")
    page.get_by_label("Ngày họp đầu tiên").fill(monday.isoformat())
    page.get_by_label("Giờ bắt đầu").fill("07:30")
    page.get_by_label("Điểm cầu chủ trì").select_option(label="Hội trường UBND tỉnh")
    # Search without accents, then tick every commune hall the search shows.
    page.get_by_label("Tìm đơn vị, điểm cầu").fill("xa")
    expect(page.get_by_label("Phòng họp Sở Nội vụ")).to_be_hidden()
    page.get_by_role("button", name="Chọn tất cả điểm cầu đang hiển thị").click()
    for name in ("Xã An Bình", "Xã Phú Lộc", "Xã Tân Hòa"):
        expect(page.get_by_label(f"Hội trường UBND {name}")).to_be_checked()
    page.get_by_label("Tìm đơn vị, điểm cầu").fill("")
    expect(page.get_by_label("Phòng họp Sở Nội vụ")).not_to_be_checked()
    expect(page.locator("#selection-count")).to_have_text("Đã chọn 3 điểm cầu và 0 đơn vị")
    page.get_by_role("button", name="Kiểm tra trùng lịch").click()
    expect(page.locator("#preview")).to_contain_text("Không trùng lịch.")
    expect(page.locator("#preview")).to_contain_text("FREQ=WEEKLY;BYDAY=MO")
    page.screenshot(path=artifact("web-booking-form.png"), full_page=True)
    page.get_by_role("button", name="Đặt lịch", exact=True).click()

    expect(page).to_have_url(re.compile(r"/calendar\?view=month&day=" + monday.isoformat()))
    expect(page.get_by_role("status")).to_have_text("Đã lưu chuỗi cuộc họp.")
    items = page.locator("a.item", has_text="Giao ban tuần các xã")
    expect(items.first).to_be_visible()
    page.screenshot(path=artifact("web-calendar-month.png"), full_page=True)
    # The following month holds every Monday of it (a holiday may take one).
    page.get_by_role("link", name="Sau", exact=True).click()
    expect(page).to_have_url(re.compile(r"view=month"))
    expect(items.first).to_be_visible()
    assert items.count() >= 3
    assert all("07:30–09:30" in text for text in items.all_inner_texts())
    page.go_back()
    page.get_by_role("link", name="Tuần", exact=True).click()
    week = page.locator("a.item", has_text="Giao ban tuần các xã")
    expect(week).to_have_count(1)
    expect(week).to_contain_text("4 điểm cầu")
    # On a desktop the week row is the 7-column grid; the container around it is not.
    columns = "el => getComputedStyle(el).gridTemplateColumns.split(' ').length"
    assert page.locator(".calendar-week").evaluate(columns) == 7
    assert page.locator(".calendar").evaluate("el => getComputedStyle(el).display") == "block"
    page.screenshot(path=artifact("web-calendar-week.png"), full_page=True)
    week.click()
    expect(page.get_by_role("heading", name="Giao ban tuần các xã")).to_be_visible()
    expect(page.locator("#sites-table tbody tr")).to_have_count(4)
    expect(page.locator("#live-indicator")).to_have_class(re.compile("connected"))
    page.screenshot(path=artifact("web-occurrence.png"), full_page=True)


def test_web_a_clash_is_named_on_the_form_before_saving(page: Page, website: WebSite) -> None:
    """A booking that overlaps a meeting of one commune names the site and that meeting."""
    wednesday = next_weekday(2)
    with website.database.session() as session:
        meeting_service.create(
            session=session,
            series_in={
                "title": "Họp chuyên đề chuyển đổi số", "kind": "chuyen_de", "mode": "hybrid",
                "rrule": "FREQ=DAILY;COUNT=1", "dtstart": f"{wednesday.isoformat()}T14:00",
                "duration_min": 120, "chair_site_id": website.sites["dept"],
                "site_ids": [website.sites["c0"]], "skip_holidays": False,
            },
            settings=website.settings.meetings, now=utcnow(),
        )  # fmt: skip
        session.commit()
    sign_in(page)
    page.goto("/bookings/new")
    page.get_by_label("Tên cuộc họp").fill("Tập huấn phần mềm một cửa")
    page.get_by_label("Loại cuộc họp").select_option(label="Tập huấn")
    page.get_by_label("Lặp lại").fill("hằng tuần vào thứ Tư, 4 lần")
    page.get_by_label("Ngày họp đầu tiên").fill(wednesday.isoformat())
    page.get_by_label("Giờ bắt đầu").fill("15:00")
    page.get_by_label("Điểm cầu chủ trì").select_option(label="Hội trường UBND tỉnh")
    page.get_by_label("Hội trường UBND Xã An Bình").check()
    page.get_by_label("Hội trường UBND Xã Tân Hòa").check()
    # The form checks by itself while it is filled in: no button pressed yet.
    conflicts = page.locator("#conflicts")
    expect(conflicts).to_contain_text(
        "Hội trường UBND Xã An Bình đã có lịch “Họp chuyên đề chuyển đổi số”"
    )
    expect(conflicts).not_to_contain_text("Xã Tân Hòa")
    page.get_by_role("button", name="Đặt lịch", exact=True).click()
    expect(page.locator("#conflicts")).to_contain_text("Chưa lưu gì.")
    expect(page.get_by_label("Tên cuộc họp")).to_have_value("Tập huấn phần mềm một cửa")
    page.screenshot(path=artifact("web-booking-conflict.png"), full_page=True)
    page.get_by_label("Giờ bắt đầu").fill("16:00")
    page.get_by_role("button", name="Đặt lịch", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Đã lưu chuỗi cuộc họp.")


def no_sideways_scrolling(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_web_pages_fit_an_office_screen_and_a_phone(browser: Browser, website: WebSite) -> None:
    for viewport, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page = open_page(browser, website, viewport)
        sign_in(page)
        for path in ("/calendar?view=week", "/calendar?view=month", "/bookings/new"):
            page.goto(path)
            assert no_sideways_scrolling(page), (name, path)
        page.goto("/calendar?view=week")
        page.screenshot(path=artifact(f"web-calendar-{name}.png"), full_page=True)
        page.context.close()


def test_web_reports_show_the_ratio_against_targets(page: Page, website: WebSite) -> None:
    """A review held last week on the bridge (the chair and a commune sent and received media)
    appears in the report's chart and table, and in attendance."""
    start = utcnow() - timedelta(days=7)
    with website.database.session() as session:
        series = meeting_service.create(
            session=session,
            series_in={
                "title": "Tổng kết năm", "kind": "tong_ket", "mode": "online",
                "rrule": "FREQ=DAILY;COUNT=1", "dtstart": start.isoformat(timespec="minutes"),
                "duration_min": 60, "chair_site_id": website.sites["hq"],
                "site_ids": [website.sites["c0"]], "skip_holidays": False,
            },
            settings=website.settings.meetings, now=start - timedelta(days=1),
        )  # fmt: skip
        occurrence = series.occurrences[0]
        events = []
        for site in ("hq", "c0"):
            for minutes, kind in [(0, "joined"), *((m, "stats") for m in range(5, 60, 5))]:
                stats = PeerStats(packets=minutes * 100, interval_s=300)
                events.append(
                    SfuEvent(
                        id=uuid.uuid4().hex,
                        type=kind,
                        node_id="n",
                        at=occurrence.start_at + timedelta(minutes=minutes),
                        room=room_name(occurrence.id),
                        occurrence_id=occurrence.id,
                        site_id=website.sites[site],
                        peer_id=f"{site}-i",
                        direction="ingest",
                        stats=stats if kind == "stats" else None,
                    )
                )
        event_service.store_events(session=session, events=events)
        session.commit()
    sign_in(page)
    page.get_by_role("link", name="Báo cáo").click()
    expect(page.get_by_role("heading", name="Báo cáo: Tỷ lệ cuộc họp trực tuyến")).to_be_visible()
    expect(page.locator("svg.chart")).to_have_count(3)
    page.get_by_label("Từ ngày").fill((start - timedelta(days=1)).date().isoformat())
    page.get_by_label("Nhóm").select_option(label="Theo loại cuộc họp")
    page.get_by_role("button", name="Xem").click()
    expect(page.locator(".target-card").first).to_contain_text("Đạt")
    expect(page.get_by_role("rowheader", name="Tổng kết")).to_be_visible()
    assert no_sideways_scrolling(page)
    page.screenshot(path=artifact("web-report-online-ratio.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="XLSX").click()
    assert download.value.suggested_filename.endswith(".xlsx")
    page.get_by_role("navigation", name="Báo cáo").get_by_role("link", name="Điểm danh").click()
    expect(page.get_by_role("rowheader", name="Hội trường UBND Xã An Bình")).to_be_visible()
    page.screenshot(path=artifact("web-report-attendance.png"), full_page=True)


def test_web_language_switch_to_english_and_back(page: Page) -> None:
    sign_in(page)
    page.goto("/calendar?view=month")
    page.get_by_role("link", name="English").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Meeting calendar")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/calendar\?view=month"))
    assert page.evaluate("document.documentElement.lang") == "en"
    expect(page.get_by_role("link", name="Month", exact=True)).to_be_visible()
    page.screenshot(path=artifact("web-calendar-english.png"), full_page=True)
    page.get_by_role("link", name="Tiếng Việt").click()
    expect(page.get_by_role("heading", name="Lịch họp", exact=True)).to_be_visible()
