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
from tests.support.peers import WhepViewer, WhipPublisher, until
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


async def test_kiosk_presents_its_screen_once_it_has_the_floor(
    stack: Stack,
    sites: dict[str, Site],
    it_user: dict[str, str],
    browser: Browser,
    peers: list[WhipPublisher | WhepViewer],
) -> None:
    """ "Trình chiếu" without the floor → told why; with the floor → the hall's screen reaches
    another hall's second track; the chair stops it → the button is back to "Trình chiếu"."""
    grant = await stack.join("hq")
    camera = WhipPublisher(grant["whip_url"], grant["token"], width=CAMERA_WIDTH)
    peers.append(camera)
    assert (await camera.start()).status_code == 201
    other = await stack.join("p2")
    hall = WhepViewer(other["whep_url"], other["token"], content=True)
    peers.append(hall)
    assert (await hall.start()).status_code == 201
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{stack.control}/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it_user
        )
    context = await browser.new_context(viewport=SCREEN)
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    try:
        await page.goto(created.json()["pairing"]["pairing_url"])

        async def in_meeting() -> bool:
            return bool(await page.evaluate("window.kiosk.state === 'in_meeting'"))

        await eventually(in_meeting, 40, "the kiosk in the meeting")
        share = page.locator("#share")
        assert await share.text_content() == "Trình chiếu"
        await share.click()
        told = page.locator("#share-status")
        await eventually(told.is_visible, 10, "the refusal on the screen")
        assert "điểm cầu đang phát biểu" in (await told.text_content() or "")
        assert hall.content_frames == []

        assert (await stack.floor("give", sites["p1"].id)).status_code == 200
        await share.click()

        async def presenting() -> bool:
            return await share.get_attribute("aria-pressed") == "true"

        await eventually(presenting, 10, "the kiosk presenting")
        assert await share.text_content() == "Dừng trình chiếu"
        await until(lambda: len(hall.content_frames) > 10, timeout_s=20)
        assert {f.width for f in hall.content_frames} - {0}

        assert (await stack.floor("stop_content")).status_code == 200

        async def stopped() -> bool:
            return await share.get_attribute("aria-pressed") == "false"

        await eventually(stopped, 30, "the kiosk told that its presentation ended")
        assert await share.text_content() == "Trình chiếu"
        log = await page.evaluate("window.kiosk.log.map((entry) => entry.event)")
        assert log.count("share_started") == 1 and "share_stopped" in log
        assert [line for line in console if "Content Security Policy" in line] == []
    except Exception:
        print("\n".join(console[-60:]))
        raise
    finally:
        await context.close()
