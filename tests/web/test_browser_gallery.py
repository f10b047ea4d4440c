"""The halls' gallery in headless Chromium against the whole stack: four halls publish their
camera and thumbnail with whip.js, the chair console decodes every hall's tile (thumbnails
only), previews a hall large and gives it the floor, steps through the roll call; IT staff
watch the same gallery read-only."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from confbridge.auth.models import Role
from confbridge.sites.models import Site
from confbridge.web import STATIC_DIR
from tests.support.browsers import DESKTOP, artifact, async_chromium, skip_without_chromium
from tests.support.factories import PASSWORD
from tests.support.servers import ServerThread, Stack

skip_without_chromium()

HALLS = ("hq", "p1", "p2", "dept")
TIMEOUT_MS = 20_000
MEDIA_TIMEOUT_S = 30.0
THUMBNAIL_MAX_WIDTH = 320

HALL_HTML = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>Hội trường</title></head><body>
<script type="module">
import * as whip from "/static/js/whip.js";
window.whip = whip;
</script>
</body></html>
"""

# A hall's camera out, with its thumbnail (the second video m-line).
PUBLISH_JS = """async (grant) => {
  const camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  window.outgoing = await whip.publish(grant.whip_url, grant.token, camera, { thumbnail: true });
  return window.outgoing.pc.getTransceivers().length;
}"""

# What the page's gallery decodes: per hall shown in a tile, and in the preview.
GALLERY_JS = """async () => {
  const state = window.gallery;
  const session = state?.session;
  const found = {
    connection: session?.pc.connectionState,
    applied: state?.applied,
    status: document.getElementById("gallery-status").textContent,
    tiles: {},
    preview: null,
  };
  if (!session) { return found; }
  const tileOf = new Map(session.tiles.map((stream, i) => [stream.getVideoTracks()[0].id, i]));
  const previewId = session.preview.getVideoTracks()[0].id;
  (await session.pc.getStats()).forEach((report) => {
    if (report.type !== "inbound-rtp" || report.kind !== "video") { return; }
    const seen = { width: report.frameWidth ?? 0, decoded: report.framesDecoded ?? 0 };
    if (report.trackIdentifier === previewId) {
      found.preview = { site: state.preview, ...seen };
    } else if (tileOf.has(report.trackIdentifier)) {
      const hall = state.shown[tileOf.get(report.trackIdentifier)];
      if (hall) { found.tiles[hall.id] = seen; }
    }
  });
  return found;
}"""


class Watcher:
    """A page with a gallery, read through `window.gallery`."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.name = name
        self.console: list[str] = []
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    async def decoded(self) -> dict[str, Any]:
        return await self.page.evaluate(GALLERY_JS)

    async def wait_for(self, condition: Callable[[dict[str, Any]], bool], what: str) -> Any:
        deadline = time.monotonic() + MEDIA_TIMEOUT_S
        while True:
            seen = await self.decoded()
            if condition(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: {what} not seen; last {json.dumps(seen)}; {self.console[-20:]}"
                )
            await self.page.wait_for_timeout(200)

    async def wait_tiles_rising(self, site_ids: list[int]) -> dict[str, Any]:
        """Every one of `site_ids` has its tile decoding, and its frame count keeps rising."""
        keys = [str(site_id) for site_id in site_ids]
        first = await self.wait_for(
            lambda s: all(s["tiles"].get(k, {}).get("decoded", 0) > 0 for k in keys),
            f"tiles of {keys} decoding",
        )
        return await self.wait_for(
            lambda s: all(
                s["tiles"][k]["decoded"] > first["tiles"][k]["decoded"] + 3 for k in keys
            ),
            f"tiles of {keys} rising",
        )


@pytest.fixture
def stack_options() -> dict[str, Any]:
    return {"invited": ("p1", "p2", "dept")}


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
async def halls(browser: Browser, hall_url: str, stack: Stack) -> AsyncIterator[list[Page]]:
    """The four halls publishing their camera and thumbnail."""
    pages = []
    for name in HALLS:
        context = await browser.new_context(viewport={"width": 480, "height": 360})
        page = await context.new_page()
        await page.goto(hall_url)
        await page.wait_for_function("window.whip !== undefined", timeout=TIMEOUT_MS)
        assert await page.evaluate(PUBLISH_JS, await stack.join(name)) == 3
        pages.append(page)
    yield pages
    for page in pages:
        await page.evaluate("whip.stop().catch(() => {})")
        await page.context.close()


async def _signed_in(browser: Browser, stack: Stack, username: str) -> Page:
    context = await browser.new_context(viewport=DESKTOP, base_url=stack.control)
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    await page.goto("/sign-in")
    await page.get_by_label("Tên đăng nhập").fill(username)
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_label("Mật khẩu").press("Enter")
    await expect(page.get_by_role("heading", name="Lịch họp", exact=True)).to_be_visible()
    return page


async def test_browser_gallery_decodes_every_halls_thumbnail_and_gives_the_floor(
    stack: Stack,
    sites: dict[str, Site],
    halls: list[Page],
    browser: Browser,
    make_user: Callable[..., dict[str, str]],
) -> None:
    """Four Chromium halls and the chair console: each hall's tile decodes its thumbnail, the
    preview shows a hall's camera, its button gives that hall the floor; the roll call steps
    through the halls; IT staff see the tiles without any floor control."""
    ids = [sites[name].id for name in HALLS]
    page = await _signed_in(browser, stack, "vanphong")
    await page.goto(f"/occurrences/{stack.occurrence_id}/console")
    console = Watcher(page, "console")
    tiles = page.locator("#gallery-tiles .tile:not([hidden])")
    await expect(tiles).to_have_count(len(HALLS))
    await expect(page.locator("#gallery-count")).to_have_text("4/4 điểm cầu đã kết nối")
    await expect(page.locator("#gallery-page")).to_have_text("Trang 1/1")
    seen = await console.wait_tiles_rising(ids)
    # thumbnails only: no tile carries a hall's main layer
    widths = {site: tile["width"] for site, tile in seen["tiles"].items()}
    assert all(0 < width <= THUMBNAIL_MAX_WIDTH for width in widths.values()), widths
    await page.screenshot(path=artifact("web-console-gallery.png"), full_page=True)

    # A large preview of p1 (its camera), then the floor from the button beside it.
    p1 = sites["p1"].id
    await page.locator(f'#gallery-tiles .tile[data-site-id="{p1}"] .tile-open').click()
    await expect(page.locator("#preview-name")).to_have_text(sites["p1"].name)
    previewed = await console.wait_for(
        lambda s: (s["preview"] or {}).get("site") == p1 and s["preview"]["decoded"] > 3,
        "p1's camera in the preview",
    )
    # the camera, never smaller than its thumbnail (Chromium may scale a busy camera down to it)
    assert previewed["preview"]["width"] >= previewed["tiles"][str(p1)]["width"], previewed
    give = page.locator("#preview-give")
    await expect(give).to_have_text("Trao quyền phát biểu")
    await give.click()
    await expect(page.locator("#speaker-name")).to_have_text(sites["p1"].name)
    tile = page.locator(f'#gallery-tiles .tile[data-site-id="{p1}"]')
    await expect(tile.locator(".flag-speaking")).to_be_visible()
    await expect(give).to_be_disabled()  # p1 speaks already

    # The roll call: every invited hall in turn, chair first, shown in the preview.
    await page.get_by_role("button", name="Bắt đầu điểm danh").click()
    position = page.locator("#rollcall-position")
    await expect(position).to_have_text("Điểm danh: điểm cầu 1/4")
    await expect(page.locator("#preview-name")).to_have_text(sites["hq"].name)
    order = [await page.locator("#preview-name").text_content()]
    for step in range(2, 5):
        await page.get_by_role("button", name="Điểm cầu tiếp theo").click()
        await expect(position).to_have_text(f"Điểm danh: điểm cầu {step}/4")
        order.append(await page.locator("#preview-name").text_content())
    assert sorted(order) == sorted(sites[name].name for name in HALLS)
    await expect(page.get_by_role("button", name="Điểm cầu tiếp theo")).to_be_disabled()
    last = next(s for s in HALLS if sites[s].name == order[-1])
    await console.wait_for(
        lambda s: (
            (s["preview"] or {}).get("site") == sites[last].id and s["preview"]["decoded"] > 3
        ),
        "the roll call's last hall in the preview",
    )
    await page.get_by_role("button", name="Kết thúc điểm danh").click()
    await expect(page.locator("#gallery-preview")).to_be_hidden()

    # IT staff: the same tiles, read-only.
    make_user(Role.it, "kythuat")
    it_page = await _signed_in(browser, stack, "kythuat")
    await it_page.goto(f"/occurrences/{stack.occurrence_id}/gallery")
    watcher = Watcher(it_page, "IT gallery")
    await expect(it_page.locator("#gallery-tiles .tile:not([hidden])")).to_have_count(4)
    await watcher.wait_tiles_rising(ids)
    await it_page.locator(f'#gallery-tiles .tile[data-site-id="{p1}"] .tile-open').click()
    await expect(it_page.locator("#preview-name")).to_have_text(sites["p1"].name)
    assert await it_page.locator("#preview-give").count() == 0
    assert await it_page.locator('button[data-action="give"]').count() == 0
    await it_page.evaluate("window.gallery?.session?.stop().catch(() => {})")
    await it_page.context.close()
    await page.evaluate("window.gallery?.session?.stop().catch(() => {})")
    await page.evaluate("window.programmeSession?.stop().catch(() => {})")
    await page.context.close()
