"""What the agent presents (trình chiếu): a video or slides file, or a capture device (an
HDMI grabber on v4l2, or an X display's screen), published as the hall's content beside its
camera with a content grant.

The hall presents once per meeting: it asks for a content grant until the site may present
(the chair site at once; another site once the chair gives it the floor) and publishes; when
the bridge ends the presentation (the chair stopped it, or another site took over) the hall
does not start it again in that meeting, so the chair's stop sticks.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer, MediaRelay

from confbridge.agent.backoff import Backoff, retry_delay_s
from confbridge.agent.client import ControlClient, ControlError, Revoked
from confbridge.agent.routes import DIRECT, IceRoutes
from confbridge.agent.session import MediaNotUp, MeetingSession, SessionError
from confbridge_kernel.contracts import GrantPurpose, JoinInfo

log = logging.getLogger(__name__)

# How often a hall that may not present yet asks again (the floor may have come to it).
CONTENT_RETRY_S = 5.0
# 403: not the chair and without the floor; 409: the room is not open yet.
WAITING_STATUSES = frozenset({403, 409})


@dataclass
class ContentSource:
    """The content to present: `file` (played in a loop) or `device` (":0.0" an X display's
    screen through x11grab, anything else a v4l2 device)."""

    file: str | None = None
    device: str | None = None
    _player: MediaPlayer | None = None
    _relay: MediaRelay = field(default_factory=MediaRelay)

    @property
    def configured(self) -> bool:
        return bool(self.file or self.device)

    def open(self) -> None:
        """Open the file or device (blocking: call it off the event loop)."""
        if self.file:
            self._player = MediaPlayer(self.file, loop=True)
        elif self.device and self.device.startswith(":"):
            self._player = MediaPlayer(self.device, format="x11grab")
        elif self.device:
            self._player = MediaPlayer(self.device, format="v4l2")
        if self._player is not None and self._player.video is None:
            raise ValueError(f"{self.file or self.device} has no video to present")

    def track(self) -> MediaStreamTrack:
        """A fresh track of the content for one presentation."""
        if self._player is None or self._player.video is None:
            raise RuntimeError("the content source is not open")
        return self._relay.subscribe(self._player.video)

    def close(self) -> None:
        if self._player is not None and self._player.video is not None:
            self._player.video.stop()
        self._player = None


async def present(
    client: ControlClient,
    source: ContentSource,
    occurrence_id: int,
    *,
    routes: IceRoutes | None = None,
    turn_tls: ssl.SSLContext | None = None,
    retry_s: float = CONTENT_RETRY_S,
) -> None:
    """Present `source` in the occurrence until the bridge ends it (or the task is cancelled).

    Between attempts it waits `retry_s` (±20 %), or what the control plane or the media server
    asked for with a 503 and `Retry-After` (with jitter, as the meeting's own join does); a
    media server pacing a join storm is offered the same grant again."""
    pause = Backoff(retry_s, retry_s)  # a steady period, jittered: the floor may come any time
    grant: JoinInfo | None = None
    while True:
        if grant is None:
            grant = await _content_grant(client, occurrence_id, pause)
            if grant is None:
                return
        route = routes.current(grant.ice_servers) if routes is not None else DIRECT
        session = MeetingSession(
            grant, source.track(), None, route=route, turn_tls=turn_tls, view=False
        )
        try:
            await session.start()
        except SessionError as exc:
            delay = retry_delay_s(pause, exc)
            if exc.busy:
                log.info(
                    "content: the media server admits other halls first; trying in %.1f s",
                    delay,
                    extra={"event": "content_waiting", "retry_in_s": round(delay, 1)},
                )
            else:
                grant = None  # the floor moved between the grant and the offer, or the bridge
                if isinstance(exc, MediaNotUp) and routes is not None:  # is away
                    routes.failed(route)
                log.warning("content: not published: %s", exc, extra={"event": "content_retry"})
            await asyncio.sleep(delay)
            continue
        if routes is not None:
            routes.succeeded(route)
        log.info(
            "presenting content in occurrence %s",
            occurrence_id,
            extra={"event": "content_started", "occurrence_id": occurrence_id},
        )
        try:
            await session.lost.wait()
        finally:
            await session.close()
        log.info(
            "content ended by the bridge (%s)",
            session.lost_reason,
            extra={"event": "content_stopped", "occurrence_id": occurrence_id},
        )
        return


async def _content_grant(
    client: ControlClient, occurrence_id: int, pause: Backoff
) -> JoinInfo | None:
    """A content grant once the site may present; None if it is refused for good."""
    while True:
        try:
            return await client.join(occurrence_id, purpose=GrantPurpose.content)
        except Revoked:
            raise
        except ControlError as exc:
            told = exc.retry_after_s is not None  # e.g. 503: no media server up just now
            if exc.status not in WAITING_STATUSES and exc.status != 0 and not told:
                log.error("content: refused for good: %s", exc, extra={"event": "content_refused"})
                return None
            await asyncio.sleep(retry_delay_s(pause, exc))
