"""The kiosk page in headless Chromium against a worker under a join storm: the worker's 503
with Retry-After (read through CORS) makes the hall wait its turn, shown as waiting and not
as an error, then it joins with the same grant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
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


async def test_kiosk_waits_its_turn_when_the_worker_is_busy(
    stack: Stack, sites: dict[str, Any], it_user: dict[str, str], browser: Browser
) -> None:
    """Another hall holds the worker's only handshake slot (it never completes, so the slot
    is held `HANDSHAKE_HOLD_S`): the kiosk is told 503 + Retry-After, waits as told with
    jitter, says it waits its turn, reports no error, and joins once the slot is free."""
    other = await stack.join("p2")
    stuck = loopback_peer()
    stuck.addTransceiver("video", direction="recvonly")
    await stuck.setLocalDescription(await stuck.createOffer())
    async with httpx.AsyncClient(timeout=10) as http:
        held = await http.post(
            other["whep_url"],
            content=stuck.localDescription.sdp,
            headers={
                "Content-Type": "application/sdp",
                "Authorization": f"Bearer {other['token']}",
            },
        )
        assert held.status_code == 201  # answered, never connected: the slot stays taken
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
