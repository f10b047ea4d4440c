"""The kiosk page in headless Chromium against a worker under a join storm: the worker's 503
with Retry-After (read through CORS) makes the hall wait its turn, shown as waiting and not
as an error, then it joins with the same grant; presenting its screen waits the same way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection
from playwright.async_api import Browser

from sfu.admission import HANDSHAKE_HOLD_S
from tests.support.browsers import async_chromium, skip_without_chromium
from tests.support.peers import loopback_peer
from tests.support.polling import eventually
from tests.support.servers import Stack

skip_without_chromium()

SDP = "application/sdp"


@pytest.fixture
def stack_options(monkeypatch: pytest.MonkeyPatch) -> dict:
    """One handshake at a time, one join a second (the worker inherits CONFBRIDGE_SFU_*)."""
    limits = {
        "JOIN_MAX_HANDSHAKES": 1,
        "JOIN_RATE_PER_S": 1,
        "JOIN_BURST": 1,
        "JOIN_QUEUE_S": 0.2,
        "JOIN_MAX_LOOP_LAG_MS": 0,
    }
    for name, value in limits.items():
        monkeypatch.setenv(f"CONFBRIDGE_SFU_{name}", str(value))
    return {}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_chromium() as chromium:
        yield chromium


async def hold_the_only_slot(stack: Stack, stuck: RTCPeerConnection) -> None:
    """Hall p2 offers a view from `stuck` and never connects: the worker's only handshake slot
    stays taken for `HANDSHAKE_HOLD_S`."""
    other = await stack.join("p2")
    stuck.addTransceiver("video", direction="recvonly")
    await stuck.setLocalDescription(await stuck.createOffer())
    async with httpx.AsyncClient(timeout=10) as http:
        # the kiosk's own sessions may still hold the slot or the join rate: wait as told
        for _ in range(20):
            held = await http.post(
                other["whep_url"],
                content=stuck.localDescription.sdp,
                headers={
                    "Content-Type": "application/sdp",
                    "Authorization": f"Bearer {other['token']}",
                },
            )
            if held.status_code != 503:
                break
            await asyncio.sleep(float(held.headers.get("Retry-After", "1")))
    assert held.status_code == 201  # answered, never connected: the slot stays taken


async def test_kiosk_waits_its_turn_when_the_worker_is_busy(
    stack: Stack, sites: dict[str, Any], it_user: dict[str, str], browser: Browser
) -> None:
    """Another hall holds the worker's only handshake slot (it never completes, so the slot
    is held `HANDSHAKE_HOLD_S`): the kiosk is told 503 + Retry-After, waits as told with
    jitter, says it waits its turn, reports no error, and joins once the slot is free."""
    stuck = loopback_peer()
    await hold_the_only_slot(stack, stuck)
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{stack.control}/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it_user
        )
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    try:
        await page.goto(created.json()["pairing"]["pairing_url"])

        async def waiting() -> dict[str, Any] | None:
            seen = await page.evaluate(
                """() => ({state: window.kiosk.state, error: window.kiosk.lastError,
                           status: document.getElementById("status").textContent})"""
            )
            return seen if seen["state"] == "waiting" else None

        seen = await eventually(waiting, 30, "the kiosk waiting its turn")
        assert seen["status"] == "Đang chờ đến lượt vào cuộc họp…"
        assert seen["error"] is None  # not an error: nothing for IT staff, no red text

        async def joined() -> dict[str, Any] | None:
            seen = await page.evaluate("() => ({state: window.kiosk.state, log: window.kiosk.log})")
            return seen if seen["state"] == "in_meeting" else None

        seen = await eventually(joined, HANDSHAKE_HOLD_S + 30, "the kiosk in the meeting")
    finally:
        await context.close()
        await stuck.close()
    waits = [e for e in seen["log"] if e["event"] == "waiting"]
    assert waits, seen["log"]
    for wait in waits:
        assert wait["retry_after_ms"] >= 1000, wait
        told = wait["retry_after_ms"]
        assert told <= wait["retry_in_ms"] <= told * 1.2 + 200, wait
    assert not [e for e in seen["log"] if e["event"] == "error"]


async def test_kiosk_presents_once_the_busy_worker_admits_it(
    stack: Stack, sites: dict[str, Any], it_user: dict[str, str], browser: Browser
) -> None:
    """The hall is in the meeting with the floor when another hall holds the worker's only
    handshake slot: "Trình chiếu" is told 503 + Retry-After, waits as told with jitter (no
    refusal on the screen), and presents with the same grant once the slot is free."""
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{stack.control}/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it_user
        )
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    stuck = loopback_peer()
    try:
        await page.goto(created.json()["pairing"]["pairing_url"])

        async def in_meeting() -> bool:
            return bool(await page.evaluate("window.kiosk.state === 'in_meeting'"))

        await eventually(in_meeting, 40, "the kiosk in the meeting")
        assert (await stack.floor("give", sites["p1"].id)).status_code == 200
        await hold_the_only_slot(stack, stuck)
        share = page.locator("#share")
        await share.click()

        async def presenting() -> bool:
            return await share.get_attribute("aria-pressed") == "true"

        await eventually(presenting, HANDSHAKE_HOLD_S + 30, "the kiosk presenting")
        log = await page.evaluate("window.kiosk.log")
    finally:
        await context.close()
        await stuck.close()
    events = [entry["event"] for entry in log]
    assert "share_refused" not in events and events.count("share_started") == 1
    waits = [entry for entry in log if entry["event"] == "share_waiting"]
    assert waits, events
    for wait in waits:
        told = wait["retry_after_ms"]
        assert told >= 1000 and told <= wait["retry_in_ms"] <= told * 1.2 + 200, wait
