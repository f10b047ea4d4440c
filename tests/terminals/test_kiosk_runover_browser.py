"""A meeting that runs over, in headless Chromium against the whole stack: the chair console
extends it and the kiosk in the hall stays connected past the old end, then leaves at the new
end; the console ends a meeting now and the hall shows that it ended."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from confbridge.db import Database
from confbridge.sites.models import Site
from tests.support.browsers import DESKTOP, async_chromium, skip_without_chromium
from tests.support.factories import PASSWORD, move_occurrence, soon
from tests.support.peers import WhepViewer, WhipPublisher
from tests.support.polling import eventually
from tests.support.servers import NODE_SECRET, Stack
from tests.terminals.test_kiosk_browser import kiosk, publish_chair

skip_without_chromium()

TIMEOUT_MS = 15_000
READER = {"Authorization": f"Bearer {NODE_SECRET}"}  # reads the worker's /rooms
# The kiosk polls the floor (with the meeting's end) every 2 s and the agenda every 2 s here.
NOTICE_S = 6.0


@pytest.fixture
def stack_options() -> dict[str, Any]:
    # no time to run over: the halls leave at the end itself, so the test need not wait for it
    return {"settings": {"meetings": {"overrun_grace_min": 0}}}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_chromium() as chromium:
        yield chromium


async def kiosk_page(browser: Browser, stack: Stack, it_user: dict[str, str], site: Site) -> Page:
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{stack.control}/api/v1/terminals", json={"site_id": site.id}, headers=it_user
        )
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    await page.goto(created.json()["pairing"]["pairing_url"] + "&agenda_s=2")
    return page


async def console_page(browser: Browser, stack: Stack) -> Page:
    """The chair console of the stack's meeting, signed in as the secretariat (`vanphong`)."""
    context = await browser.new_context(viewport=DESKTOP, base_url=stack.control)
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    await page.goto("/sign-in")
    await page.get_by_label("Tên đăng nhập").fill("vanphong")
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_label("Mật khẩu").press("Enter")
    await expect(page.get_by_role("heading", name="Lịch họp", exact=True)).to_be_visible()
    await page.goto(f"/occurrences/{stack.occurrence_id}/console")
    return page


async def in_meeting(page: Page) -> dict[str, Any] | None:
    seen = await kiosk(page)
    return seen if seen["state"] == "in_meeting" else None


async def set_end(stack: Stack, end_at: datetime) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:
        response = await http.patch(
            f"/api/v1/occurrences/{stack.occurrence_id}",
            json={"end_at": end_at.isoformat()},
            headers=stack.secretariat,
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def worker_room(stack: Stack) -> dict[str, Any] | None:
    async with httpx.AsyncClient(timeout=10) as http:
        listed = await http.get(f"{stack.worker}/rooms", headers=READER)
    rooms = [r for r in listed.json()["rooms"] if r["occurrence_id"] == stack.occurrence_id]
    return rooms[0] if rooms else None


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_kiosk_stays_through_an_extension_and_leaves_at_the_new_end(
    stack: Stack,
    database: Database,
    sites: dict[str, Site],
    it_user: dict[str, str],
    browser: Browser,
    peers: list[WhipPublisher | WhepViewer],
) -> None:
    """The console's +15 min keeps the hall connected past the old end (no rejoin); the end
    moved to a near time through the API sends the hall away at that time."""
    move_occurrence(database, stack.occurrence_id, soon(-60))
    await publish_chair(stack, peers)
    hall = await kiosk_page(browser, stack, it_user, sites["p1"])
    await eventually(lambda: in_meeting(hall), 40, "the kiosk in the meeting")

    old_end = soon(20)
    await set_end(stack, old_end)  # the meeting was to end shortly
    console = await console_page(browser, stack)
    await console.get_by_role("button", name="Gia hạn +15 phút").click()
    await expect(console.locator("#meeting-end")).to_have_text(
        f"{(old_end + timedelta(minutes=15)).astimezone(_hanoi()):%H:%M}"
    )
    async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:
        occurrence = (
            await http.get(f"/api/v1/occurrences/{stack.occurrence_id}", headers=stack.secretariat)
        ).json()
    assert instant(occurrence["end_at"]) == old_end + timedelta(minutes=15)
    room = await worker_room(stack)
    assert room is not None and instant(room["ends_at"]) == old_end + timedelta(minutes=15)

    # past the old end: still in the meeting, on the same connection
    await eventually(
        lambda: _after(old_end + timedelta(seconds=NOTICE_S)), 40, "the old end to pass"
    )
    still = await kiosk(hall)
    assert still["state"] == "in_meeting" and still["joins"] == 1, still
    assert not [e for e in still["log"] if e["event"] in ("left", "lost")], still["log"]

    new_end = soon(12)
    await set_end(stack, new_end)

    async def ended() -> dict[str, Any] | None:
        seen = await kiosk(hall)
        return seen if seen["state"] == "ended" else None

    gone = await eventually(ended, 40, "the kiosk leaving at the new end")
    (left,) = [e for e in gone["log"] if e["event"] == "left"]
    left_at = instant(left["at"])
    assert new_end - timedelta(seconds=1) <= left_at <= new_end + timedelta(seconds=NOTICE_S)
    assert await hall.locator("#ended").is_visible()
    assert "Cuộc họp đã kết thúc" in (await hall.locator("#ended").text_content() or "")


async def test_console_ends_the_meeting_now_and_the_hall_shows_it(
    stack: Stack,
    database: Database,
    sites: dict[str, Site],
    it_user: dict[str, str],
    browser: Browser,
    peers: list[WhipPublisher | WhepViewer],
) -> None:
    """ "Kết thúc ngay" on the console: the room closes on the worker, the hall leaves and says
    the meeting ended, and joining is refused from then on."""
    move_occurrence(database, stack.occurrence_id, soon(-60))
    await publish_chair(stack, peers)
    hall = await kiosk_page(browser, stack, it_user, sites["p1"])
    await eventually(lambda: in_meeting(hall), 40, "the kiosk in the meeting")
    console = await console_page(browser, stack)
    console.on("dialog", lambda dialog: dialog.accept())
    await console.get_by_role("button", name="Kết thúc ngay").click()
    await expect(console.locator("#meeting-end-label")).to_have_text("Cuộc họp đã kết thúc.")

    async def ended() -> dict[str, Any] | None:
        seen = await kiosk(hall)
        return seen if seen["state"] == "ended" else None

    await eventually(ended, NOTICE_S + 4, "the hall told that the meeting ended")
    assert await worker_room(stack) is None  # closed at once, not at the old end
    async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:
        refused = await http.post(
            f"/api/v1/occurrences/{stack.occurrence_id}/join",
            headers={"Authorization": f"Bearer {stack.tokens['p2']}"},
        )
        occurrence = (
            await http.get(f"/api/v1/occurrences/{stack.occurrence_id}", headers=stack.secretariat)
        ).json()
    assert refused.status_code == 409 and "closed_at" in refused.json()
    assert occurrence["ended_at"] is not None


async def _after(moment: datetime) -> bool:
    return datetime.now(moment.tzinfo) >= moment


def _hanoi() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Ho_Chi_Minh")
