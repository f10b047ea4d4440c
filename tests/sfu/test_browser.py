"""Headless Chromium against a real worker: whip.js publishes the fake camera and microphone,
another page views the programme, and the floor moves between the browser and an aiortc hall."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from confbridge.sites.models import Site
from confbridge.web import STATIC_DIR
from sfu.rtc.ice import nominated_datagram_transport
from tests.support.browsers import artifact, async_chromium, skip_without_chromium
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.servers import NODE_SECRET, ServerThread, Stack

skip_without_chromium()

CHAIR_CAMERA_WIDTH = 640  # Chromium's fake camera
SPEAKER_WIDTH, SPEAKER_HEIGHT = 176, 144
MEDIA_TIMEOUT_S = 15.0
SWITCH_TIMEOUT_S = 10.0

# The terminal page's shell: whip.js loaded as a module from the bridge's own static files.
PAGE_HTML = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>ConfBridge terminal</title>
<style>body { margin: 0; background: #000; } video { width: 640px; height: 480px; }</style>
</head><body>
<video id="programme" autoplay muted playsinline></video>
<script type="module">
import * as whip from "/static/js/whip.js";
window.whip = whip;
</script>
</body></html>
"""

PUBLISH_JS = """async ([url, token]) => {
  const camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  // Keep the camera's size whatever the bandwidth estimate or the machine's load: the test
  // recognises each hall's picture by its width.
  camera.getVideoTracks()[0].contentHint = "detail";
  window.session = await whip.publish(url, token, camera);
  return window.session.resourceUrl;
}"""

VIEW_JS = """async ([url, token]) => {
  window.session = await whip.view(url, token);
  document.getElementById("programme").srcObject = window.session.stream;
  return window.session.resourceUrl;
}"""

# A refused request: what the caller of whip.js gets to see.
REFUSED_JS = """async ([url, token]) => {
  const camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  try {
    await whip.publish(url, token, camera);
    return null;
  } catch (error) {
    return { name: error.name, status: error.status, reason: error.reason };
  }
}"""

# inbound-rtp per kind (the viewer) and outbound-rtp per kind (the publisher), plus the
# <video> element's decoded size.
STATS_JS = """async () => {
  const found = { connection: window.session.pc.connectionState };
  (await window.session.pc.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp" || report.type === "outbound-rtp") {
      found[`${report.type}/${report.kind}`] = {
        framesDecoded: report.framesDecoded,
        framesEncoded: report.framesEncoded,
        packetsReceived: report.packetsReceived,
        packetsSent: report.packetsSent,
        frameWidth: report.frameWidth,
        frameHeight: report.frameHeight,
        keyFramesDecoded: report.keyFramesDecoded,
        pliCount: report.pliCount,
      };
    }
  });
  found.videoWidth = document.getElementById("programme").videoWidth;
  return found;
}"""


class Terminal:
    """One browser page acting as a hall's terminal; remembers its console for failures."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.name = name
        self.console: list[str] = []
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    async def stats(self) -> dict[str, Any]:
        return await self.page.evaluate(STATS_JS)

    async def wait_for(
        self, condition: Callable[[dict[str, Any]], bool], what: str, timeout_s: float
    ) -> dict[str, Any]:
        """Poll getStats() until `condition` holds; fail with the last stats and the console."""
        deadline = time.monotonic() + timeout_s
        while True:
            stats = await self.stats()
            if condition(stats):
                return stats
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: {what} not seen in {timeout_s:.0f} s; last stats "
                    f"{json.dumps(stats)}; console {self.console}"
                )
            await self.page.wait_for_timeout(100)

    async def wait_rising(self, read: Callable[[dict[str, Any]], int | None], what: str) -> int:
        """Wait until the counter `read` is positive, then until it grows again."""
        first = await self.wait_for(lambda s: (read(s) or 0) > 0, what, MEDIA_TIMEOUT_S)
        start = read(first) or 0
        later = await self.wait_for(lambda s: (read(s) or 0) > start, f"{what} rising", 5.0)
        return read(later) or 0

    async def screenshot(self, name: str) -> None:
        await self.page.screenshot(path=artifact(name))


def _inbound(kind: str, field: str) -> Callable[[dict[str, Any]], Any]:
    return lambda stats: stats.get(f"inbound-rtp/{kind}", {}).get(field)


@pytest.fixture
def page_url(serve: Callable[..., ServerThread]) -> str:
    """A page on its own origin (not the worker's), as the control plane will serve it."""

    async def index(_request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE_HTML)

    app = Starlette(
        routes=[
            Route("/", index),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]
    )
    return serve(app).url + "/"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_chromium() as chromium:
        yield chromium


@pytest.fixture
async def terminal(
    browser: Browser, page_url: str
) -> AsyncIterator[Callable[[str], Awaitable[Terminal]]]:
    """Open a terminal page in its own browser context (as a separate hall would)."""
    opened: list[Terminal] = []

    async def open_terminal(name: str) -> Terminal:
        context = await browser.new_context(viewport={"width": 640, "height": 480})
        terminal = Terminal(await context.new_page(), name)
        opened.append(terminal)
        await terminal.page.goto(page_url)
        await terminal.page.wait_for_function("window.whip !== undefined", timeout=10_000)
        return terminal

    yield open_terminal
    for terminal in opened:
        await terminal.page.context.close()


async def _worker_peers(stack: Stack) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"{stack.worker}/rooms", headers={"Authorization": f"Bearer {NODE_SECRET}"}
        )
    return [peer for room in response.json()["rooms"] for peer in room["peers"]]


async def test_browser_publishes_views_and_follows_the_floor(
    stack: Stack,
    peers: list[WhipPublisher | WhepViewer],
    sites: dict[str, Site],
    terminal: Callable[[str], Awaitable[Terminal]],
) -> None:
    """Chair in Chromium → Chromium viewer and aiortc viewer; the floor goes to an aiortc hall."""
    chair_grant = await stack.join("hq")
    chair = await terminal("chair")
    resource = await chair.page.evaluate(
        PUBLISH_JS, [chair_grant["whip_url"], chair_grant["token"]]
    )
    assert resource.startswith(chair_grant["whip_url"] + "/")
    await chair.wait_for(
        lambda s: (
            s["connection"] == "connected"
            and (s.get("outbound-rtp/video", {}).get("framesEncoded") or 0) > 0
        ),
        "the chair sending video",
        MEDIA_TIMEOUT_S,
    )

    ward_grant = await stack.join("p1")
    ward = await terminal("ward")
    await ward.page.evaluate(VIEW_JS, [ward_grant["whep_url"], ward_grant["token"]])
    await ward.wait_rising(_inbound("video", "framesDecoded"), "video framesDecoded")
    await ward.wait_rising(_inbound("audio", "packetsReceived"), "audio packetsReceived")
    shown = await ward.wait_for(
        lambda s: (
            _inbound("video", "frameWidth")(s) == CHAIR_CAMERA_WIDTH
            and s["videoWidth"] == CHAIR_CAMERA_WIDTH
        ),
        "the chair's camera on the ward's screen",
        MEDIA_TIMEOUT_S,
    )
    assert _inbound("video", "frameHeight")(shown) == 480
    await ward.screenshot("browser-viewer-chair.png")

    # An aiortc hall decodes what Chromium encoded.
    speaker_grant = await stack.join("p2")
    hall = WhepViewer(speaker_grant["whep_url"], speaker_grant["token"])
    peers.append(hall)
    assert (await hall.start()).status_code == 201
    await until(lambda: CHAIR_CAMERA_WIDTH in hall.widths_since(0), timeout_s=MEDIA_TIMEOUT_S)
    await until(lambda: hall.audio_frames > 10, timeout_s=MEDIA_TIMEOUT_S)

    # The secretariat gives the floor to a hall publishing from aiortc: the browser follows.
    speaker = WhipPublisher(
        speaker_grant["whip_url"],
        speaker_grant["token"],
        width=SPEAKER_WIDTH,
        height=SPEAKER_HEIGHT,
    )
    peers.append(speaker)
    assert (await speaker.start()).status_code == 201
    given = await stack.floor("give", sites["p2"].id)
    assert given.status_code == 200, given.text
    switched = await ward.wait_for(
        lambda s: (
            _inbound("video", "frameWidth")(s) == SPEAKER_WIDTH and s["videoWidth"] == SPEAKER_WIDTH
        ),
        "the speaker's camera on the ward's screen",
        SWITCH_TIMEOUT_S,
    )
    await ward.wait_rising(_inbound("video", "framesDecoded"), "video framesDecoded after give")
    assert _inbound("video", "frameHeight")(switched) == SPEAKER_HEIGHT
    await ward.screenshot("browser-viewer-speaker.png")

    # Taking the floor back needs a keyframe from Chromium (the worker asks it with PLI).
    taken = await stack.floor("take")
    assert taken.json()["speaker_site_id"] == sites["hq"].id
    await ward.wait_for(
        lambda s: _inbound("video", "frameWidth")(s) == CHAIR_CAMERA_WIDTH,
        "the chair's camera again after take",
        SWITCH_TIMEOUT_S,
    )

    # Leaving deletes both browser sessions on the worker; the aiortc halls stay.
    for page in (ward, chair):
        await page.page.evaluate("whip.stop()")
    remaining = await _worker_peers(stack)
    assert len(remaining) == 2, remaining
    assert {p["site_id"] for p in remaining} == {sites["p2"].id}
    # Attendance learns that both left on purpose, not that their links dropped.
    deadline = time.monotonic() + MEDIA_TIMEOUT_S
    while True:
        events = await stack.events()
        reasons = {e["site_id"]: e["detail"].get("reason") for e in events if e["type"] == "left"}
        if {sites["hq"].id, sites["p1"].id} <= reasons.keys():
            break
        assert time.monotonic() < deadline, events
        await asyncio.sleep(0.2)
    assert reasons[sites["hq"].id] == reasons[sites["p1"].id] == "deleted"


async def test_browser_whip_error_carries_status_and_reason(
    stack: Stack, terminal: Callable[[str], Awaitable[Terminal]]
) -> None:
    """A refused offer reaches the page as a WhipError with the worker's status and reason."""
    grant = await stack.join("p1")
    page = await terminal("refused")
    forged = await page.page.evaluate(REFUSED_JS, [grant["whip_url"], "x.y.z"])
    assert forged is not None and forged["name"] == "WhipError"
    assert forged["status"] == 401
    async with httpx.AsyncClient(timeout=10) as http:
        direct = await http.post(
            grant["whip_url"],
            content="v=0",
            headers={"Authorization": "Bearer x.y.z", "Content-Type": "application/sdp"},
        )
    assert direct.status_code == 401
    assert forged["reason"] == direct.text.strip()  # the worker's own words, on one line
    other_room = grant["whip_url"].rsplit("/", 1)[0] + "/occ-999999"
    wrong_room = await page.page.evaluate(REFUSED_JS, [other_room, grant["token"]])
    assert wrong_room is not None and wrong_room["status"] == 403, wrong_room


# The worker's port on the ICE candidate pair Chromium selected.
SELECTED_REMOTE_PORT_JS = """async () => {
  const stats = await window.session.pc.getStats();
  for (const report of stats.values()) {
    if (report.type === "transport" && report.selectedCandidatePairId) {
      const pair = stats.get(report.selectedCandidatePairId);
      return stats.get(pair.remoteCandidateId).port;
    }
  }
  return null;
}"""


async def test_browser_views_through_the_worker_single_port(
    stack: Stack,
    peers: list[WhipPublisher | WhepViewer],
    terminal: Callable[[str], Awaitable[Terminal]],
) -> None:
    """Single-port mode (the default, the worker an ICE-lite agent): Chromium and an aiortc
    hall view through the same worker port the publisher sends to, and both decode."""
    assert stack.settings is not None and stack.settings.sfu.udp_mode == "single"
    port = stack.settings.sfu.udp_port
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    hall_grant = await stack.join("p1")
    hall = WhepViewer(hall_grant["whep_url"], hall_grant["token"])
    peers.append(hall)
    assert (await hall.start()).status_code == 201
    ward_grant = await stack.join("p2")
    ward = await terminal("ward")
    await ward.page.evaluate(VIEW_JS, [ward_grant["whep_url"], ward_grant["token"]])
    await ward.wait_rising(_inbound("video", "framesDecoded"), "video frames decoded")
    await until(lambda: len(hall.frames) > 10, timeout_s=MEDIA_TIMEOUT_S)
    stats = await ward.wait_for(lambda s: s.get("videoWidth") == 320, "the chair's picture", 10)
    assert stats["connection"] == "connected"
    assert await ward.page.evaluate(SELECTED_REMOTE_PORT_JS) == port
    # the worker is an ICE-lite agent there: Chromium nominated the pair, the worker sent no check
    remote_sdp = await ward.page.evaluate("() => window.session.pc.remoteDescription.sdp")
    assert "a=ice-lite" in remote_sdp.splitlines()
    used = [
        nominated_datagram_transport(peer.pc.getTransceivers()[0].sender.transport)
        for peer in (chair, hall)
    ]
    assert [selected[1][1] for selected in used if selected is not None] == [port, port]
