"""The cascade between nodes: an edge node pulls a room's programme from the node above it.

Across machines (one node per province, say) the edge does not take every publisher of the
room, as a pipe between workers does: it opens one WHEP session upstream with a relay grant,
like a hall's screen, but with `RELAY_VIDEO_TRACKS` video and `RELAY_AUDIO_TRACKS` audio
tracks that carry what the edge's halls may need (`Floor.relay_sites`): the speaker's video
and what the speaking hall sees, the speaker's audio and the chair's. The upstream switches
those tracks when the floor changes and tells the edge, over a data channel of the same
session, the floor and the site each track carries now (`RelayState`); the edge routes its
own halls from that. One more video track carries the room's content while someone presents
(the floor's `content_site_id` says when), and the edge's viewers' content slots follow it.
Media stays DTLS-SRTP encrypted on the way, nothing is decoded, and an edge can itself be
the upstream of another edge (a deeper tree).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdatachannel import RTCDataChannel
from pydantic import BaseModel, Field, ValidationError

from confbridge_kernel.contracts import FloorState
from sfu.errors import SfuError
from sfu.forwarding import Source
from sfu.rtc.ice import NoMediaPort, end_ice_watch_on_close

log = logging.getLogger(__name__)

RELAY_VIDEO_TRACKS = 2
RELAY_AUDIO_TRACKS = 2
RELAY_CONTENT_TRACKS = 1
"""After its programme tracks, a relay session may offer one more video track: the room's
content (sfu.content), carried while someone presents and idle otherwise."""
FLOOR_CHANNEL = "floor"
"""The data channel label of a relay session: the upstream sends `RelayState` JSON on it."""
UPSTREAM_REQUEST_TIMEOUT_S = 10.0
UPSTREAM_DELETE_TIMEOUT_S = 2.0
RELAY_KEEPALIVE_S = 1.0
"""The upstream repeats each relay session's state this often, changed or not..."""
UPSTREAM_SILENCE_S = 3.0
"""...so an edge that has heard nothing for this long takes its upstream as lost (ICE consent
would take about 30 s to say so)."""
UPSTREAM_CONNECT_TIMEOUT_S = 10.0
"""A new session has this long to connect and send its first state."""


class RelayState(BaseModel):
    """Upstream → a relay session, on its data channel: the floor, and the site each of its
    tracks carries now (None: nothing)."""

    floor: FloorState
    video: list[int | None] = Field(max_length=RELAY_VIDEO_TRACKS)
    audio: list[int | None] = Field(max_length=RELAY_AUDIO_TRACKS)


def assign_tracks(current: list[int | None], wanted: list[int | None]) -> list[int | None]:
    """Which site each relay track carries next: a track keeps its site while that site is
    still wanted, so a floor change switches as few tracks as it can (the hall that takes the
    floor keeps watching the chair on the same track, with no new keyframe to wait for)."""
    needed = [site for site in dict.fromkeys(wanted) if site is not None]
    kept = [site if site in needed else None for site in current]
    missing = iter(site for site in needed if site not in kept)
    return [site if site is not None else next(missing, None) for site in kept]


def relayed_sources(
    state: RelayState, video: list[Source], audio: list[Source]
) -> dict[tuple[int, str], Source]:
    """The relay tracks as the room's sources, each under the site it carries now."""
    sources: dict[tuple[int, str], Source] = {}
    for kind, sites, tracks in (("video", state.video, video), ("audio", state.audio, audio)):
        for site_id, source in zip(sites, tracks, strict=False):
            if site_id is not None:
                sources[(site_id, kind)] = source
    return sources


class Upstream:
    """An edge's WHEP session to the node above it: four programme tracks, the content track
    and the floor.

    `on_state` gets each new `RelayState` the upstream sends (repeats are only taken as
    signs of life); `on_lost` is called once if the session fails, closes or falls silent
    before `close()`.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        on_state: Callable[[RelayState], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.url = url
        self.token = token
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video: list[Source] = []
        self.audio: list[Source] = []
        self.content: Source | None = None
        self.location: str | None = None
        self.connected = False
        self.lost = False
        self.state: RelayState | None = None
        self._heard_at = time.monotonic()
        self._on_state = on_state
        self._on_lost = on_lost
        self._closed = False
        self._watchdog: asyncio.Task[None] | None = None

    async def open(self, http: httpx.AsyncClient) -> None:
        """Offer, get the upstream's answer; media and the floor follow once connected."""
        pc = self.pc
        videos = [
            pc.addTransceiver("video", direction="recvonly")
            for _ in range(RELAY_VIDEO_TRACKS + RELAY_CONTENT_TRACKS)
        ]
        audios = [
            pc.addTransceiver("audio", direction="recvonly") for _ in range(RELAY_AUDIO_TRACKS)
        ]
        channel = pc.createDataChannel(FLOOR_CHANNEL)
        channel.on("message", self._state_message)
        pc.on("connectionstatechange", self._state_changed)
        # Not on the worker's shared port even in single-port mode: an upstream node tells its
        # peers apart by their address, and this edge's sessions of several rooms to one node
        # would all come from that one address. A socket of its own, as a browser has.
        try:
            await pc.setLocalDescription(await pc.createOffer())
            end_ice_watch_on_close(pc)
        except NoMediaPort as exc:
            log.warning("cannot relay from %s: %s", self.url, exc)
            raise SfuError(
                503, "this media server has no free media port; try again later"
            ) from None
        try:
            response = await http.post(
                self.url,
                content=pc.localDescription.sdp,
                headers={
                    "Content-Type": "application/sdp",
                    "Authorization": f"Bearer {self.token}",
                },
                timeout=UPSTREAM_REQUEST_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            raise SfuError(502, f"the upstream at {self.url} is unreachable: {exc}") from None
        if response.status_code != 201:
            raise SfuError(502, f"the upstream refused the relay session: {response.text[:200]}")
        location = response.headers.get("location")
        self.location = str(httpx.URL(self.url).join(location)) if location else None
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        except Exception as exc:  # aiortc raises ValueError, KeyError... on a bad answer
            raise SfuError(502, f"the upstream's answer is unusable: {exc}") from None
        label = f"relayed from {self.url}"
        programme, content = videos[:RELAY_VIDEO_TRACKS], videos[RELAY_VIDEO_TRACKS]
        self.video = [
            Source.attach(t, label=f"{label} (video {i})") for i, t in enumerate(programme)
        ]
        self.content = Source.attach(content, label=f"{label} (content)")
        self.audio = [Source.attach(t, label=f"{label} (audio {i})") for i, t in enumerate(audios)]
        self._heard_at = time.monotonic()
        self._watchdog = asyncio.get_running_loop().create_task(self._watch_silence())

    def sources_for(self, state: RelayState) -> dict[tuple[int, str], Source]:
        return relayed_sources(state, self.video, self.audio)

    def content_for(self, state: RelayState) -> Source | None:
        """The content track, while the upstream's floor says someone presents."""
        return self.content if state.floor.content_site_id is not None else None

    def feeds(self) -> list[Source]:
        """Every track this session receives: the programme's and the content's."""
        content = [self.content] if self.content is not None else []
        return [*self.video, *self.audio, *content]

    def _state_message(self, message: str | bytes) -> None:
        try:
            state = RelayState.model_validate_json(message)
        except ValidationError as exc:
            log.warning("upstream %s sent an unreadable relay state: %s", self.url, exc)
            return
        self._heard_at = time.monotonic()
        if state != self.state:
            self.state = state
            self._on_state(state)

    async def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected = True
            log.info("relay session to %s connected", self.url)
        elif state in ("failed", "closed"):
            self._lose(f"connection {state}")

    async def _watch_silence(self) -> None:
        while not self._closed:
            await asyncio.sleep(RELAY_KEEPALIVE_S)
            limit_s = UPSTREAM_SILENCE_S if self.state is not None else UPSTREAM_CONNECT_TIMEOUT_S
            if time.monotonic() - self._heard_at > limit_s:
                self._lose(f"nothing heard for {limit_s:.0f} s")
                return

    def _lose(self, reason: str) -> None:
        if self._closed or self.lost:
            return
        self.lost = True
        log.warning("relay session to %s lost: %s", self.url, reason)
        self._on_lost()

    async def close(self, http: httpx.AsyncClient | None = None) -> None:
        """End the session and its sources, telling the upstream over `http` unless the
        session was lost (a dead or unreachable upstream would only hold the caller up)."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for source in self.feeds():
            source.close()
        if http is not None and self.location is not None and not self.lost:
            with contextlib.suppress(httpx.HTTPError):
                await http.delete(
                    self.location,
                    headers={"Authorization": f"Bearer {self.token}"},
                    timeout=UPSTREAM_DELETE_TIMEOUT_S,
                )
        self.location = None
        await self.pc.close()


def send_state(channel: RTCDataChannel | None, state: RelayState) -> bool:
    """Upstream side: send one relay session its state, if its channel is open."""
    if channel is None or channel.readyState != "open":
        return False
    channel.send(state.model_dump_json())
    return True
