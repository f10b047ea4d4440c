"""The pages in Chromium when things go wrong: a sign-in that ends while a form is being
filled, while the IT page refreshes, while the console acts; an unknown address; the IT page
on a phone. One server for the module."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from confbridge.alerts import service as alert_service
from confbridge.alerts.service import AlertIn, AlertKind, Severity
from confbridge.auth.models import Role
from confbridge.bridge.models import SfuEventRecord
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.timeutil import utcnow
from tests.support.browsers import DESKTOP, PHONE, artifact, skip_without_chromium, sync_chromium
from tests.support.database import empty_tables
from tests.support.factories import (
    PASSWORD,
    create_user,
    make_commune_province,
    make_settings,
    open_occurrence,
)
from tests.support.servers import ServerThread

skip_without_chromium()

TIMEOUT_MS = 10_000
EXPIRED = "Phiên đăng nhập đã hết hạn. Hãy đăng nhập lại để tiếp tục."


@dataclass
class WebSite:
    url: str
    occurrence_id: int
    alert_raised_at: datetime


@pytest.fixture(scope="module")
def website(
    migrated_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebSite]:
    settings = make_settings(
        migrated_database.settings.database_url or "", tmp_path_factory.mktemp("expiry")
    )
    with migrated_database.session() as session:
        sites = make_commune_province(session)
    create_user(migrated_database, "thuky", Role.secretariat)
    create_user(migrated_database, "kythuat", Role.it)
    occurrence_id, _tokens = open_occurrence(
        migrated_database, settings, sites, invited=("c0", "c1")
    )
    raised_at = utcnow().replace(microsecond=0) - timedelta(minutes=7)
    with migrated_database.session() as session:
        alert_service.raise_(
            session=session,
            alert_in=AlertIn(
                kind=AlertKind.terminal_offline,
                severity=Severity.warning,
                subject="occurrence:x/site:y",
                message="Điểm cầu Hội trường UBND Xã Một chưa có thiết bị đầu cuối",
                message_en="Site has no terminal",
                occurrence_id=occurrence_id,
                site_id=sites["c0"],
                details={"no_terminal": True},
            ),
            now=raised_at,
            deliver=False,
        )
        # link reports: a hall with a fair link, and the chair console's own viewer ("site" 0)
        for site_id, peer, stats in (
            (sites["c0"], "view-c0", {"rtt_ms": 180.0, "loss_ratio": 0.0}),
            (sites["c1"], "view-c1", {"rtt_ms": 3.0, "loss_ratio": 0.0, "layer": "small"}),
            (0, "console", {"rtt_ms": 2.0, "loss_ratio": 0.0}),
        ):
            session.add(
                SfuEventRecord(
                    id=uuid.uuid4().hex,
                    type="stats",
                    at=utcnow(),
                    node_id="local-0",
                    room=f"occurrence-{occurrence_id}",
                    occurrence_id=occurrence_id,
                    site_id=site_id,
                    peer_id=peer,
                    direction="egress",
                    payload={"stats": stats},
                )
            )
        session.commit()
    server = ServerThread(create_app(settings, database=migrated_database)).start()
    try:
        yield WebSite(server.url, occurrence_id, raised_at)
    finally:
        server.stop()
        empty_tables(migrated_database)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser, website: WebSite) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP, base_url=website.url, locale="vi-VN")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert errors == []
    context.close()


def sign_in(page: Page, username: str, path: str) -> None:
    page.goto(path)
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))


def end_session(page: Page, website: WebSite) -> None:
    """The session cookie stays but no longer holds, as after ten hours or a sign-out elsewhere."""
    page.context.add_cookies([{"name": "cb_session", "value": "ended.x.y", "url": website.url}])


def test_expiry_booking_form_is_kept_through_signing_in_again(page: Page, website: WebSite) -> None:
    sign_in(page, "thuky", "/bookings/new")
    page.get_by_label("Tên cuộc họp").fill("Họp chuyên đề chuyển đổi số")
    page.get_by_label("Lặp lại").fill("hằng tuần vào thứ Ba")
    page.get_by_label("Thời lượng (phút)").fill("90")
    end_session(page, website)
    # the live clash check meets the ended session: the notice, not the sign-in page pasted
    page.get_by_label("Lặp lại").fill("hằng tuần vào thứ Tư")
    notice = page.locator("#session-expired")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(EXPIRED)
    expect(page.locator("#check-panel form[action='/sign-in']")).to_have_count(0)
    page.screenshot(path=artifact("expiry-booking-notice.png"))
    notice.get_by_role("link", name="Đăng nhập lại").click()
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Fbookings%2Fnew&expired=1"))
    expect(page.locator("#sign-in-notice")).to_have_text(EXPIRED)
    page.get_by_label("Tên đăng nhập").fill("thuky")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page).to_have_url(re.compile(r"/bookings/new$"))
    expect(page.get_by_label("Tên cuộc họp")).to_have_value("Họp chuyên đề chuyển đổi số")
    expect(page.get_by_label("Lặp lại")).to_have_value("hằng tuần vào thứ Tư")
    expect(page.get_by_label("Thời lượng (phút)")).to_have_value("90")
    expect(page.locator("#draft-restored")).to_be_visible()
    # a fresh start empties it, and it stays empty
    page.locator("#draft-discard").click()
    expect(page.get_by_label("Tên cuộc họp")).to_have_value("")


def test_expiry_form_sent_after_the_end_comes_back_filled(page: Page, website: WebSite) -> None:
    sign_in(page, "thuky", "/bookings/new")
    page.get_by_label("Tên cuộc họp").fill("Giao ban quý")
    end_session(page, website)
    page.get_by_role("button", name="Đặt lịch", exact=True).click()
    expect(page.locator("#sign-in-notice")).to_have_text(EXPIRED)
    page.get_by_label("Tên đăng nhập").fill("thuky")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page).to_have_url(re.compile(r"/bookings/new$"))
    expect(page.get_by_label("Tên cuộc họp")).to_have_value("Giao ban quý")


def test_expiry_it_page_says_so_instead_of_pasting_the_sign_in_page(
    page: Page, website: WebSite
) -> None:
    sign_in(page, "kythuat", "/it")
    end_session(page, website)
    expect(page.locator("#session-expired")).to_be_visible(timeout=15_000)
    expect(page.locator("#dashboard-body form[action='/sign-in']")).to_have_count(0)
    expect(page.locator("body")).to_have_attribute("data-session", "expired")


def test_expiry_live_page_says_so_when_its_stream_cannot_resume(
    page: Page, website: WebSite
) -> None:
    """The occurrence page's event stream ends every 30 s; resuming it without a sign-in
    fails, and the page asks whether the session holds rather than "reconnecting" forever."""
    sign_in(page, "thuky", f"/occurrences/{website.occurrence_id}")
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    end_session(page, website)
    expect(page.locator("#session-expired")).to_be_visible(timeout=45_000)
    expect(page.locator("body")).to_have_attribute("data-live", "signed-out")


def test_expiry_console_action_says_so(page: Page, website: WebSite) -> None:
    sign_in(page, "thuky", f"/occurrences/{website.occurrence_id}/console")
    # no media server in this test: the programme says so in Vietnamese
    expect(page.locator("#programme-status")).to_contain_text("máy chủ truyền hình")
    end_session(page, website)
    page.get_by_role("button", name="Tắt tiếng tất cả").click()
    expect(page.locator("#session-expired")).to_be_visible()
    expect(page.locator("#console-message")).to_be_hidden()


def test_expiry_unknown_address_is_a_vietnamese_page(page: Page, website: WebSite) -> None:
    response = page.goto("/khong-co-trang-nay")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_have_text("Trang này không tồn tại.")
    expect(page.locator("html")).to_have_attribute("lang", "vi")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_it_page_says_what_to_do_in_local_time(
    browser: Browser, website: WebSite, viewport: dict[str, int]
) -> None:
    context = browser.new_context(viewport=viewport, base_url=website.url, locale="vi-VN")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        sign_in(page, "kythuat", "/it")
        row = page.locator("tr[data-alert='terminal_offline']")
        local = website.alert_raised_at.astimezone(UTC) + timedelta(hours=7)  # Asia/Ho_Chi_Minh
        expect(row.locator("time")).to_contain_text(f"{local:%H:%M}")
        expect(row.locator(".remedy-text")).to_contain_text("confbridge terminals create")
        expect(row.get_by_role("link", name="Điểm cầu")).to_have_attribute(
            "href", re.compile(r"^/sites/\d+$")
        )
        expect(row.get_by_role("link", name="Cuộc họp")).to_have_attribute(
            "href", f"/occurrences/{website.occurrence_id}"
        )
        expect(page.locator("#terminals-online")).to_be_visible()
        # the links as the console grades them; the console's own viewer is not a site
        expect(page.locator("tr[data-site]")).to_have_count(2)
        expect(page.locator("tr[data-site='0']")).to_have_count(0)
        expect(page.locator("td[data-quality='fair']")).to_have_text("Trung bình")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow} px wider than the screen"
        page.screenshot(path=artifact(f"it-page-{viewport['width']}.png"), full_page=True)
    finally:
        context.close()


def test_booking_does_not_repeat_choice_and_one_date_format(page: Page, website: WebSite) -> None:
    """The 'does not repeat' choice fills the words; dates on the pages read dd/mm/yyyy."""
    sign_in(page, "thuky", "/bookings/new")
    words = page.get_by_label("Lặp lại")
    words.fill("hằng tuần vào thứ Hai")
    page.get_by_label("Chỉ họp một lần, không lặp").check()
    expect(words).to_have_value("không lặp lại")
    expect(words).to_have_attribute("readonly", "")
    page.get_by_label("Chỉ họp một lần, không lặp").uncheck()
    expect(words).to_have_value("hằng tuần vào thứ Hai")
    expect(page.get_by_label("Bỏ qua thêm các ngày")).to_have_attribute(
        "placeholder", "30/04/2026, 02/09/2026"
    )
    # no short or ISO dates in what the occurrence page and the IT page write
    for path in (f"/occurrences/{website.occurrence_id}", "/calendar"):
        page.goto(path)
        text = page.locator("main").inner_text()
        assert not re.search(r"\b\d{1,2}/\d{1,2}/\d{2}\b(?!\d)", text), path
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), path


def test_occurrence_change_form_is_near_the_top(page: Page, website: WebSite) -> None:
    """Moving or cancelling one meeting is in the first screen, not under the tables."""
    sign_in(page, "thuky", f"/occurrences/{website.occurrence_id}")
    form = page.locator("#occurrence-form")
    expect(form).to_be_visible()
    box = form.bounding_box()
    assert box is not None and box["y"] + box["height"] <= DESKTOP["height"], box
    sites_table = page.locator("#sites-table").bounding_box()
    assert sites_table is not None and sites_table["y"] > box["y"]
