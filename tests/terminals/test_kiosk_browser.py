"""The kiosk page (`/terminal`) in headless Chromium with fake devices: it pairs from its URL,
shows the site and the agenda, joins at the start, shows the chair's video, appears in the
attendance, and rejoins after the bridge restarts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, Route

from confbridge.db import Database
from confbridge.sites.models import Site
from tests.support.browsers import async_chromium, skip_without_chromium
from tests.support.factories import move_occurrence, soon
from tests.support.peers import WhepViewer, WhipPublisher
from tests.support.polling import eventually
from tests.support.servers import (
    NODE_SECRET,
    Stack,
    attendance_of,
    wait_for_worker,
    wait_until_registered,
)

skip_without_chromium()

CHAIR_WIDTH = 160
REJOIN_LIMIT_S = 10.0
PAGE_TIMEOUT_MS = 30_000
READER = {"Authorization": f"Bearer {NODE_SECRET}"}  # reads the worker's /rooms


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_chromium() as chromium:
        yield chromium


async def kiosk(page: Page) -> dict[str, Any]:
    return await page.evaluate(
        """() => ({
            state: window.kiosk.state, joins: window.kiosk.joins,
            error: window.kiosk.lastError, log: window.kiosk.log,
            width: document.getElementById("programme").videoWidth,
            site: document.getElementById("site").textContent,
            agenda: document.getElementById("agenda").textContent,
            countdown: document.getElementById("countdown").textContent,
            lang: document.documentElement.lang,
            speaker: document.getElementById("speaker").textContent,
            hand: document.getElementById("hand").getAttribute("aria-pressed"),
        })"""
    )


async def publish_chair(stack: Stack, peers: list[WhipPublisher | WhepViewer]) -> None:
    grant = await stack.join("hq")
    chair = WhipPublisher(grant["whip_url"], grant["token"])
    peers.append(chair)
    assert (await chair.start()).status_code == 201


async def test_kiosk_pairs_joins_on_time_and_rejoins(
    stack: Stack,
    database: Database,
    sites: dict[str, Site],
    it_user: dict[str, str],
    browser: Browser,
    peers: list[WhipPublisher | WhepViewer],
) -> None:
    """Pairing URL → site and agenda → joins at start → chair's video → rejoin after restart."""
    start_at = soon(12)
    move_occurrence(database, stack.occurrence_id, start_at)
    await publish_chair(stack, peers)
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{stack.control}/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it_user
        )
    pairing_url = created.json()["pairing"]["pairing_url"]
    assert pairing_url.startswith(f"{stack.control}/terminal?code=")

    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    try:
        await page.goto(pairing_url + "&agenda_s=2")

        async def idle() -> dict[str, Any] | None:
            seen = await kiosk(page)
            ok = seen["state"] == "idle" and seen["site"] == sites["p1"].name
            return seen if ok and seen["countdown"] else None

        shown = await eventually(idle, 15, "the paired kiosk")
        assert shown["lang"] == "vi" and "Giao ban trực tuyến" in shown["agenda"]
        assert "code=" not in page.url  # the code leaves the address bar
        assert shown["countdown"].startswith("Bắt đầu sau")

        # the self-test before the meeting: the camera's picture and a level meter
        await page.click("#selftest-button")

        async def previewing() -> dict[str, Any] | None:
            seen = await page.evaluate(
                """() => ({
                    width: document.getElementById("preview").videoWidth,
                    level: document.getElementById("meter").getAttribute("aria-valuenow"),
                })"""
            )
            return seen if seen["width"] == 640 and seen["level"] is not None else None

        await eventually(previewing, 10, "the camera self-test")

        async def in_meeting(joins: int) -> dict[str, Any] | None:
            seen = await kiosk(page)
            ok = seen["state"] == "in_meeting" and seen["joins"] >= joins
            return seen if ok and seen["width"] == CHAIR_WIDTH else None

        joined = await eventually(lambda: in_meeting(1), 40, "the kiosk in the meeting")
        (first,) = [e for e in joined["log"] if e["event"] == "joined"]
        assert datetime.fromisoformat(first["at"].replace("Z", "+00:00")) >= start_at

        # the programme's caption names the speaking site; a raised hand reaches the floor
        async def captioned() -> dict[str, Any] | None:
            seen = await kiosk(page)
            return seen if sites["hq"].name in seen["speaker"] else None

        caption = await eventually(captioned, 10, "the speaker's name on the programme")
        assert caption["speaker"].startswith("Đang phát biểu")
        await page.click("#hand")

        async def hand_raised() -> bool:
            async with httpx.AsyncClient(timeout=10) as http:
                floor = await http.get(
                    f"{stack.worker}/rooms/occ-{stack.occurrence_id}/floor",
                    headers=stack.admin(),
                )
            return sites["p1"].id in floor.json()["hands"]

        await eventually(hand_raised, 10, "the raised hand on the floor")

        async def hand_shown() -> bool:
            return (await kiosk(page))["hand"] == "true"

        await eventually(hand_shown, 10, "the raised hand on the kiosk")

        async def joined_record() -> dict | None:
            record = await attendance_of(stack, sites["p1"])
            return record if record["first_join_at"] else None

        await eventually(joined_record, 15, "the kiosk in the attendance")

        # the bridge goes away and comes back
        stack.workers.close()
        stack.workers.start()
        wait_for_worker(stack.worker)
        wait_until_registered(database, ["local-0"])
        back_at = time.monotonic()
        await publish_chair(stack, peers)
        await eventually(lambda: in_meeting(2), REJOIN_LIMIT_S + 10, "the kiosk rejoined")
        assert time.monotonic() - back_at < REJOIN_LIMIT_S + 5

        async def reconnected() -> dict | None:
            record = await attendance_of(stack, sites["p1"])
            return record if record["reconnects"] >= 1 else None

        record = await eventually(reconnected, 20, "the reconnect in the attendance")
        assert record["reconnects"] == 1

        # IT staff see the kiosk online, in the meeting
        async with httpx.AsyncClient(timeout=10) as http:
            listed = await http.get(
                f"{stack.control}/api/v1/terminals?site_id={sites['p1'].id}&status=online",
                headers=it_user,
            )
        (mine,) = listed.json()["items"]
        assert mine["kind"] == "kiosk" and mine["occurrence_id"] == stack.occurrence_id
        # The page's policy refused nothing (a refusal breaks a script without a word).
        assert [line for line in console if "Content Security Policy" in line] == []
    except Exception:
        print("\n".join(console[-60:]))
        raise
    finally:
        await context.close()


async def test_kiosk_waits_as_told_by_a_503_retry_after(
    stack: Stack, sites: dict[str, Site], it_user: dict[str, str], browser: Browser
) -> None:
    """No media server up for a moment: the join's 503 with Retry-After is waited out as asked
    (1 s here, plus a little jitter), not with the kiosk's own back-off, then it joins."""
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{stack.control}/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it_user
        )
    pairing_url = created.json()["pairing"]["pairing_url"]
    refusals = 2
    refused_at: list[float] = []

    async def no_media_server_yet(route: Route) -> None:
        if len(refused_at) < refusals:
            refused_at.append(time.monotonic())
            await route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body='{"detail": "no media server is available now"}',
            )
        else:
            await route.continue_()

    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    await page.route("**/api/v1/occurrences/*/join", no_media_server_yet)
    try:
        await page.goto(pairing_url)

        async def joined() -> dict[str, Any] | None:
            seen = await kiosk(page)
            return seen if seen["state"] == "in_meeting" else None

        seen = await eventually(joined, 40, "the kiosk in the meeting after two 503s")
    finally:
        await context.close()
    retries = [e for e in seen["log"] if e["event"] == "retry"]
    assert len(retries) == refusals
    for retry in retries:
        assert retry["retry_after_ms"] == 1000
        assert 1000 <= retry["retry_in_ms"] <= 1000 * 1.2 + 200, retry
    assert refused_at[1] - refused_at[0] >= 1.0


# Every peer connection the page makes, kept for reading their stats.
RECORD_PEER_CONNECTIONS = """
(() => {
    const Native = window.RTCPeerConnection;
    window.peerConnections = [];
    window.RTCPeerConnection = function (...args) {
        const pc = new Native(...args);
        window.peerConnections.push(pc);
        return pc;
    };
    window.RTCPeerConnection.prototype = Native.prototype;
})();
"""

# What the page sends: one entry per outgoing video stream.
OUTGOING_VIDEO = """async () => {
    const sent = [];
    for (const pc of window.peerConnections) {
        if (pc.connectionState !== "connected") continue;
        const stats = await pc.getStats();
        for (const report of stats.values()) {
            if (report.type === "outbound-rtp" && report.kind === "video") {
                sent.push({
                    mid: report.mid, width: report.frameWidth || 0,
                    fps: report.framesPerSecond || 0, frames: report.framesEncoded || 0,
                });
            }
        }
    }
    return sent;
}"""


async def test_kiosk_publishes_its_camera_and_its_thumbnail(
    stack: Stack,
    sites: dict[str, Site],
    it_user: dict[str, str],
    browser: Browser,
    peers: list[WhipPublisher | WhepViewer],
) -> None:
    """The kiosk publishes two video tracks, the camera and its thumbnail (320 px wide, at
    most 15 fps), and the bridge takes the second as the hall's small layer."""
    await publish_chair(stack, peers)
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{stack.control}/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it_user
        )
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    await context.add_init_script(RECORD_PEER_CONNECTIONS)
    page = await context.new_page()
    try:
        await page.goto(created.json()["pairing"]["pairing_url"])

        async def sending_both() -> list[dict[str, Any]] | None:
            sent = await page.evaluate(OUTGOING_VIDEO)
            flowing = [s for s in sent if s["frames"] > 30 and s["fps"] > 0 and s["width"]]
            return sorted(flowing, key=lambda s: int(s["mid"])) if len(flowing) == 2 else None

        # in m-line order: the camera (640 px, or less where Chromium saves CPU), its thumbnail
        camera, thumbnail = await eventually(sending_both, 60, "the camera and its thumbnail")
        assert thumbnail["width"] <= 320 < camera["width"], (camera, thumbnail)
        assert thumbnail["fps"] <= 15 + 1, thumbnail  # Chromium's rate is measured, not declared

        async def published() -> list[str] | None:
            async with httpx.AsyncClient(timeout=10) as http:
                listed = await http.get(f"{stack.worker}/rooms", headers=READER)
            (room,) = listed.json()["rooms"]
            ingest = [
                peer["sources"]
                for peer in room["peers"]
                if peer["site_id"] == sites["p1"].id and peer["direction"] == "ingest"
            ]
            return ingest[0] if ingest else None

        assert await eventually(published, 10, "the kiosk's ingest") == [
            "audio",
            "video",
            "video-small",
        ]
    finally:
        await context.close()
