"""The agent's loops: heartbeats, the agenda, and attending each meeting from start to end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import urlparse

from confbridge.agent.backoff import Backoff, retry_after_delay_s, retry_delay_s
from confbridge.agent.client import AgendaEntry, ControlClient, ControlError, Revoked
from confbridge.agent.content import CONTENT_RETRY_S, ContentSource, present
from confbridge.agent.media import MediaSources
from confbridge.agent.routes import IceRoutes, TurnTransport, ladder
from confbridge.agent.screen import KioskScreen
from confbridge.agent.session import MediaNotUp, MeetingSession, SessionError
from confbridge.timeutil import utcnow
from confbridge_kernel import __version__
from confbridge_kernel.contracts import JoinInfo

log = logging.getLogger("confbridge.agent")
T = TypeVar("T")


AGENDA_INTERVAL_S = 30.0
# A new grant is asked for this long before the current one expires.
GRANT_RENEW_MARGIN_S = 120.0
# A session that lasted this long was a success: the back-off starts again from its first step.
STABLE_SESSION_S = 30.0
IN_PERSON = "in_person"


@dataclass
class AgentOptions:
    server: str
    heartbeat_interval_s: float | None = None  # None: what the control plane says
    agenda_interval_s: float = AGENDA_INTERVAL_S
    # Join this long before the start (the bridge accepts joins from sfu.join_early_min before).
    join_early_s: float = 0.0
    relay_only: bool = False
    # the one TURN transport to use (None: the ladder of `confbridge.agent.routes`)
    turn_transport: TurnTransport | None = None
    # verifies `turns:` servers (None: asyncio's default, the system's CAs)
    turn_tls: ssl.SSLContext | None = None
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 8.0
    # how often a hall with content to present asks again while it may not present
    content_retry_s: float = CONTENT_RETRY_S


class TerminalAgent:
    """Runs until cancelled, or until its token stops working (`run` then raises Revoked).

    With a `screen`, the kiosk window it keeps up attends the meetings (and plays the
    programme on the hall's display); the agent reports for it and does not join itself."""

    def __init__(
        self,
        client: ControlClient,
        media: MediaSources,
        options: AgentOptions,
        screen: KioskScreen | None = None,
        content: ContentSource | None = None,
    ) -> None:
        self._client = client
        self._media = media
        # what the hall presents in each meeting it attends (None: nothing)
        self._content = content
        self._options = options
        self._screen = screen
        # direct UDP, then relay over TURN/TCP and TURN/TLS; shared by meeting and content
        self._routes = IceRoutes(
            ladder(relay_only=options.relay_only, turn_transport=options.turn_transport)
        )
        self._occurrence_id: int | None = None
        self._last_error: str | None = None
        self._heartbeat_interval_s = options.heartbeat_interval_s or 30.0
        # set on a join or a leave: the next heartbeat goes at once, so IT staff see it
        self._beat_now = asyncio.Event()
        if screen is not None:
            # the page joined or left a meeting: IT staff see it at once
            screen.on_change = self._beat_now.set

    # --- the whole life ---------------------------------------------------------------------

    async def run(self) -> None:
        me = await self._retrying(self._client.me, "identity")
        if self._options.heartbeat_interval_s is None:
            self._heartbeat_interval_s = float(me.heartbeat_interval_s)
        log.info(
            "terminal %s of site %s (%s) started, version %s",
            me.terminal_id,
            me.site_id,
            me.site_name,
            __version__,
            extra={"event": "started", "terminal_id": me.terminal_id, "site_id": me.site_id},
        )
        heartbeats = asyncio.create_task(self._heartbeats(), name="agent-heartbeats")
        attending = self._screen.run() if self._screen is not None else self._schedule()
        schedule = asyncio.create_task(attending, name="agent-schedule")
        try:
            # whichever ends first (a revoked token) ends the agent
            done, _pending = await asyncio.wait(
                {heartbeats, schedule}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                task.result()
        finally:
            for task in (heartbeats, schedule):
                task.cancel()
            await asyncio.gather(heartbeats, schedule, return_exceptions=True)

    async def _retrying(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Call until the control plane answers (a revoked token is final)."""
        backoff = Backoff(self._options.backoff_initial_s, self._options.backoff_max_s)
        while True:
            try:
                return await call()
            except Revoked:
                raise
            except ControlError as exc:
                delay = retry_delay_s(backoff, exc)
                self._note_error(f"{what}: {exc}")
                log.warning(
                    "%s failed: %s; again in %.1f s",
                    what,
                    exc,
                    delay,
                    extra={"event": "control_error", "retry_in_s": round(delay, 1)},
                )
                await asyncio.sleep(delay)

    def _note_error(self, message: str) -> None:
        self._last_error = message[:500]

    # --- heartbeats -------------------------------------------------------------------------

    def _local_ip(self) -> str | None:
        """The address this machine uses to reach the server (no packet is sent)."""
        host = urlparse(self._options.server).hostname or "127.0.0.1"
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((host, 9))
                return str(probe.getsockname()[0])
        except OSError:
            return None

    def heartbeat_report(self) -> dict[str, object]:
        if self._screen is not None:
            return self._screen_report()
        return {
            "kind": "agent",
            "version": __version__,
            "ip": self._local_ip(),
            "camera": self._media.camera_ok,
            "microphone": self._media.microphone_ok,
            "occurrence_id": self._occurrence_id,
            "last_error": self._last_error or self._media.error,
        }

    def _screen_report(self) -> dict[str, object]:
        """What the kiosk window said at its last check (its camera is the hall's camera)."""
        assert self._screen is not None
        page = self._screen.page
        error = self._screen.error or (page.last_error if page else None)
        return {
            "kind": "agent",
            "version": __version__,
            "ip": self._local_ip(),
            "camera": page.camera if page else False,
            "microphone": page.microphone if page else False,
            "occurrence_id": page.occurrence_id if page else None,
            "last_error": error[:500] if error else None,
        }

    async def _heartbeats(self) -> None:
        failing = False
        while True:
            try:
                await self._client.heartbeat(self.heartbeat_report())
                if failing:
                    log.info("heartbeat delivered again", extra={"event": "heartbeat_ok"})
                failing = False
            except Revoked:
                log.error(
                    "the terminal token was refused (revoked or re-paired); stopping",
                    extra={"event": "revoked"},
                )
                raise
            except ControlError as exc:
                if not failing:
                    log.warning("heartbeat failed: %s", exc, extra={"event": "heartbeat_failed"})
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._beat_now.wait(), self._heartbeat_interval_s)
            self._beat_now.clear()

    # --- the agenda -------------------------------------------------------------------------

    def _current(self, items: list[AgendaEntry], now: datetime) -> AgendaEntry | None:
        """The meeting to be in now; one running over its end gives way to the next."""
        early = timedelta(seconds=self._options.join_early_s)
        on = [i for i in items if i.mode != IN_PERSON and i.start_at - early <= now < i.leave_at]
        scheduled = [i for i in on if now < i.end_at]
        return (scheduled or on or [None])[0]

    async def _schedule(self) -> None:
        announced: tuple[int, datetime] | None = None
        while True:
            agenda = await self._retrying(self._client.agenda, "agenda")
            now = utcnow()
            current = self._current(agenda.items, now)
            if current is not None:
                await self._attend(current)
                continue
            coming = [i for i in agenda.items if i.mode != IN_PERSON and i.start_at > now]
            wait_s = self._options.agenda_interval_s
            if coming:
                following = min(coming, key=lambda i: i.start_at)
                if announced != (following.occurrence_id, following.start_at):
                    announced = (following.occurrence_id, following.start_at)
                    log.info(
                        'next meeting: occurrence %s "%s" at %s',
                        following.occurrence_id,
                        following.title,
                        following.start_at.isoformat(),
                        extra={
                            "event": "next",
                            "occurrence_id": following.occurrence_id,
                            "start_at": following.start_at.isoformat(),
                        },
                    )
                until_join = (
                    following.start_at - timedelta(seconds=self._options.join_early_s) - now
                ).total_seconds()
                wait_s = max(0.0, min(wait_s, until_join))
            await asyncio.sleep(wait_s)

    # --- one meeting --------------------------------------------------------------------------

    async def _still_on(self, item: AgendaEntry) -> AgendaEntry | None:
        """The item as the agenda now has it (moved or shortened), None if it was cancelled;
        the item unchanged while the control plane cannot be reached."""
        try:
            agenda = await self._client.agenda()
        except Revoked:
            raise
        except ControlError:
            return item
        for entry in agenda.items:
            if entry.occurrence_id == item.occurrence_id:
                return entry
        return None

    async def _attend(self, item: AgendaEntry) -> None:
        """Be in the meeting until its end: join, rejoin after every drop with back-off, take
        a new grant before the old one expires, leave at the end."""
        backoff = Backoff(self._options.backoff_initial_s, self._options.backoff_max_s)
        occurrence_id = item.occurrence_id
        self._occurrence_id = occurrence_id
        self._routes.start_over()  # a relay the last meeting needed may not be needed now
        session: MeetingSession | None = None
        # After a drop the grant in hand is tried once more (the media plane does not need the
        # control plane); it is dropped when that fails, e.g. because the room moved.
        spare: JoinInfo | None = None
        # the media server of the session that was lost, named in the next join
        lost_node: str | None = None
        renew = False
        joined_at = time.monotonic()
        presenting: asyncio.Task[None] | None = None
        try:
            while True:
                refreshed = await self._still_on(item)
                if refreshed is None or utcnow() >= refreshed.leave_at:
                    break  # cancelled, ended, or over
                item = refreshed
                if session is None or renew:
                    grant, spare = spare, None
                    try:
                        if grant is None:
                            grant = await self._client.join(
                                item.occurrence_id, failed_node_id=lost_node
                            )
                        session = await self._join(item, grant=grant, previous=session)
                    except Revoked:
                        raise
                    except (SessionError, ControlError) as exc:
                        if isinstance(exc, SessionError) and exc.busy and grant is not None:
                            # the media server paces a join storm: wait as told, same grant
                            spare = grant
                            await self._wait_admission(item, exc)
                            continue
                        await self._pause_after_failure(
                            backoff, item, f"joining failed: {exc}", error=exc
                        )
                        continue
                    renew = False
                    lost_node = None
                    joined_at = time.monotonic()
                    presenting = presenting or self._present(occurrence_id)
                reason = await self._watch(session, item)
                if reason == "end":
                    continue  # the agenda says whether it was extended meanwhile
                if reason == "renew":
                    renew = True
                elif reason == "lost":
                    if time.monotonic() - joined_at > STABLE_SESSION_S:
                        backoff.reset()
                    lost_reason = session.lost_reason
                    lost_node = session.lost_node
                    await session.close()
                    spare, session = session.grant, None
                    if spare.expires_at - utcnow() < timedelta(seconds=GRANT_RENEW_MARGIN_S):
                        spare = None
                    await self._pause_after_failure(
                        backoff, item, f"connection lost ({lost_reason})"
                    )
        finally:
            if presenting is not None:
                presenting.cancel()
                await asyncio.gather(presenting, return_exceptions=True)
            if session is not None:
                await session.close()
                log.info(
                    "left occurrence %s",
                    occurrence_id,
                    extra={"event": "left", "occurrence_id": occurrence_id},
                )
            self._occurrence_id = None
            self._beat_now.set()

    def _present(self, occurrence_id: int) -> asyncio.Task[None] | None:
        """Start presenting the hall's content in the meeting it has joined, if it has any."""
        if self._content is None:
            return None
        return asyncio.create_task(
            present(
                self._client,
                self._content,
                occurrence_id,
                routes=self._routes,
                turn_tls=self._options.turn_tls,
                retry_s=self._options.content_retry_s,
            ),
            name="agent-content",
        )

    async def _pause_after_failure(
        self,
        backoff: Backoff,
        item: AgendaEntry,
        what: str,
        *,
        error: Exception | None = None,
    ) -> None:
        delay = retry_delay_s(backoff, error)
        self._note_error(f"occurrence {item.occurrence_id}: {what}")
        log.warning(
            "occurrence %s: %s; trying again in %.1f s",
            item.occurrence_id,
            what,
            delay,
            extra={
                "event": "retry",
                "occurrence_id": item.occurrence_id,
                "retry_in_s": round(delay, 1),
            },
        )
        await asyncio.sleep(delay)

    async def _wait_admission(self, item: AgendaEntry, error: SessionError) -> None:
        """A media server admitting other halls first (503, `Retry-After`): not a failure, so
        no error for IT staff; the wait is what it asked for, with jitter."""
        assert error.retry_after_s is not None
        delay = retry_after_delay_s(error.retry_after_s)
        log.info(
            "occurrence %s: the media server admits other halls first; joining in %.1f s",
            item.occurrence_id,
            delay,
            extra={
                "event": "waiting",
                "occurrence_id": item.occurrence_id,
                "retry_after_s": error.retry_after_s,
                "retry_in_s": round(delay, 1),
            },
        )
        await asyncio.sleep(delay)

    async def _join(
        self,
        item: AgendaEntry,
        *,
        grant: JoinInfo,
        previous: MeetingSession | None,
    ) -> MeetingSession:
        video, audio = self._media.tracks()
        route = self._routes.current(grant.ice_servers)
        session = MeetingSession(
            grant,
            video,
            audio,
            route=route,
            turn_tls=self._options.turn_tls,
            thumbnail=self._media.thumbnail(),
        )
        try:
            await session.start()
        except MediaNotUp:
            self._routes.failed(route)
            raise
        self._routes.succeeded(route)
        if previous is not None:
            await previous.close()  # after the new one is up: no gap in the hall's presence
        paths = session.paths
        log.info(
            'joined occurrence %s "%s" as %s (route %s, %s)',
            item.occurrence_id,
            item.title,
            grant.role.value,
            route.name,
            ", ".join(path or "?" for path in paths),
            extra={
                "event": "joined",
                "occurrence_id": item.occurrence_id,
                "role": grant.role.value,
                "renewed": previous is not None,
                "route": route.name,
                "paths": paths,
            },
        )
        self._last_error = None
        self._beat_now.set()
        return session

    async def _watch(self, session: MeetingSession, item: AgendaEntry) -> str:
        """Wait until the session is lost ("lost"), its grant needs renewing ("renew"), the
        agenda should be read again ("agenda") or the meeting ends ("end")."""
        renew_at = session.grant.expires_at - timedelta(seconds=GRANT_RENEW_MARGIN_S)
        check_at = utcnow() + timedelta(seconds=self._options.agenda_interval_s)
        until = min(item.leave_at, renew_at, check_at)
        timeout_s = max(0.0, (until - utcnow()).total_seconds())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.lost.wait(), timeout=timeout_s)
            return "lost"
        if until == item.leave_at:
            return "end"
        if until == renew_at:
            return "renew"
        return "agenda"
