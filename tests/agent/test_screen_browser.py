"""The agent's hall screen (`confbridge terminal --screen`) with Debian's Chromium, headless and
with fake devices: between meetings the kiosk window shows the clock and the next meetings in
Vietnamese; at the start it plays the chair's programme with sound; a killed or hung Chromium is
started again and plays it again; after the end the clock is back. The test reaches the window
over a DevTools port it adds with `--screen-flag` (the agent itself talks to Chromium over a
pipe)."""

from __future__ import annotations

import io
import os
import re
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import av
import httpx
import pytest
from playwright.async_api import Page, async_playwright

from confbridge.db import Database
from confbridge.meetings.models import Booking, Occurrence
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from tests.support.browsers import CHROMIUM, CHROMIUM_ARGS, artifact, skip_without_chromium
from tests.support.factories import move_occurrence, soon
from tests.support.peers import WhepViewer, WhipPublisher
from tests.support.polling import eventually
from tests.support.servers import AgentProcess, Stack, attendance_of, free_port, pairing_code

skip_without_chromium()

CHAIR_WIDTH = 160  # tests.support.peers.WhipPublisher
TITLE = "Giao ban trực tuyến"  # tests.support.factories.open_occurrence
NO_MEETING = "Không có cuộc họp sắp tới"
# Words of the English kiosk: none may show on the Vietnamese screen.
ENGLISH = ("Terminal", "Next meeting", "Agenda", "Starts in", "In progress", "Speaking", "Pair")
# A hall's TV: headless Chromium has no screen, a kiosk window fills the one it is told of.
SCREEN = "--screen-info={1920x1080}"
CLOCK_MIN_PX = 100  # the clock read from across a hall
SPEAKER_MIN_PX = 50
# From the hang on, the meeting lasts this long: time for the window to come back and play.
MEETING_LEFT_S = 50


@pytest.fixture
def stack_options() -> dict[str, Any]:
    # no time to run over: the screen goes back to the clock at the end itself
    return {"settings": {"meetings": {"overrun_grace_min": 0}}}


def end_occurrence(database: Database, occurrence_id: int, end_at: datetime) -> datetime:
    """Let the occurrence (and its bookings) end at `end_at`."""
    with database.session() as session:
        occurrence = session.get(Occurrence, occurrence_id)
        assert occurrence is not None
        occurrence.end_at = end_at
        for booking in session.query(Booking).filter_by(occurrence_id=occurrence_id):
            booking.end_at = end_at
        session.commit()
    return end_at


def screen_args(stack: Stack, code: str, tmp_path: Path, devtools_port: int) -> list[str]:
    flags = [*CHROMIUM_ARGS, "--headless", SCREEN, f"--remote-debugging-port={devtools_port}"]
    return [
        "--server", stack.control,
        "--pair", code,
        "--token-file", str(tmp_path / "token"),
        "--heartbeat-interval-s", "1",
        "--screen",
        "--chromium", str(CHROMIUM),
        "--screen-profile", str(tmp_path / "profile"),
        "--screen-check-interval-s", "1",
        *(f"--screen-flag={flag}" for flag in flags),
    ]  # fmt: skip


@asynccontextmanager
async def kiosk_window(port: int, showing: str = "/terminal") -> AsyncIterator[Page]:
    """The agent's kiosk window, reached over the DevTools port the test added, once it shows
    a URL containing `showing`."""
    async with async_playwright() as playwright:

        async def connected() -> Any:
            try:
                return await playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
            except Exception:  # not listening yet
                return None

        browser = await eventually(connected, 30, "the kiosk window's DevTools port")

        async def kiosk_page() -> Page | None:
            pages = [p for c in browser.contexts for p in c.pages if showing in p.url]
            return pages[0] if pages else None

        try:
            yield await eventually(kiosk_page, 20, "the kiosk page in the window")
        finally:
            await browser.close()  # only the DevTools connection: the agent owns the window


async def shown(page: Page) -> dict[str, Any]:
    return await page.evaluate(
        """() => {
            if (!window.kiosk) return {state: null};  // still loading
            const $ = (id) => document.getElementById(id);
            const video = $("programme");
            const style = (id) => parseFloat(getComputedStyle($(id)).fontSize);
            const audio = video.srcObject ? video.srcObject.getAudioTracks() : [];
            return {
                state: window.kiosk.state, managed: document.body.dataset.managed,
                lang: document.documentElement.lang, text: document.body.innerText,
                clock: document.getElementById("clock").textContent,
                date: document.getElementById("date").textContent,
                next: document.getElementById("next-title").textContent,
                countdown: document.getElementById("countdown").textContent,
                agenda: document.getElementById("agenda").textContent,
                selftest: document.getElementById("selftest").hidden,
                clock_px: style("clock"), speaker_px: style("speaker"),
                speaker: document.getElementById("speaker").textContent,
                speaker_shown: $("speaker").getBoundingClientRect().height > 0,
                width: video.videoWidth, time: video.currentTime,
                frames: video.getVideoPlaybackQuality().totalVideoFrames,
                paused: video.paused, muted: video.muted, volume: video.volume,
                audio: audio.length > 0 && audio[0].readyState === "live",
                viewport: [innerWidth, innerHeight],
            };
        }"""
    )


async def screenshot_levels(page: Page, name: str) -> tuple[float, float]:
    """The shares of the window's pixels that are not black (luma > 12: the page's dark blue
    is about 26) and that are bright (> 200: text, a picture), from a PNG screenshot."""
    png = await page.screenshot(path=artifact(name))
    with av.open(io.BytesIO(png)) as image:
        frame = next(image.decode(video=0))
    luma = frame.to_ndarray(format="gray")
    return float((luma > 12).mean()), float((luma > 200).mean())


async def playing(page: Page) -> dict[str, Any]:
    """The programme decoded and advancing, with sound, the speaker's name on it."""

    async def in_meeting() -> dict[str, Any] | None:
        seen = await shown(page)
        ok = seen["state"] == "in_meeting" and seen["width"] == CHAIR_WIDTH
        return seen if ok and seen["frames"] > 0 else None

    first = await eventually(in_meeting, 60, "the programme in the kiosk window")

    async def advanced() -> dict[str, Any] | None:
        seen = await shown(page)
        ok = seen["frames"] >= first["frames"] + 10 and seen["time"] > first["time"]
        return seen if ok else None

    later = await eventually(advanced, 10, "the programme's frames advancing")
    assert not later["paused"] and not later["muted"] and later["volume"] > 0, "no sound"
    assert later["audio"], "the programme has no live audio track"
    return later


async def test_screen_shows_the_hall_its_meetings_and_plays_the_programme(
    stack: Stack,
    database: Database,
    sites: dict[str, Site],
    it_user: dict[str, str],
    agents: Callable[[list[str]], AgentProcess],
    peers: list[WhipPublisher | WhepViewer],
    tmp_path: Path,
) -> None:
    """Idle: clock and next meetings in Vietnamese; start: programme with sound; Chromium
    killed, then hung: started again, programme again; the end: the clock again; the agent
    never joins by itself."""
    move_occurrence(database, stack.occurrence_id, soon(30))
    grant = await stack.join("hq")
    chair = WhipPublisher(grant["whip_url"], grant["token"])
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    port = free_port()
    agent = agents(screen_args(stack, pairing_code(stack, it_user, sites["p1"]), tmp_path, port))
    paired = await agent.wait_for("paired", 20)
    started = await agent.wait_for("screen_started", 30)
    console: list[str] = []
    token = (tmp_path / "token").read_text().strip()
    cmdline = Path(f"/proc/{started['pid']}/cmdline").read_bytes()
    assert token.encode() not in cmdline, "the token on Chromium's command line"

    async with kiosk_window(port) as page:
        page.on("console", lambda message: console.append(message.text))
        assert page.url == f"{stack.control}/terminal", "the token or a code in the URL"

        async def idle() -> dict[str, Any] | None:
            seen = await shown(page)
            ok = seen["state"] == "idle" and TITLE in seen["agenda"] and seen["next"] == TITLE
            return seen if ok else None

        try:
            before = await eventually(idle, 30, "the hall's next meetings in the window")
        except AssertionError:
            print(await shown(page), console, "\n".join(agent.raw[-30:]))
            raise
        assert before["viewport"] == [1920, 1080] and before["managed"] == "agent"
        assert re.fullmatch(r"\d\d:\d\d:\d\d", before["clock"]), before["clock"]
        assert "tháng" in before["date"] and before["lang"] == "vi"
        assert before["next"] == TITLE and before["countdown"].startswith("Bắt đầu sau")
        assert before["clock_px"] >= CLOCK_MIN_PX and before["selftest"]
        assert not [word for word in ENGLISH if word in before["text"]], before["text"]
        lit, bright = await screenshot_levels(page, "screen-idle.png")
        assert lit > 0.95 and bright > 0.01, (lit, bright)  # a lit page with words on it

        await playing(page)

        async def captioned() -> dict[str, Any] | None:
            seen = await shown(page)
            return seen if sites["hq"].name in seen["speaker"] else None

        meeting = await eventually(captioned, 10, "the speaker's name on the programme")
        assert meeting["speaker_shown"]
        assert meeting["speaker"].startswith("Đang phát biểu")
        assert meeting["speaker_px"] >= SPEAKER_MIN_PX
        lit, bright = await screenshot_levels(page, "screen-programme.png")
        assert lit > 0.3 and bright > 0.01, (lit, bright)

    # the agent reports for the window: online, in the meeting; it did not join by itself
    async def reported() -> dict[str, Any] | None:
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(
                f"{stack.control}/api/v1/terminals?site_id={sites['p1'].id}", headers=it_user
            )
        (mine,) = [t for t in answer.json()["items"] if t["id"] == paired["terminal_id"]]
        return mine if mine["occurrence_id"] == stack.occurrence_id else None

    mine = await eventually(reported, 15, "the screen's meeting in the heartbeat")
    assert mine["kind"] == "agent" and mine["status"] == "online" and mine["camera"]
    assert agent.events("joined") == []

    # Chromium killed: started again, and back in the meeting
    os.kill(started["pid"], signal.SIGKILL)
    await agent.wait_for("screen_restart", 15)
    again = await agent.wait_for("screen_started", 30, after=1)
    assert again["pid"] != started["pid"]
    async with kiosk_window(port) as page:
        await playing(page)

    # Chromium hung (stopped): it stops answering, is ended and started again; the meeting now
    # ends soon (the new window reads that end), and then the screen goes back to the clock
    end_at = end_occurrence(database, stack.occurrence_id, soon(MEETING_LEFT_S))
    os.kill(again["pid"], signal.SIGSTOP)
    await agent.wait_for("screen_hung", 30)
    third = await agent.wait_for("screen_started", 40, after=2)
    async with kiosk_window(port) as page:
        await playing(page)

        async def after_the_meeting() -> dict[str, Any] | None:
            seen = await shown(page)
            # "ended" says so for a while, over the same clock and agenda
            ok = seen["state"] in ("idle", "ended") and seen["next"] == NO_MEETING
            return seen if ok else None

        after = await eventually(after_the_meeting, MEETING_LEFT_S + 20, "the idle screen")
        assert utcnow() >= end_at
        assert re.fullmatch(r"\d\d:\d\d:\d\d", after["clock"]), after["clock"]
        assert not [word for word in ENGLISH if word in after["text"]], after["text"]
        lit, bright = await screenshot_levels(page, "screen-after.png")
        assert lit > 0.95 and bright > 0.01, (lit, bright)

    # stopped like systemd does: the window goes with the agent
    assert agent.stop() == 0

    async def gone() -> bool:
        return not Path(f"/proc/{third['pid']}").exists()

    await eventually(gone, 10, "Chromium ended with the agent")


async def test_screen_shows_its_standby_page_while_the_control_plane_is_away(
    stack: Stack,
    database: Database,
    sites: dict[str, Site],
    it_user: dict[str, str],
    agents: Callable[[list[str]], AgentProcess],
    tmp_path: Path,
) -> None:
    """Chromium started again while the control plane is away: the agent's standby page (the
    hall, a running clock, the next meeting it read before, in Vietnamese); back: the kiosk."""
    start_at = move_occurrence(database, stack.occurrence_id, soon(900)) - timedelta(hours=1)
    port = free_port()
    agent = agents(screen_args(stack, pairing_code(stack, it_user, sites["p1"]), tmp_path, port))
    started = await agent.wait_for("screen_started", 30)
    await agent.wait_for("screen_state", 30, where=lambda e: e["state"] == "idle")
    assert stack.server is not None
    stack.server.stop()
    os.kill(started["pid"], signal.SIGKILL)
    await agent.wait_for("screen_standby", 30)
    async with kiosk_window(port, showing="data:text/html") as page:

        async def clock() -> str:
            return str(await page.evaluate("document.getElementById('clock').textContent"))

        first = await eventually(clock, 10, "the standby clock")
        assert re.fullmatch(r"\d\d:\d\d:\d\d", first), first
        await eventually(lambda: _changed(clock, first), 5, "the standby clock running")
        text = await page.evaluate("document.body.innerText")
        assert sites["p1"].name in text and TITLE in text and "Đang kết nối" in text
        local = start_at.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
        assert f"{local:%d/%m %H:%M}" in text
        assert not [word for word in ENGLISH if word in text], text
        lit, bright = await screenshot_levels(page, "screen-standby.png")
        assert lit > 0.95 and bright > 0.01, (lit, bright)

    stack.server.start()
    await agent.wait_for("screen_reload", 30)
    async with kiosk_window(port) as page:

        async def idle() -> dict[str, Any] | None:
            seen = await shown(page)
            return seen if seen["state"] == "idle" and seen["next"] == TITLE else None

        await eventually(idle, 30, "the kiosk page again")


async def _changed(read: Callable[[], Any], before: str) -> bool:
    return bool(await read() != before)


async def test_screen_stopped_mid_meeting_leaves_it_on_purpose(
    stack: Stack,
    sites: dict[str, Site],
    it_user: dict[str, str],
    agents: Callable[[list[str]], AgentProcess],
    peers: list[WhipPublisher | WhepViewer],
    tmp_path: Path,
) -> None:
    """Stopped like systemd does, in a meeting: the page leaves (WHIP/WHEP DELETE) before the
    window closes, so the attendance shows a leave, not a lost connection."""
    grant = await stack.join("hq")
    chair = WhipPublisher(grant["whip_url"], grant["token"])
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    port = free_port()
    agent = agents(screen_args(stack, pairing_code(stack, it_user, sites["p1"]), tmp_path, port))
    started = await agent.wait_for("screen_started", 30)
    async with kiosk_window(port) as page:
        await playing(page)

    async def joined() -> dict[str, Any] | None:
        record = await attendance_of(stack, sites["p1"])
        return record if record["first_join_at"] else None

    await eventually(joined, 15, "the hall in the attendance")
    assert agent.stop() == 0
    assert not Path(f"/proc/{started['pid']}").exists()

    async def left() -> dict[str, Any] | None:
        record = await attendance_of(stack, sites["p1"])
        return record if record["last_leave_at"] else None

    record = await eventually(left, 10, "the leave in the attendance")
    assert record["last_leave_reason"] == "deleted"
