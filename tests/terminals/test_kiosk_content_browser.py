"""The kiosk page in headless Chromium while content is shared: the slides fill the screen with
the speaker inset, and the programme takes the screen back when the chair stops them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from confbridge.sites.models import Site
from tests.support.browsers import artifact, async_chromium, skip_without_chromium
from tests.support.peers import WhepViewer, WhipPublisher
from tests.support.polling import eventually
from tests.support.servers import Stack

skip_without_chromium()

CAMERA_WIDTH = 160
SLIDES_WIDTH, SLIDES_HEIGHT = 352, 288
SCREEN = {"width": 1280, "height": 720}

LAYOUT_JS = """() => {
  const box = (id) => document.getElementById(id).getBoundingClientRect();
  return {
    state: window.kiosk.state,
    content: document.body.dataset.content ?? null,
    contentWidth: document.getElementById("content").videoWidth,
    contentShown: getComputedStyle(document.getElementById("content")).display !== "none",
    contentBox: box("content").width,
    programmeWidth: document.getElementById("programme").videoWidth,
    programmeBox: box("programme").width,
    speaker: document.getElementById("speaker").textContent,
    log: window.kiosk.log.map((entry) => entry.event),
  };
}"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_chromium() as chromium:
        yield chromium


async def test_kiosk_shows_content_large_with_the_speaker_inset(
    stack: Stack,
    sites: dict[str, Site],
    it_user: dict[str, str],
    browser: Browser,
    peers: list[WhipPublisher | WhepViewer],
) -> None:
    """Chair's camera → kiosk in the meeting; the chair presents → slides full screen, camera
    inset; the chair console's stop → the camera full screen again."""
    grant = await stack.join("hq")
    camera = WhipPublisher(grant["whip_url"], grant["token"], width=CAMERA_WIDTH)
    peers.append(camera)
    assert (await camera.start()).status_code == 201
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{stack.control}/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it_user
        )
    pairing_url = created.json()["pairing"]["pairing_url"]

    context = await browser.new_context(viewport=SCREEN)
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    try:
        await page.goto(pairing_url)

        async def layout(check: Any) -> dict[str, Any] | None:
            seen = await page.evaluate(LAYOUT_JS)
            return seen if check(seen) else None

        plain = await eventually(
            lambda: layout(
                lambda s: (
                    s["state"] == "in_meeting"
                    and s["programmeWidth"] == CAMERA_WIDTH
                    and sites["hq"].name in s["speaker"]
                )
            ),
            40,
            "the kiosk in the meeting",
        )
        assert not plain["contentShown"] and plain["programmeBox"] == SCREEN["width"]

        content_grant = (await stack.join_content("hq")).json()
        slides = WhipPublisher(
            content_grant["whip_url"],
            content_grant["token"],
            width=SLIDES_WIDTH,
            height=SLIDES_HEIGHT,
            content=True,
        )
        peers.append(slides)
        assert (await slides.start()).status_code == 201
        shared = await eventually(
            lambda: layout(lambda s: s["content"] == "on" and s["contentWidth"] == SLIDES_WIDTH),
            20,
            "the slides on the kiosk",
        )
        assert shared["contentShown"] and shared["contentBox"] == SCREEN["width"]
        # the speaker stays on screen, inset, and so does the name band
        assert shared["programmeWidth"] == CAMERA_WIDTH
        assert 0 < shared["programmeBox"] < SCREEN["width"] / 2
        assert sites["hq"].name in shared["speaker"]
        await page.screenshot(path=artifact("kiosk-content.png"))

        stopped = await stack.floor("stop_content")
        assert stopped.status_code == 200, stopped.text
        back = await eventually(
            lambda: layout(lambda s: s["content"] == "off"), 10, "the programme full screen again"
        )
        assert not back["contentShown"] and back["programmeBox"] == SCREEN["width"]
        assert back["log"].count("content_shown") == 1 and "content_hidden" in back["log"]
        assert [line for line in console if "Content Security Policy" in line] == []
    except Exception:
        print("\n".join(console[-60:]))
        raise
    finally:
        await context.close()
