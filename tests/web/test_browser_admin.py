"""The administration pages in Chromium: a province's administrator builds a ward (unit, its
hall, a user) and the ward's user sees only its ward; the root administrator imports a
province; a terminal is paired and revoked; an attendance correction reaches the audit log.
One server for the module."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from confbridge.auth import service as auth_service
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.timeutil import utcnow
from tests.support.browsers import DESKTOP, artifact, skip_without_chromium, sync_chromium
from tests.support.database import empty_tables
from tests.support.factories import PASSWORD, book_occurrence, make_settings, province_sites
from tests.support.scopes import TwoProvinces, make_two_provinces
from tests.support.servers import ServerThread

skip_without_chromium()

TIMEOUT_MS = 10_000
NEW_PASSWORD = "mat-khau-moi-cua-phuong"


@dataclass
class WebSite:
    url: str
    world: TwoProvinces
    ended_occurrence_id: int


@pytest.fixture(scope="module")
def website(
    migrated_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebSite]:
    settings = make_settings(
        migrated_database.settings.database_url or "", tmp_path_factory.mktemp("admin")
    )
    with migrated_database.session() as session:
        world = make_two_provinces(session)
        for username, unit_id in (("qt_tinh", world.units["a"]), ("goc", None)):
            auth_service.create(
                session=session,
                username=username,
                password=PASSWORD,
                memberships=[auth_service.MembershipIn(unit_id=unit_id, role=Role.admin)],
            )
        session.commit()
        sites = province_sites(session)
    ended = book_occurrence(
        migrated_database,
        settings,
        sites,
        utcnow() - timedelta(hours=3),
        invited=("p1", "p2"),
        record_past=True,
    )
    server = ServerThread(create_app(settings, database=migrated_database)).start()
    try:
        yield WebSite(server.url, world, ended)
    finally:
        server.stop()
        empty_tables(migrated_database)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_chromium() as chromium:
        yield chromium


def _new_page(browser: Browser, website: WebSite) -> Page:
    context = browser.new_context(viewport=DESKTOP, base_url=website.url, locale="vi-VN")
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


@pytest.fixture
def page(browser: Browser, website: WebSite) -> Iterator[Page]:
    page = _new_page(browser, website)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert errors == []
    page.context.close()


def sign_in(page: Page, username: str, path: str, password: str = PASSWORD) -> None:
    page.goto(path)
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(password)
    page.get_by_role("button", name="Đăng nhập").click()


def test_browser_admin_province_builds_a_ward_whose_user_sees_only_it(
    page: Page, browser: Browser, website: WebSite
) -> None:
    """A province's administrator adds a ward, renames it, adds a hall and moves it there,
    adds the ward's secretary; the secretary sees the ward alone, other wards are not found."""
    world = website.world
    sign_in(page, "qt_tinh", "/admin/units")
    expect(page.locator("h1")).to_have_text("Đơn vị và điểm cầu")
    new_unit = page.locator("#new-unit")
    new_unit.get_by_label("Tên", exact=True).fill("Phường Mới")
    new_unit.get_by_label("Loại đơn vị").select_option("ward")
    new_unit.get_by_label("Đơn vị cấp trên").select_option(str(world.units["a"]))
    new_unit.get_by_role("button", name="Tạo").click()
    expect(page).to_have_url(re.compile(r"/admin/units/\d+\?saved=1$"))
    ward_id = int(re.findall(r"/admin/units/(\d+)", page.url)[0])
    edit = page.locator("#edit-unit")
    edit.get_by_label("Tên", exact=True).fill("Phường Mới Đổi Tên")
    edit.get_by_role("button", name="Lưu").click()
    expect(page.locator("h1")).to_have_text("Phường Mới Đổi Tên")
    # a hall added to the province, then moved from the tree to the new ward
    page.goto("/admin/units")
    new_site = page.locator("#new-site")
    new_site.get_by_label("Tên", exact=True).fill("Hội trường Phường Mới")
    new_site.get_by_label("Đơn vị", exact=True).select_option(str(world.units["a"]))
    new_site.get_by_role("button", name="Tạo").click()
    expect(page).to_have_url(re.compile(rf"/admin/units/{world.units['a']}\?saved=1$"))
    page.goto("/admin/units")
    row = page.locator(".site-row", has_text="Hội trường Phường Mới")
    row.get_by_label("Chuyển sang").select_option(str(ward_id))
    row.get_by_role("button", name="Chuyển").click()
    expect(page).to_have_url(re.compile(rf"/admin/units/{ward_id}\?saved=1$"))
    expect(page.locator("#unit-sites")).to_contain_text("Hội trường Phường Mới")
    page.screenshot(path=artifact("admin-ward.png"))
    # the ward's secretary, with a one-time password
    page.goto("/admin/users")
    form = page.locator("#new-user")
    form.get_by_label("Tên đăng nhập").fill("thuky_phuong_moi")
    form.get_by_label("Đơn vị", exact=True).select_option(str(ward_id))
    form.get_by_label("Vai trò").select_option("secretariat")
    form.get_by_role("button", name="Tạo").click()
    one_time = page.locator("#one-time-password code").inner_text()
    assert len(one_time) >= 12
    ward_page = _new_page(browser, website)
    sign_in(ward_page, "thuky_phuong_moi", "/admin/units", one_time)
    expect(ward_page).to_have_url(re.compile(r"/account/password"))
    ward_page.locator("#current-password").fill(one_time)
    ward_page.locator("#new-password").fill(NEW_PASSWORD)
    ward_page.locator("#new-password-again").fill(NEW_PASSWORD)
    ward_page.get_by_role("button", name="Đổi mật khẩu").click()
    ward_page.goto("/admin/units")
    tree = ward_page.locator("#unit-tree tbody tr")
    expect(tree).to_have_count(1)
    expect(tree).to_contain_text("Phường Mới Đổi Tên")
    expect(tree).to_contain_text("Hội trường Phường Mới")
    answer = ward_page.goto(f"/admin/units/{world.units['p1']}")
    assert answer is not None and answer.status == 404
    answer = ward_page.goto(f"/admin/sites/{world.sites['p2']}")
    assert answer is not None and answer.status == 404
    ward_page.context.close()


def test_browser_admin_root_imports_a_province(page: Page, website: WebSite) -> None:
    sign_in(page, "goc", "/admin/units")
    page.get_by_label("Tỉnh (tên hoặc mã)").fill("Quảng Ninh")
    page.get_by_role("button", name="Nhập", exact=True).click()
    expect(page.locator("#imported")).to_contain_text("Quảng Ninh")
    expect(page.locator("#imported")).to_contain_text("55")
    expect(page.locator("#unit-tree")).to_contain_text("Phường Hồng Gai")
    page.screenshot(path=artifact("admin-import.png"))


def test_browser_admin_terminal_is_paired_with_a_code_then_revoked(
    page: Page, website: WebSite
) -> None:
    sign_in(page, "qt_tinh", "/admin/terminals")
    form = page.locator("#new-terminal")
    form.get_by_label("Điểm cầu").select_option(str(website.world.sites["p1"]))
    form.get_by_label("Tên", exact=True).fill("Máy hội trường Phường Một")
    form.get_by_role("button", name="Tạo").click()
    code = page.locator("#pairing-code code")
    expect(code).to_have_text(re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{4}$"))
    row = page.locator("#terminals tbody tr", has_text="Máy hội trường Phường Một")
    expect(row.locator(".terminal-status")).not_to_have_text("đã thu hồi")
    row.get_by_role("button", name="Thu hồi").click()
    expect(page).to_have_url(re.compile(r"/admin/terminals\?saved=1$"))
    expect(row.locator(".terminal-status")).to_have_text("đã thu hồi")
    expect(page.locator("#pairing-code")).to_have_count(0)  # shown once only


def test_browser_admin_attendance_correction_reaches_the_audit_log(
    page: Page, website: WebSite
) -> None:
    occurrence = f"/occurrences/{website.ended_occurrence_id}"
    sign_in(page, "qt_tinh", occurrence)
    form = page.locator("#correct-attendance")
    form.get_by_label("Điểm cầu").select_option(str(website.world.sites["p2"]))
    form.get_by_label("Điểm danh").select_option("present")
    form.get_by_label("Lý do").fill("Mất mạng, họp qua điện thoại")
    form.get_by_role("button", name="Điều chỉnh").click()
    expect(page.locator(".attendance")).to_contain_text("Mất mạng, họp qua điện thoại")
    page.goto("/admin/audit?action=attendance_corrected")
    audit = page.locator("#audit tbody tr")
    expect(audit).to_have_count(1)
    expect(audit).to_contain_text("user:qt_tinh")
    expect(audit).to_contain_text("status: absent → present")
    expect(audit).to_contain_text("Mất mạng, họp qua điện thoại")
    page.screenshot(path=artifact("admin-audit-correction.png"))
