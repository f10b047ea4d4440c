"""The kiosk across a hall, in headless Chromium at 1920×1080: sizes read from 4 m, the
self-test only on request, the chair hall's screen while it holds the floor (never black), its
microphone switched off by the chair, and "the meeting has ended" after the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from confbridge.db import Database
from confbridge.meetings.models import Booking, Occurrence
from confbridge.sites.models import Site
from tests.support.browsers import artifact, async_chromium, skip_without_chromium
from tests.support.factories import move_occurrence, soon
from tests.support.polling import eventually
from tests.support.servers import Stack

skip_without_chromium()

FULL_HD = {"width": 1920, "height": 1080}
TITLE_MIN_PX, STATUS_MIN_PX = 40.0, 28.0

SIZES_JS = """(ids) => Object.fromEntries(ids.map((id) => {
  const element = document.getElementById(id);
  const style = getComputedStyle(element);
  const shown = style.display !== "none" && !element.closest("[hidden]");
  return [id, { size: parseFloat(style.fontSize), shown }];
}))"""
SCREEN_JS = """() => {
  const self = document.getElementById("self-view");
  const style = getComputedStyle(self);
  return {
    state: window.kiosk.state,
    speaking: document.body.dataset.speaking, muted: document.body.dataset.muted,
    picture: document.body.dataset.programmePicture,
    self_shown: style.display !== "none", self_width: self.getBoundingClientRect().width,
    self_video: self.videoWidth,
    mic_off: getComputedStyle(document.getElementById("mic-off")).display !== "none",
    on_air: getComputedStyle(document.getElementById("on-air")).display !== "none",
    ended: !document.getElementById("ended").hidden,
    ended_text: document.getElementById("ended").textContent,
  };
}"""


@pytest.fixture
def stack_options() -> dict[str, Any]:
    # no time to run over: the hall leaves at the end itself, so the test need not wait for it
    return {"settings": {"meetings": {"overrun_grace_min": 0}}}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_chromium() as chromium:
        yield chromium


async def _kiosk(browser: Browser, stack: Stack, site_id: int, it_user: dict[str, str]) -> Page:
    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(
            f"{stack.control}/api/v1/terminals", json={"site_id": site_id}, headers=it_user
        )
    context = await browser.new_context(viewport=FULL_HD)
    page = await context.new_page()
    await page.goto(created.json()["pairing"]["pairing_url"] + "&agenda_s=2")
    return page


async def _screen(page: Page) -> dict[str, Any]:
    return await page.evaluate(SCREEN_JS)


def _end_at(database: Database, occurrence_id: int, seconds: float) -> None:
    end_at = soon(seconds)
    with database.session() as session:
        occurrence = session.get(Occurrence, occurrence_id)
        assert occurrence is not None
        occurrence.end_at = end_at
        for booking in session.query(Booking).filter_by(occurrence_id=occurrence_id):
            booking.end_at = end_at
        session.commit()


async def test_kiosk_states_of_the_chair_hall_before_during_and_after(
    stack: Stack,
    database: Database,
    sites: dict[str, Site],
    it_user: dict[str, str],
    secretariat: dict[str, str],
    browser: Browser,
) -> None:
    """The chair hall's kiosk: before (readable sizes, no camera box), during (it speaks: its
    own picture, not black; muted: said in large letters), after (the meeting has ended)."""
    move_occurrence(database, stack.occurrence_id, soon(15))
    page = await _kiosk(browser, stack, sites["hq"].id, it_user)
    try:

        async def idle() -> dict[str, Any] | None:
            seen = await _screen(page)
            return seen if seen["state"] == "idle" else None

        await eventually(idle, 15, "the paired kiosk waiting")
        sizes = await page.evaluate(SIZES_JS, ["site", "next-title", "countdown", "status"])
        assert sizes["site"]["size"] >= TITLE_MIN_PX and sizes["next-title"]["size"] >= TITLE_MIN_PX
        assert sizes["countdown"]["size"] >= STATUS_MIN_PX
        assert sizes["status"]["size"] >= STATUS_MIN_PX
        # the self-test is a button until asked: no dark camera box on the screen
        assert (await page.evaluate(SIZES_JS, ["preview"]))["preview"]["shown"] is False
        await page.screenshot(path=artifact("kiosk-before.png"))

        async def speaking() -> dict[str, Any] | None:
            seen = await _screen(page)
            ok = seen["state"] == "in_meeting" and seen["speaking"] == "true"
            return seen if ok and seen["self_video"] > 0 else None

        # the chair hall holds the floor and nobody spoke before it: it sees itself, full screen
        seen = await eventually(speaking, 45, "the chair hall on air")
        assert seen["on_air"] and seen["picture"] == "off"
        assert seen["self_shown"] and seen["self_width"] == FULL_HD["width"]
        sizes = await page.evaluate(SIZES_JS, ["on-air", "speaker"])
        assert sizes["on-air"]["size"] >= STATUS_MIN_PX and sizes["speaker"]["size"] >= 28
        await page.screenshot(path=artifact("kiosk-chair-on-air.png"))

        # the chair console mutes the hall: its screen says so in large letters
        async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:
            muted = await http.post(
                f"/api/v1/occurrences/{stack.occurrence_id}/floor",
                json={"action": "mute", "site_id": sites["hq"].id},
                headers=secretariat,
            )
        assert muted.status_code == 200, muted.text

        async def mic_off() -> dict[str, Any] | None:
            seen = await _screen(page)
            return seen if seen["muted"] == "true" and seen["mic_off"] else None

        await eventually(mic_off, 10, "the muted state on the kiosk")
        assert (await page.evaluate(SIZES_JS, ["mic-off"]))["mic-off"]["size"] >= STATUS_MIN_PX
        await page.screenshot(path=artifact("kiosk-chair-muted.png"))

        # the meeting ends: the kiosk leaves and says so
        _end_at(database, stack.occurrence_id, 3)

        async def ended() -> dict[str, Any] | None:
            seen = await _screen(page)
            return seen if seen["state"] == "ended" and seen["ended"] else None

        seen = await eventually(ended, 20, "the meeting-ended state")
        assert "Cuộc họp đã kết thúc" in seen["ended_text"]
        assert "Giao ban trực tuyến" in seen["ended_text"]
        sizes = await page.evaluate(SIZES_JS, ["ended-title"])
        assert sizes["ended-title"]["size"] >= TITLE_MIN_PX
        await page.screenshot(path=artifact("kiosk-ended.png"))
    finally:
        await page.context.close()
