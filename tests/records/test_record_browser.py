"""The secretariat builds a meeting's record in headless Chromium, through the forms only:
the invitation, two agenda items, a PDF for the second, the conclusions with a task; the
meeting's page then shows the whole record. And a series' own invitation and agenda, which its
meeting then shows."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.meetings.models import Occurrence
from confbridge.settings import Settings
from confbridge.sites.models import Site
from tests.support.browsers import DESKTOP, artifact, skip_without_chromium, sync_chromium
from tests.support.factories import PASSWORD, create_user, open_occurrence
from tests.support.pdfs import multi_page_pdf
from tests.support.servers import ServerThread

skip_without_chromium()

TIMEOUT_MS = 10_000


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_chromium() as chromium:
        yield chromium


@pytest.fixture
def secretary_page(
    app: Any,
    database: Database,
    settings: Settings,
    sites: dict[str, Site],
    serve: Callable[..., ServerThread],
    browser: Browser,
) -> Iterator[tuple[Page, int]]:
    """A secretary signed in (on a real server) and a meeting on now inviting p1."""
    occurrence_id, _tokens = open_occurrence(database, settings, sites, invited=("p1",))
    create_user(database, "thuky", Role.secretariat)
    server = serve(app)
    context = browser.new_context(viewport=DESKTOP, base_url=server.url, locale="vi-VN")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/sign-in")
    page.get_by_label("Tên đăng nhập").fill("thuky")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name="Lịch họp", exact=True)).to_be_visible()
    try:
        yield page, occurrence_id
    except BaseException:
        page.screenshot(path=artifact("record-forms-failed.png"), full_page=True)
        raise
    finally:
        context.close()
    assert errors == []


def _add_item(page: Page, title: str, minutes: str, presenter: str = "", site: str = "") -> None:
    page.locator("#new-item-title").fill(title)
    page.locator("#new-item-presenter").fill(presenter)
    if site:
        page.locator("#new-item-site").select_option(label=site)
    page.locator("#new-item-minutes").fill(minutes)
    page.get_by_role("button", name="Thêm nội dung").click()
    expect(page.locator("#saved")).to_have_text("Đã lưu chương trình họp.")


def test_record_browser_secretariat_builds_the_record_through_the_forms(
    secretary_page: tuple[Page, int], sites: dict[str, Site]
) -> None:
    page, occurrence_id = secretary_page
    page.goto(f"/occurrences/{occurrence_id}")
    page.get_by_role("link", name="Soạn hồ sơ cuộc họp").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Hồ sơ cuộc họp")

    page.get_by_label("Số giấy mời").fill("125/GM-UBND")
    page.get_by_label("Ngày giấy mời").fill("2026-01-05")
    page.get_by_label("Chức vụ người ký").first.fill("CHỦ TỊCH")
    page.get_by_label("Họ tên người ký").first.fill("Nguyễn Văn Hạnh")
    page.locator("#summary").fill("Giao ban kinh tế - xã hội tháng 1.")
    page.locator("#attendee-site-0").select_option(label=sites["p1"].name)
    page.locator("#attendee-roles-0").fill("Chủ tịch UBND phường")
    page.get_by_role("button", name="Lưu giấy mời").click()
    expect(page.locator("#saved")).to_have_text("Đã lưu giấy mời.")

    _add_item(page, "Khai mạc", "5")
    _add_item(page, "Báo cáo thu ngân sách", "20", "Sở Tài chính", sites["p1"].name)
    expect(page.locator(".agenda-edit > li")).to_have_count(2)

    # a file that is not a document is refused beside the form; then the PDF goes in
    page.locator("#upload-file").set_input_files(
        files=[{"name": "ghi-chu.pdf", "mimeType": "application/pdf", "buffer": b"ghi chu"}]
    )
    page.get_by_role("button", name="Tải lên").click()
    expect(page.locator("#upload-error")).to_contain_text("Tệp không phải tài liệu PDF")
    page.locator("#upload-file").set_input_files(
        files=[{"name": "Báo cáo.pdf", "mimeType": "application/pdf", "buffer": multi_page_pdf(3)}]
    )
    page.locator("#upload-item").select_option(label="2. Báo cáo thu ngân sách")
    page.get_by_role("button", name="Tải lên").click()
    expect(page.locator("#saved")).to_have_text("Đã thêm tài liệu.")
    expect(page.locator("#document-list")).to_contain_text("2. Báo cáo thu ngân sách")

    page.locator("#c-text").fill("Thu ngân sách đạt kế hoạch.")
    page.locator("#task-content-0").fill("Rà soát nguồn thu")
    page.locator("#task-unit-0").fill("Sở Tài chính")
    page.locator("#task-deadline-0").fill("2026-01-31")
    page.get_by_role("button", name="Lưu kết luận").click()
    expect(page.locator("#saved")).to_have_text("Đã lưu kết luận.")
    page.screenshot(path=artifact("record-forms.png"), full_page=True)

    page.get_by_role("link", name="Quay lại cuộc họp").click()
    record = page.locator("#record")
    for text in (
        "125/GM-UBND",
        "CHỦ TỊCH Nguyễn Văn Hạnh",
        "Chủ tịch UBND phường",
        "Báo cáo thu ngân sách",
        "Sở Tài chính",
        "Báo cáo.pdf",
        "Thu ngân sách đạt kế hoạch.",
        "Rà soát nguồn thu",
        "31/01/2026",
    ):
        expect(record).to_contain_text(text)
    expect(page.get_by_role("heading", name="Điểm danh")).to_be_visible()
    links = [
        page.get_by_role("link", name="PDF").first.get_attribute("href"),
        page.locator("#record a[href$='conclusions.docx']").get_attribute("href"),
    ]
    assert links == [
        f"/occurrences/{occurrence_id}/invitation.pdf",
        f"/occurrences/{occurrence_id}/conclusions.docx",
    ]
    page.screenshot(path=artifact("record-occurrence-page.png"), full_page=True)


def test_record_browser_secretariat_sets_the_series_invitation_and_agenda(
    secretary_page: tuple[Page, int], database: Database
) -> None:
    page, occurrence_id = secretary_page
    with database.session() as session:
        occurrence = session.get(Occurrence, occurrence_id)
        assert occurrence is not None
        series_id = occurrence.series_id
    page.goto(f"/series/{series_id}/edit")
    page.get_by_role("link", name="Giấy mời và chương trình").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(
        "Giấy mời và chương trình chung của chuỗi cuộc họp"
    )
    page.get_by_label("Số giấy mời").fill("3/GM-UBND")
    page.locator("#summary").fill("Giao ban hằng tuần.")
    page.get_by_role("button", name="Lưu giấy mời").click()
    expect(page.locator("#saved")).to_have_text("Đã lưu giấy mời.")
    _add_item(page, "Khai mạc", "5")
    _add_item(page, "Thảo luận", "30")
    page.get_by_role("button", name="Chuyển lên: Thảo luận").click()
    expect(page.locator("#saved")).to_have_text("Đã lưu chương trình họp.")
    titles = page.locator(".agenda-edit > li input[name=title]")
    expect(titles.nth(0)).to_have_value("Thảo luận")
    expect(titles.nth(1)).to_have_value("Khai mạc")
    page.screenshot(path=artifact("record-series-forms.png"), full_page=True)

    page.goto(f"/occurrences/{occurrence_id}")
    record = page.locator("#record")
    expect(record).to_contain_text("3/GM-UBND")
    expect(record.locator("li[data-item-id]")).to_have_text(
        [re.compile("^Thảo luận"), re.compile("^Khai mạc")]
    )
