"""The hall's screen: a Chromium kiosk window on `/terminal` that the agent keeps up.

With a screen the page does the media (it joins each meeting, publishes the hall's camera and
plays the programme full-screen with sound) and shows the clock and the next meetings between
them; the agent does not join itself. It starts Chromium, hands the page the terminal token over
the DevTools pipe (never in a URL or on a command line), checks every few seconds that the page
answers, and starts Chromium again, with back-off, when it exits or hangs. While the kiosk page
cannot be loaded (the control plane is down) the window shows the agent's standby page: the
clock and the next meetings from the agenda the agent read last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from confbridge.agent.backoff import Backoff
from confbridge.agent.client import AgendaView, ControlClient, ControlError, Revoked
from confbridge.agent.devtools import DevToolsError, DevToolsPipe
from confbridge.agent.standby import standby_url
from confbridge.timeutil import utcnow

log = logging.getLogger("confbridge.agent")

CHROMIUM = "/usr/bin/chromium"
# Where the page keeps the token and learns that the agent reports for it (kiosk.js).
TOKEN_KEY = "confbridge.terminal.token"
MANAGED_KEY = "confbridge.terminal.managed_by"
KIOSK_FLAGS = (
    "--kiosk",
    "--autoplay-policy=no-user-gesture-required",  # the programme plays with sound, unclicked
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-default-browser-check",
    "--noerrdialogs",
    "--disable-session-crashed-bubble",  # no "restore pages?" after a kill
    "--disable-infobars",
    "--disable-translate",
    "--disable-features=Translate,MediaRouter",
    "--password-store=basic",
    "--lang=vi",
    "--ozone-platform-hint=auto",  # Wayland where the session has it, else X11
)
SCREEN_CHECK_INTERVAL_S = 5.0
# This many unanswered checks in a row: the window is hung and is started again.
HUNG_AFTER_CHECKS = 3
# This many checks without the kiosk page (an error page, the server was down): load it again.
RELOAD_AFTER_CHECKS = 3
# A window that stayed up this long was a success: the back-off starts again from 1 s.
STABLE_SCREEN_S = 60.0
PAGE_WAIT_S = 15.0
LEAVE_TIMEOUT_S = 5.0
STOP = "window.kiosk && window.kiosk.stop ? window.kiosk.stop() : null"
# The agenda kept for the standby page is read again this often.
AGENDA_REFRESH_S = 60.0
SNAPSHOT = """(() => {
  const k = window.kiosk;
  if (!k) return null;
  return {state: k.state, occurrence_id: k.occurrenceId, last_error: k.lastError,
          camera: Boolean(k.devices && k.devices.camera),
          microphone: Boolean(k.devices && k.devices.microphone)};
})()"""


@dataclass
class ScreenOptions:
    """How the kiosk window is started."""

    chromium: str = CHROMIUM
    profile_dir: Path = Path("screen-profile")
    extra_flags: list[str] = field(default_factory=list)
    check_interval_s: float = SCREEN_CHECK_INTERVAL_S
    restart_max_s: float = 30.0


@dataclass
class PageState:
    """What the kiosk page said at the last check."""

    state: str = ""
    occurrence_id: int | None = None
    last_error: str | None = None
    camera: bool = False
    microphone: bool = False


def page_origin(server: str) -> str:
    """The page's origin as the browser writes it (`location.origin`): the default port left out."""
    parts = urlsplit(server)
    host = (parts.hostname or "").lower()
    netloc = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}"


def token_script(origin: str, token: str) -> str:
    """Run before every document: on the kiosk's origin only, store the token (a reload, or a
    token paired again, finds the current one) and say that the agent sends the heartbeats."""
    return (
        f"if (location.origin === {json.dumps(origin)}) {{ try {{"
        f" localStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(token)});"
        f" localStorage.setItem({json.dumps(MANAGED_KEY)}, 'agent');"
        " } catch (e) {} }"
    )


def said(pipe: DevToolsPipe) -> str:
    """ ": <Chromium's last line on stderr>", or "" when it said nothing."""
    words = pipe.last_words()
    return f": {words}" if words else ""


class KioskScreen:
    """Keeps one Chromium kiosk window on the terminal page until `run` is cancelled."""

    def __init__(self, client: ControlClient, options: ScreenOptions) -> None:
        assert client.token, "the screen needs the terminal's token"
        self._client = client
        self._server = client.server
        self._token = client.token
        self._options = options
        self._agenda: AgendaView | None = None  # the last one read, for the standby page
        self._agenda_at = 0.0
        self.standby = False  # the standby page is shown (the kiosk page could not be loaded)
        self.url = f"{self._server}/terminal"
        self.page: PageState | None = None
        self.error: str | None = None
        self.starts = 0
        self._pipe: DevToolsPipe | None = None
        self._session_id: str | None = None
        # called when the page's state or meeting changes
        self.on_change: Callable[[], None] = lambda: None

    def argv(self) -> list[str]:
        profile = self._options.profile_dir.resolve()
        return [
            self._options.chromium,
            *KIOSK_FLAGS,
            f"--user-data-dir={profile}",
            *self._options.extra_flags,
            "about:blank",
        ]

    async def run(self) -> None:
        """Start the window, watch it, and start it again after it exits or hangs."""
        backoff = Backoff(1.0, self._options.restart_max_s)
        try:
            while True:
                started_at = time.monotonic()
                reason = await self._one_window()
                self.page = None
                if time.monotonic() - started_at > STABLE_SCREEN_S:
                    backoff.reset()
                delay = backoff.next_delay_s()
                self.error = f"screen: {reason}"
                log.warning(
                    "the screen's window %s; starting it again in %.1f s",
                    reason,
                    delay,
                    extra={"event": "screen_restart", "retry_in_s": round(delay, 1)},
                )
                await asyncio.sleep(delay)
        finally:
            await self._stop()

    async def _leave(self) -> None:
        """Let the page leave its meeting on purpose (the attendance shows a leave, not a
        lost connection) before the window is closed."""
        if self._pipe is None or self._session_id is None:
            return
        with contextlib.suppress(DevToolsError):
            await self._pipe.send(
                "Runtime.evaluate",
                {"expression": STOP, "awaitPromise": True},
                session_id=self._session_id,
                timeout_s=LEAVE_TIMEOUT_S,
            )

    async def _one_window(self) -> str:
        """Start Chromium, show the page and watch it; why it ended ("exited …", "hung")."""
        try:
            self._options.profile_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._pipe = await DevToolsPipe.launch(self.argv(), env=dict(os.environ))
        except OSError as exc:
            return f"could not be started ({exc})"
        self.starts += 1
        pipe = self._pipe
        log.info(
            "screen started: %s (pid %s)",
            self.url,
            pipe.process.pid,
            extra={"event": "screen_started", "pid": pipe.process.pid, "starts": self.starts},
        )
        try:
            session_id = await self._show(pipe)
            return await self._watch(pipe, session_id)
        except DevToolsError as exc:
            await asyncio.sleep(0.1)  # its last words reach the stderr reader
            return f"failed ({exc}{said(pipe)})"
        except asyncio.CancelledError:
            await self._leave()  # the agent stops (SIGTERM): the page leaves its meeting first
            raise
        finally:
            await self._stop()

    async def _stop(self) -> None:
        self._session_id = None
        if self._pipe is not None:
            pipe, self._pipe = self._pipe, None
            await pipe.close()

    async def _page_target(self, pipe: DevToolsPipe) -> str:
        deadline = time.monotonic() + PAGE_WAIT_S
        while time.monotonic() < deadline:
            targets = await pipe.send("Target.getTargets")
            pages = [t for t in targets.get("targetInfos", []) if t.get("type") == "page"]
            if pages:
                return str(pages[0]["targetId"])
            await asyncio.sleep(0.2)
        raise DevToolsError(f"no page in the window after {PAGE_WAIT_S:.0f} s")

    async def _show(self, pipe: DevToolsPipe) -> str:
        """Attach to the window's page, give it the token and the camera, load the kiosk."""
        target_id = await self._page_target(pipe)
        attached = await pipe.send(
            "Target.attachToTarget", {"targetId": target_id, "flatten": True}
        )
        session_id = self._session_id = str(attached["sessionId"])
        origin = page_origin(self._server)
        await pipe.send("Page.enable", session_id=session_id)  # else no script on new documents
        await pipe.send(
            "Page.addScriptToEvaluateOnNewDocument",
            {"source": token_script(origin, self._token)},
            session_id=session_id,
        )
        # the hall's own camera and microphone, for this origin only (no prompt, nobody to click)
        await pipe.send(
            "Browser.grantPermissions",
            {"origin": origin, "permissions": ["videoCapture", "audioCapture"]},
        )
        await self._load(pipe, session_id)
        return session_id

    async def _reachable(self) -> bool:
        """Whether the control plane answers (the agenda it gives is kept for standby)."""
        try:
            await self._read_agenda()
        except Revoked:
            return True  # the page shows that itself; the agent stops at its next heartbeat
        except ControlError:
            return False
        return True

    async def _read_agenda(self) -> None:
        self._agenda = await self._client.agenda()
        self._agenda_at = time.monotonic()

    async def _load(self, pipe: DevToolsPipe, session_id: str) -> None:
        """The kiosk page when the control plane answers, else the standby page."""
        if await self._reachable():
            if self.standby:
                log.info("the control plane answers; loading the kiosk page",
                         extra={"event": "screen_reload"})  # fmt: skip
            self.standby = False
            await self._navigate(pipe, session_id, self.url)
            return
        if not self.standby:
            log.warning("the control plane does not answer; showing the standby page",
                        extra={"event": "screen_standby"})  # fmt: skip
        self.standby = True
        agenda = self._agenda
        url = standby_url(
            agenda.site_name if agenda else "", agenda.items if agenda else [], utcnow()
        )
        await self._navigate(pipe, session_id, url)

    async def _navigate(self, pipe: DevToolsPipe, session_id: str, url: str) -> None:
        answer = await pipe.send("Page.navigate", {"url": url}, session_id=session_id)
        if answer.get("errorText"):
            log.warning(
                "the screen could not load %s: %s",
                url if url.startswith("http") else "the standby page",
                answer["errorText"],
                extra={"event": "screen_load_failed"},
            )

    async def _snapshot(self, pipe: DevToolsPipe, session_id: str) -> dict[str, Any] | None:
        answer = await pipe.send(
            "Runtime.evaluate",
            {"expression": SNAPSHOT, "returnByValue": True},
            session_id=session_id,
            timeout_s=self._options.check_interval_s,
        )
        value = answer.get("result", {}).get("value")
        return value if isinstance(value, dict) else None

    async def _watch(self, pipe: DevToolsPipe, session_id: str) -> str:
        """Check the page every few seconds until the browser exits or stops answering."""
        exited = asyncio.ensure_future(pipe.process.wait())
        unanswered = missing = 0
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(exited), self._options.check_interval_s)
                if exited.done() or pipe.closed.is_set():
                    await asyncio.sleep(0.1)  # its last words reach the stderr reader
                    return f"exited (status {pipe.process.returncode}{said(pipe)})"
                try:
                    seen = await self._snapshot(pipe, session_id)
                except DevToolsError as exc:
                    unanswered += 1
                    if unanswered >= HUNG_AFTER_CHECKS:
                        log.error(
                            "the screen does not answer: %s", exc, extra={"event": "screen_hung"}
                        )
                        return "hung"
                    continue
                unanswered = 0
                if seen is None:
                    missing += 1
                    if missing >= RELOAD_AFTER_CHECKS:
                        missing = 0
                        await self._load(pipe, session_id)
                    continue
                missing = 0
                self._note(seen)
                if time.monotonic() - self._agenda_at > AGENDA_REFRESH_S:
                    with contextlib.suppress(ControlError):
                        await self._read_agenda()
        finally:
            exited.cancel()

    def _note(self, seen: dict[str, Any]) -> None:
        page = PageState(
            state=str(seen.get("state") or ""),
            occurrence_id=seen.get("occurrence_id"),
            last_error=seen.get("last_error"),
            camera=bool(seen.get("camera")),
            microphone=bool(seen.get("microphone")),
        )
        before = self.page
        self.page = page
        self.error = None
        if before is None or (before.state, before.occurrence_id) != (
            page.state,
            page.occurrence_id,
        ):
            self.on_change()
            log.info(
                "screen: %s",
                page.state,
                extra={
                    "event": "screen_state",
                    "state": page.state,
                    "occurrence_id": page.occurrence_id,
                },
            )
