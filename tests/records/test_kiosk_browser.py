"""A hall's kiosk in headless Chromium shows the agenda item the chair marks current, and the
current item's document page by page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from confbridge.db import Database
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from tests.records.test_documents import _docx
from tests.support.browsers import artifact, async_chromium, skip_without_chromium
from tests.support.factories import book_occurrence
from tests.support.pdfs import A4_MM, drawn_size, multi_page_pdf
from tests.support.polling import eventually
from tests.support.servers import ServerThread, Stack

skip_without_chromium()

BAND_JS = """() => ({
  state: window.kiosk.state,
  text: document.getElementById("agenda-item").textContent,
  shown: !document.getElementById("agenda-item").hidden,
})"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_chromium() as chromium:
        yield chromium


async def test_kiosk_shows_the_current_agenda_item(
    stack: Stack, sites: dict[str, Site], it_user: dict[str, str], browser: Browser
) -> None:
    """Kiosk of p1 in the meeting; the secretariat marks item 2 current, then item 1, then none."""
    base = f"{stack.control}/api/v1/occurrences/{stack.occurrence_id}"
    async with httpx.AsyncClient(timeout=10, headers=stack.secretariat) as http:
        created = await http.post(
            f"{stack.control}/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it_user
        )
        pairing_url = created.json()["pairing"]["pairing_url"]
        agenda = await http.patch(
            f"{base}/invitation",
            json={
                "agenda": [
                    {"title": "Khai mạc"},
                    {"title": "Báo cáo thu ngân sách", "presenter": "Sở Tài chính"},
                ]
            },
        )
        items = agenda.json()["agenda"]
        page = await browser.new_page()
        try:
            await page.goto(pairing_url)

            async def band(expected: str) -> dict[str, object] | None:
                seen = await page.evaluate(BAND_JS)
                ok = seen["state"] == "in_meeting" and seen["text"] == expected
                return seen if ok and seen["shown"] == bool(expected) else None

            marked = await http.put(f"{base}/current-item", json={"agenda_item_id": items[1]["id"]})
            assert marked.status_code == 200, marked.text
            await eventually(
                lambda: band("2. Báo cáo thu ngân sách – Sở Tài chính"), 40, "item 2 on the kiosk"
            )
            await http.put(f"{base}/current-item", json={"agenda_item_id": items[0]["id"]})
            await eventually(lambda: band("1. Khai mạc"), 20, "item 1 on the kiosk")
            await http.put(f"{base}/current-item", json={"agenda_item_id": None})
            await eventually(lambda: band(""), 20, "no item on the kiosk")
        except BaseException:
            await page.screenshot(path=artifact("kiosk-agenda-item.png"))
            raise
        finally:
            await page.close()


PAGE_JS = """() => {
  const image = document.getElementById("document-page");
  return {
    page: image.dataset.page || null,
    width: image.naturalWidth,
    height: image.naturalHeight,
    complete: image.complete,
    label: document.getElementById("page-number").textContent,
    viewer: !document.getElementById("document-viewer").hidden,
  };
}"""


async def test_kiosk_opens_the_current_items_document_pages(
    stack: Stack, sites: dict[str, Site], it_user: dict[str, str], browser: Browser
) -> None:
    """Kiosk of p1 in the meeting; item 2 is current and has a 3-page PDF: "Xem tài liệu"
    shows its page 1 at its drawn size, then page 2 (sideways), and the list of documents."""
    base = f"{stack.control}/api/v1/occurrences/{stack.occurrence_id}"
    async with httpx.AsyncClient(timeout=10, headers=stack.secretariat) as http:
        created = await http.post(
            f"{stack.control}/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it_user
        )
        pairing_url = created.json()["pairing"]["pairing_url"]
        items = (
            await http.patch(
                f"{base}/invitation",
                json={"agenda": [{"title": "Khai mạc"}, {"title": "Báo cáo thu ngân sách"}]},
            )
        ).json()["agenda"]
        uploaded = await http.post(
            f"{base}/documents",
            files={"file": ("Báo cáo.pdf", multi_page_pdf(3), "application/pdf")},
            data={"agenda_item_id": str(items[1]["id"])},
        )
        assert uploaded.status_code == 201, uploaded.text
        await http.post(
            f"{base}/documents", files={"file": ("Chương trình.pdf", multi_page_pdf(1))}
        )
        marked = await http.put(f"{base}/current-item", json={"agenda_item_id": items[1]["id"]})
        assert marked.status_code == 200, marked.text
        pages = await http.get(
            f"{stack.control}/api/v1/documents/{uploaded.json()['id']}/pages",
            headers={"Authorization": f"Bearer {stack.tokens['p1']}"},
        )
        sizes = [(p["width"], p["height"]) for p in pages.json()["pages"]]
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    try:
        await page.goto(pairing_url)

        async def band() -> dict[str, object] | None:
            seen = await page.evaluate(BAND_JS)
            return seen if seen["text"] == "2. Báo cáo thu ngân sách" else None

        await eventually(band, 40, "the current item on the kiosk")
        # one "Xem tài liệu" on the screen, the meeting's own: the idle screen's (the next
        # meeting's documents) is hidden from the moment the kiosk joins
        await page.get_by_role("button", name="Xem tài liệu").click()

        first = await eventually(lambda: _shown(page, 1), 20, "page 1 of the document")
        assert first["viewer"] and first["label"] == "Trang 1/3"
        assert (first["width"], first["height"]) == sizes[0]
        assert _close(sizes[0], drawn_size(*A4_MM))
        await page.screenshot(path=artifact("kiosk-document-page-1.png"))
        await page.keyboard.press("ArrowRight")
        second = await eventually(lambda: _shown(page, 2), 20, "page 2 of the document")
        assert second["label"] == "Trang 2/3"
        assert (second["width"], second["height"]) == sizes[1]
        assert second["width"] > second["height"]  # the landscape page
        await page.get_by_role("button", name="Danh sách tài liệu").click()
        listed = page.locator("#documents-list li")
        await listed.first.wait_for()
        texts = await listed.all_text_contents()
        assert texts[0].startswith("Báo cáo.pdf") and "đang thảo luận" in texts[0]
        assert any(t.startswith("Chương trình.pdf") for t in texts[1:])
        await page.get_by_role("button", name="Đóng").click()
        assert await page.locator("#documents-view").is_hidden()
    except BaseException:
        await page.screenshot(path=artifact("kiosk-documents.png"))
        raise
    finally:
        await page.close()


def _close(actual: tuple[int, int], expected: tuple[int, int]) -> bool:
    return all(abs(a - e) <= 1 for a, e in zip(actual, expected, strict=True))


async def test_kiosk_lists_the_coming_meetings_documents_before_it_starts(
    app: Any,
    database: Database,
    settings: Settings,
    sites: dict[str, Site],
    secretariat: dict[str, str],
    it_user: dict[str, str],
    serve: Callable[..., ServerThread],
    browser: Browser,
) -> None:
    """Kiosk of p1, idle, with a meeting tomorrow: "Xem tài liệu" beside it lists its
    documents (a DOCX said not to be shown here) and opens the PDF's first page."""
    tomorrow = utcnow().replace(second=0, microsecond=0) + timedelta(days=1)
    occurrence_id = book_occurrence(database, settings, sites, tomorrow)
    control = serve(app).url
    base = f"{control}/api/v1/occurrences/{occurrence_id}"
    async with httpx.AsyncClient(timeout=10, headers=secretariat) as http:
        for name, content in (("Đề cương.docx", _docx()), ("Báo cáo.pdf", multi_page_pdf(2))):
            uploaded = await http.post(f"{base}/documents", files={"file": (name, content)})
            assert uploaded.status_code == 201, uploaded.text
        created = await http.post(
            f"{control}/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it_user
        )
        pairing_url = created.json()["pairing"]["pairing_url"]
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    try:
        await page.goto(pairing_url)
        await page.get_by_role("button", name="Xem tài liệu").click(timeout=20_000)
        listed = page.locator("#documents-list li")
        await listed.nth(1).wait_for()
        texts = await listed.all_text_contents()
        assert texts[0].startswith("Đề cương.docx") and "chỉ xem được tệp PDF" in texts[0]
        assert texts[1] == "Báo cáo.pdf"
        assert await listed.nth(0).get_by_role("button").is_disabled()
        await listed.nth(1).get_by_role("button").click()
        first = await eventually(lambda: _shown(page, 1), 20, "page 1 of the document")
        assert first["label"] == "Trang 1/2"
        assert _close((first["width"], first["height"]), drawn_size(*A4_MM))
    except BaseException:
        await page.screenshot(path=artifact("kiosk-documents-idle.png"))
        raise
    finally:
        await page.close()


async def _shown(page: Any, number: int) -> dict[str, Any] | None:
    seen = await page.evaluate(PAGE_JS)
    ok = seen["page"] == str(number) and seen["complete"] and seen["width"]
    return seen if ok else None
