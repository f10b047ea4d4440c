"""A hall's kiosk in headless Chromium shows the agenda item the chair marks current."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser

from confbridge.sites.models import Site
from tests.support.browsers import artifact, async_chromium, skip_without_chromium
from tests.support.polling import eventually
from tests.support.servers import Stack

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
