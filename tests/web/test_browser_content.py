"""Content sharing in headless Chromium against the whole stack: halls present slides drawn on
a canvas with whip.js, the other halls and the chair console decode them on their second video
track, the presenter switches, and the chair console stops the presentation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from confbridge.sites.models import Site
from confbridge.web import STATIC_DIR
from tests.support.browsers import DESKTOP, artifact, async_chromium, skip_without_chromium
from tests.support.factories import PASSWORD
from tests.support.servers import ServerThread, Stack

skip_without_chromium()

TIMEOUT_MS = 15_000
MEDIA_TIMEOUT_S = 20.0
HALL_SLIDES = (800, 600)
CHAIR_SLIDES = (1024, 576)

HALL_HTML = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>Hội trường</title></head><body>
<script type="module">
import * as whip from "/static/js/whip.js";
window.whip = whip;
</script>
</body></html>
"""

# A hall's camera and microphone out, the programme and the content track in.
JOIN_JS = """async ([grant, publishing]) => {
  if (publishing) {
    const camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    window.outgoing = await whip.publish(grant.whip_url, grant.token, camera);
  }
  window.programme = await whip.view(grant.whep_url, grant.token, { content: true });
  return window.programme.content.getVideoTracks().length;
}"""

# Slides drawn on a canvas, changing every 100 ms, presented with a content grant.
PRESENT_JS = """async ([grant, width, height]) => {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  let slide = 0;
  window.slides = setInterval(() => {
    context.fillStyle = slide % 2 ? "#12304f" : "#f4f6f8";
    context.fillRect(0, 0, width, height);
    context.fillStyle = "#c0392b";
    context.font = "64px sans-serif";
    context.fillText(`Trang ${slide++}`, 60, 120);
  }, 100);
  window.presenting = await whip.present(grant.whip_url, grant.token, canvas.captureStream(10));
  return window.presenting.resourceUrl;
}"""

# The inbound video of `session`'s content track (the second one) and of its programme.
TRACKS_JS = """async (name) => {
  const session = window[name];
  const found = { connection: session?.pc.connectionState };
  if (!session) { return found; }
  const contentId = session.content?.getVideoTracks()[0]?.id;
  (await session.pc.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "video") {
      const which = report.trackIdentifier === contentId ? "content" : "programme";
      found[which] = { width: report.frameWidth, decoded: report.framesDecoded ?? 0 };
    }
  });
  return found;
}"""


class Hall:
    """One hall's terminal in its own browser context."""

    def __init__(self, page: Page, name: str, session: str = "programme") -> None:
        self.page = page
        self.name = name
        self.session = session
        self.console: list[str] = []
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    async def tracks(self) -> dict[str, Any]:
        return await self.page.evaluate(TRACKS_JS, self.session)

    async def wait_for(self, condition: Callable[[dict[str, Any]], bool], what: str) -> Any:
        deadline = time.monotonic() + MEDIA_TIMEOUT_S
        while True:
            tracks = await self.tracks()
            if condition(tracks):
                return tracks
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: {what} not seen; last {json.dumps(tracks)}; {self.console}"
                )
            await self.page.wait_for_timeout(100)

    async def content_decoded(self) -> int:
        return int((await self.tracks()).get("content", {}).get("decoded") or 0)

    async def wait_content(self, width: int, what: str) -> None:
        """Content of `width` is shown and its decoded frames keep rising."""
        first = await self.wait_for(
            lambda t: t.get("content", {}).get("width") == width and t["content"]["decoded"] > 0,
            what,
        )
        start = first["content"]["decoded"]
        await self.wait_for(lambda t: t["content"]["decoded"] > start + 5, f"{what} rising")


def _content(width: int) -> Callable[[dict[str, Any]], bool]:
    return lambda t: t.get("content", {}).get("width") == width


@pytest.fixture
def hall_url(serve: Callable[..., ServerThread]) -> str:
    async def index(_request: Request) -> HTMLResponse:
        return HTMLResponse(HALL_HTML)

    app = Starlette(routes=[Route("/", index), Mount("/static", StaticFiles(directory=STATIC_DIR))])
    return serve(app).url + "/"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_chromium() as chromium:
        yield chromium


@pytest.fixture
async def hall(browser: Browser, hall_url: str) -> AsyncIterator[Callable[[str], Awaitable[Hall]]]:
    opened: list[Hall] = []

    async def open_hall(name: str) -> Hall:
        context = await browser.new_context(viewport={"width": 640, "height": 480})
        terminal = Hall(await context.new_page(), name)
        opened.append(terminal)
        await terminal.page.goto(hall_url)
        await terminal.page.wait_for_function("window.whip !== undefined", timeout=TIMEOUT_MS)
        return terminal

    yield open_hall
    for terminal in opened:
        await terminal.page.evaluate("whip.stop().catch(() => {})")
        await terminal.page.context.close()


@pytest.fixture
async def chair_console(browser: Browser, stack: Stack) -> AsyncIterator[Page]:
    """The secretariat's chair console, signed in, on the stack's occurrence."""
    context = await browser.new_context(viewport=DESKTOP, base_url=stack.control)
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    await page.goto("/sign-in")
    await page.get_by_label("Tên đăng nhập").fill("vanphong")
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_label("Mật khẩu").press("Enter")
    await expect(page.get_by_role("heading", name="Lịch họp", exact=True)).to_be_visible()
    yield page
    await page.evaluate("window.programmeSession?.stop().catch(() => {})")
    await context.close()


async def _events_of(stack: Stack, count: int) -> list[tuple[str, int, str | None]]:
    deadline = time.monotonic() + MEDIA_TIMEOUT_S
    while True:
        events = [e for e in await stack.events() if e["type"].startswith("content_")]
        if len(events) >= count or time.monotonic() > deadline:
            return [(e["type"], e["site_id"], e["detail"].get("reason")) for e in events]
        await asyncio.sleep(0.2)


async def test_browser_content_is_decoded_on_the_second_track_switched_and_stopped(
    stack: Stack,
    sites: dict[str, Site],
    hall: Callable[[str], Awaitable[Hall]],
    chair_console: Page,
) -> None:
    """Chromium halls and the chair console: a hall's slides reach the others on the second
    track, the chair's slides replace them, the console stops the presentation."""
    chair, ward, speaker = await hall("hq"), await hall("p1"), await hall("p2")
    assert await chair.page.evaluate(JOIN_JS, [await stack.join("hq"), True]) == 1
    assert await ward.page.evaluate(JOIN_JS, [await stack.join("p1"), False]) == 1
    assert await speaker.page.evaluate(JOIN_JS, [await stack.join("p2"), True]) == 1
    await ward.wait_for(lambda t: (t.get("programme", {}).get("decoded") or 0) > 0, "programme")
    assert await ward.content_decoded() == 0  # nobody shares yet: nothing on the second track

    page = chair_console
    await page.goto(f"/occurrences/{stack.occurrence_id}/console")
    console = Hall(page, "console", session="programmeSession")
    await console.wait_for(lambda t: (t.get("programme", {}).get("decoded") or 0) > 0, "console")
    stop = page.get_by_role("button", name="Dừng trình chiếu")
    await expect(stop).to_be_disabled()
    await expect(page.locator("#content-box")).to_be_hidden()

    # The hall given the floor presents its slides.
    refused = await stack.join_content("p2")
    assert refused.status_code == 403, refused.text
    assert (await stack.floor("give", sites["p2"].id)).status_code == 200
    granted = await stack.join_content("p2")
    assert granted.status_code == 200, granted.text
    await speaker.page.evaluate(PRESENT_JS, [granted.json(), *HALL_SLIDES])
    await ward.wait_content(HALL_SLIDES[0], "the hall's slides at the ward")
    await chair.wait_content(HALL_SLIDES[0], "the hall's slides at the chair")
    await console.wait_content(HALL_SLIDES[0], "the hall's slides in the console")
    await expect(page.locator("#content-name")).to_have_text(sites["p2"].name)
    await expect(stop).to_be_enabled()
    shown = page.locator("#content")  # decoded into the element, and playing
    await expect(shown).to_have_js_property("videoWidth", HALL_SLIDES[0])
    await expect(shown).to_have_js_property("paused", False)
    await page.screenshot(path=artifact("web-console-content.png"), full_page=True)

    # The chair presents: its slides replace the hall's everywhere.
    chair_grant = await stack.join_content("hq")
    assert chair_grant.status_code == 200, chair_grant.text
    await chair.page.evaluate(PRESENT_JS, [chair_grant.json(), *CHAIR_SLIDES])
    await ward.wait_content(CHAIR_SLIDES[0], "the chair's slides at the ward")
    await speaker.wait_content(CHAIR_SLIDES[0], "the chair's slides at the hall")
    await expect(page.locator("#content-name")).to_have_text(sites["hq"].name)

    # The chair console stops it: the second track goes quiet, the programme goes on.
    await stop.click()
    await expect(page.locator("#content-box")).to_be_hidden()
    await expect(stop).to_be_disabled()
    await page.wait_for_timeout(1000)  # frames in flight
    quiet_from = await ward.content_decoded()
    programme_from = (await ward.tracks())["programme"]["decoded"]
    await page.wait_for_timeout(1500)
    assert await ward.content_decoded() == quiet_from
    assert (await ward.tracks())["programme"]["decoded"] > programme_from

    story = await _events_of(stack, 4)
    assert story == [
        ("content_started", sites["p2"].id, None),
        ("content_stopped", sites["p2"].id, "replaced by another presenter"),
        ("content_started", sites["hq"].id, None),
        ("content_stopped", sites["hq"].id, "stopped by user:vanphong"),
    ], story
