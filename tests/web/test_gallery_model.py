"""The gallery's rules (`static/js/gallery_model.js`) run in Chromium: pages of 25 connected
halls, a page kept in range as halls leave, the roll call over every invited hall."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.async_api import async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from confbridge.web import STATIC_DIR
from tests.support.browsers import CHROMIUM, CHROMIUM_ARGS, skip_without_chromium
from tests.support.servers import ServerThread

skip_without_chromium()

PAGE_HTML = """<!doctype html><html lang="vi"><head><meta charset="utf-8"></head><body>
<script type="module">
import * as model from "/static/js/gallery_model.js";
window.model = model;
</script></body></html>"""

# 60 invited halls; 40 of them connected (every third one is not).
RULES_JS = """() => {
  const m = window.model;
  const halls = Array.from({ length: 60 }, (_, i) => ({ id: i + 1, name: `Hall ${i + 1}` }));
  const views = {};
  halls.forEach((h, i) => { views[h.id] = { state: i % 3 === 2 ? "not_joined" : "joined" }; });
  const connected = m.connectedHalls(halls, views);
  const call = new m.RollCall(halls);
  const visited = [call.current.id];
  while (!call.last) { visited.push(call.next().id); }
  const stuck = call.next().id;
  call.previous();
  return {
    size: m.PAGE_SIZE,
    connected: connected.length,
    firstConnected: connected.slice(0, 3).map((h) => h.id),
    pages: m.pageCount(connected.length),
    emptyPages: m.pageCount(0),
    page0: m.pageHalls(connected, 0).length,
    page1: m.pageHalls(connected, 1).map((h) => h.id),
    clampedHigh: m.clampPage(5, connected.length),
    clampedAfterLeaving: m.clampPage(1, 25),
    clampedLow: m.clampPage(-1, connected.length),
    pageOf40: m.pageOf(connected, 59),
    pageOfAbsent: m.pageOf(connected, 3),
    visited: visited.length,
    order: visited.slice(0, 3),
    stuck,
    back: call.current.id,
    position: [call.position, call.total, call.first, call.last],
    flags: m.tileFlags({ state: "joined", speaking: true, hand: 2, muted: false, quality: "poor" }),
    absent: m.tileFlags(undefined),
  };
}"""


async def test_gallery_model_pages_and_roll_call(serve: Callable[..., ServerThread]) -> None:
    async def index(_request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE_HTML)

    app = Starlette(routes=[Route("/", index), Mount("/static", StaticFiles(directory=STATIC_DIR))])
    url = serve(app).url + "/"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            await page.wait_for_function("window.model !== undefined")
            seen: dict[str, Any] = await page.evaluate(RULES_JS)
        finally:
            await browser.close()
    assert seen["size"] == 25
    assert seen["connected"] == 40 and seen["firstConnected"] == [1, 2, 4]
    assert (seen["pages"], seen["emptyPages"]) == (2, 1)
    assert seen["page0"] == 25 and len(seen["page1"]) == 15 and seen["page1"][0] == 38
    assert (seen["clampedHigh"], seen["clampedAfterLeaving"], seen["clampedLow"]) == (1, 0, 0)
    assert (seen["pageOf40"], seen["pageOfAbsent"]) == (1, None)
    # the roll call visits all 60 invited halls in order, connected or not, and stops at the end
    assert seen["visited"] == 60 and seen["order"] == [1, 2, 3]
    assert (seen["stuck"], seen["back"]) == (60, 59)
    assert seen["position"] == [59, 60, False, False]
    assert seen["flags"] == {
        "absent": False,
        "speaking": True,
        "hand": True,
        "muted": False,
        "poor": True,
    }
    assert seen["absent"]["absent"] is True
