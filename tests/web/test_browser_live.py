"""The occurrence page and the chair console in headless Chromium against the whole stack: a
control plane, a real SFU worker process and aiortc terminals in the halls."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from confbridge.sites.models import Site
from tests.support.browsers import DESKTOP, artifact, async_chromium, skip_without_chromium
from tests.support.factories import PASSWORD
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.servers import Stack

skip_without_chromium()

TIMEOUT_MS = 15_000
MEDIA_TIMEOUT_S = 15.0
CHAIR_WIDTH, CHAIR_HEIGHT = 160, 120
SPEAKER_WIDTH, SPEAKER_HEIGHT = 176, 144

# What the console's programme viewer receives, from the browser's own statistics.
PROGRAMME_STATS_JS = """async () => {
  const found = { connection: window.programmeSession?.pc.connectionState };
  if (!window.programmeSession) { return found; }
  (await window.programmeSession.pc.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "video") {
      found.frameWidth = report.frameWidth;
      found.framesDecoded = report.framesDecoded;
    }
  });
  found.videoWidth = document.getElementById("programme").videoWidth;
  return found;
}"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_chromium() as chromium:
        yield chromium


@pytest.fixture
async def signed_in(browser: Browser, stack: Stack) -> AsyncIterator[Page]:
    """A page of the secretariat user `vanphong`, signed in on the stack's control plane."""
    context = await browser.new_context(viewport=DESKTOP, base_url=stack.control)
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.console_lines = console  # type: ignore[attr-defined]
    await page.goto("/sign-in")
    await page.get_by_label("Tên đăng nhập").fill("vanphong")
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_label("Mật khẩu").press("Enter")
    await expect(page.get_by_role("heading", name="Lịch họp", exact=True)).to_be_visible()
    yield page
    # The pages' policy refused nothing (a refusal breaks a script without a word).
    assert [line for line in console if "Content Security Policy" in line] == []
    await context.close()


async def _wait_stats(
    page: Page, condition: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    deadline = time.monotonic() + MEDIA_TIMEOUT_S
    while True:
        stats = await page.evaluate(PROGRAMME_STATS_JS)
        if condition(stats):
            return stats
        if time.monotonic() > deadline:
            lines = page.console_lines  # type: ignore[attr-defined]
            shown = await page.locator("#console-message").text_content()
            raise AssertionError(
                f"{what} not seen; last stats {json.dumps(stats)}; message {shown!r}; {lines}"
            )
        await page.wait_for_timeout(100)


async def test_web_occurrence_page_shows_a_terminal_joining_without_reloading(
    stack: Stack, peers: list[WhipPublisher | WhepViewer], sites: dict[str, Site], signed_in: Page
) -> None:
    """A ward's terminal joins and leaves; the open page follows through server-sent events."""
    page = signed_in
    await page.goto(f"/occurrences/{stack.occurrence_id}")
    row = page.locator(f'#sites-table tr[data-site-id="{sites["p1"].id}"]')
    await expect(row).to_have_attribute("data-state", "not_joined")
    await expect(row.locator(".state-badge")).to_have_text("Chưa tham gia")
    await expect(page.locator("#live-indicator")).to_have_class("live-indicator connected")
    await page.evaluate("window.sameDocument = true")

    grant = await stack.join("p1")
    terminal = WhipPublisher(grant["whip_url"], grant["token"])
    peers.append(terminal)
    assert (await terminal.start()).status_code == 201
    await expect(row).to_have_attribute("data-state", "joined")
    await expect(row.locator(".state-badge")).to_have_text("Đã tham gia")
    await expect(page.locator("#joined-count")).to_have_text("1")
    assert await page.evaluate("window.sameDocument") is True  # no reload happened
    await page.screenshot(path=artifact("web-occurrence-live.png"), full_page=True)

    await terminal.stop()
    peers.remove(terminal)
    await expect(row).to_have_attribute("data-state", "left")
    await expect(row.locator(".state-badge")).to_have_text("Đã rời")
    # A page opened now reads the same from the stored events.
    await page.reload()
    await expect(row).to_have_attribute("data-state", "left")


async def test_web_chair_console_gives_the_floor_and_every_terminal_follows(
    stack: Stack, peers: list[WhipPublisher | WhepViewer], sites: dict[str, Site], signed_in: Page
) -> None:
    """The chair console shows the programme (WHEP in Chromium), a hall raises its hand, the
    console gives it the floor: the console's viewer and a hall's terminal get its picture."""
    chair_grant, speaker_grant, hall_grant = (
        await stack.join("hq"), await stack.join("p2"), await stack.join("p1")
    )  # fmt: skip
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], CHAIR_WIDTH, CHAIR_HEIGHT)
    speaker = WhipPublisher(
        speaker_grant["whip_url"], speaker_grant["token"], SPEAKER_WIDTH, SPEAKER_HEIGHT
    )
    hall = WhepViewer(hall_grant["whep_url"], hall_grant["token"])
    for peer in (chair, speaker, hall):
        peers.append(peer)
        assert (await peer.start()).status_code == 201
    await until(lambda: CHAIR_WIDTH in hall.widths_since(0), timeout_s=MEDIA_TIMEOUT_S)

    page = signed_in
    await page.goto(f"/occurrences/{stack.occurrence_id}")
    await page.get_by_role("link", name="Bàn điều khiển chủ trì").click()
    await expect(
        page.get_by_role("heading", name="Bàn điều khiển chủ trì", exact=False)
    ).to_be_visible()
    await _wait_stats(
        page,
        lambda s: s.get("frameWidth") == CHAIR_WIDTH and s.get("videoWidth") == CHAIR_WIDTH,
        "the chair's picture in the console",
    )
    await expect(page.locator("#programme-status")).to_have_text(
        "Đang nhận hình và tiếng của chương trình."
    )
    await expect(page.locator("#speaker-name")).to_have_text(sites["hq"].name)

    # The hall raises its hand from its terminal: the queue fills without a reload.
    async with httpx.AsyncClient(base_url=stack.control) as http:
        raised = await http.post(
            f"/api/v1/occurrences/{stack.occurrence_id}/floor",
            json={"action": "raise_hand"},
            headers={"Authorization": f"Bearer {stack.tokens['p2']}"},
        )
    assert raised.status_code == 200, raised.text
    queue = page.locator("#hands-queue li")
    await expect(queue).to_have_count(1)
    await expect(queue.first).to_contain_text(sites["p2"].name)
    speaker_row = page.locator(f'#sites-table tr[data-site-id="{sites["p2"].id}"]')
    await expect(speaker_row.locator(".hand")).to_be_visible()
    await page.screenshot(path=artifact("web-console-hand-raised.png"), full_page=True)

    # Give the floor from the queue, with the keyboard.
    await queue.first.get_by_role("button", name="Trao quyền phát biểu").focus()
    await page.keyboard.press("Enter")
    switched_at = time.monotonic()
    await _wait_stats(
        page,
        lambda s: s.get("frameWidth") == SPEAKER_WIDTH and s.get("videoWidth") == SPEAKER_WIDTH,
        "the new speaker's picture in the console",
    )
    await until(lambda: SPEAKER_WIDTH in hall.widths_since(switched_at), timeout_s=MEDIA_TIMEOUT_S)
    await expect(page.locator("#speaker-name")).to_have_text(sites["p2"].name)
    await expect(queue).to_have_count(0)
    await expect(speaker_row.locator(".speaking")).to_be_visible()
    await expect(
        speaker_row.get_by_role("button", name=f"Trao quyền phát biểu: {sites['p2'].name}")
    ).to_be_disabled()

    # Mute and unmute a hall; mute all; take the floor back.
    hall_row = page.locator(f'#sites-table tr[data-site-id="{sites["p1"].id}"]')
    await hall_row.get_by_role("button", name=f"Tắt tiếng: {sites['p1'].name}").click()
    await expect(hall_row.locator(".muted-flag")).to_be_visible()
    await hall_row.get_by_role("button", name=f"Bật tiếng: {sites['p1'].name}").click()
    await expect(hall_row.locator(".muted-flag")).to_be_hidden()
    await page.get_by_role("button", name="Tắt tiếng tất cả").click()
    await expect(hall_row.locator(".muted-flag")).to_be_visible()
    # the hall just given the floor keeps speaking
    await expect(speaker_row.locator(".muted-flag")).to_be_hidden()
    await page.screenshot(path=artifact("web-console.png"), full_page=True)
    await page.get_by_role("button", name="Lấy lại quyền phát biểu").click()
    await _wait_stats(
        page, lambda s: s.get("frameWidth") == CHAIR_WIDTH, "the chair's picture after take"
    )
    await expect(page.locator("#console-message")).to_be_hidden()
    await page.evaluate("window.programmeSession.stop()")


async def test_web_chair_console_says_what_it_receives_and_plays_sound(
    stack: Stack, peers: list[WhipPublisher | WhepViewer], sites: dict[str, Site], signed_in: Page
) -> None:
    """Before the chair hall joins the console says so (not "connected" over a blank video, not
    "speaking" for a hall that is not there); once it joins, picture and sound; sound toggles."""
    page = signed_in
    # a hall joins (the room opens) but not the chair
    hall_grant = await stack.join("p1")
    hall = WhipPublisher(hall_grant["whip_url"], hall_grant["token"], SPEAKER_WIDTH, SPEAKER_HEIGHT)
    peers.append(hall)
    assert (await hall.start()).status_code == 201
    await page.goto(f"/occurrences/{stack.occurrence_id}/console")
    status = page.locator("#programme-status")
    await expect(status).to_have_attribute("data-state", "waiting")
    await expect(status).to_have_text(
        "Đã kết nối máy chủ truyền hình; điểm cầu chủ trì chưa vào họp."
    )
    await expect(page.locator("#speaker-name")).to_have_text(f"{sites['hq'].name} (chưa vào họp)")
    await page.screenshot(path=artifact("web-console-before-chair.png"), full_page=True)

    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], CHAIR_WIDTH, CHAIR_HEIGHT)
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    await expect(status).to_have_attribute("data-state", "receiving", timeout=20_000)
    await expect(page.locator("#speaker-name")).to_have_text(sites["hq"].name)

    # sound: the video element is not left muted; the button turns it off and on
    toggle = page.locator("#sound-toggle")
    muted = await page.evaluate("document.getElementById('programme').muted")
    await expect(toggle).to_have_text("Bật âm thanh" if muted else "Tắt âm thanh")
    if muted:  # the browser refused to start with sound: one click turns it on
        await toggle.click()
    assert await page.evaluate("document.getElementById('programme').muted") is False
    await expect(toggle).to_have_text("Tắt âm thanh")
    await toggle.click()
    assert await page.evaluate("document.getElementById('programme').muted") is True
    await expect(toggle).to_have_text("Bật âm thanh")
    await expect(toggle).to_have_attribute("data-muted", "true")
    await page.evaluate("window.programmeSession.stop()")
