"""One presence in one meeting: a WHIP publisher and a WHEP viewer on the bridge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from confbridge.agent.routes import DIRECT, IceRoute, selected_path, use_turn_tls_context
from confbridge_kernel.contracts import JoinInfo

log = logging.getLogger(__name__)

SDP = "application/sdp"
REQUEST_TIMEOUT_S = 10.0
# Up to this long after the answer, a session that has not connected counts as failed.
CONNECT_TIMEOUT_S = 15.0
MAX_REASON_CHARS = 200


class SessionError(Exception):
    """The bridge refused a WHIP/WHEP request (`status`), or could not be reached (0)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}" if status else reason)
        self.status = status
        self.reason = reason


class MediaNotUp(SessionError):
    """The bridge answered, but ICE and DTLS did not connect on the session's route."""

    def __init__(self, reason: str) -> None:
        super().__init__(0, reason)


def rtc_configuration(ice_servers: list[dict[str, Any]], *, relay_only: bool) -> RTCConfiguration:
    """The grant's STUN/TURN servers; relay_only allows TURN relay candidates alone."""
    servers = [
        RTCIceServer(
            urls=server["urls"],
            username=server.get("username"),
            credential=server.get("credential"),
        )
        for server in ice_servers
    ]
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


@dataclass
class ReceivedMedia:
    """What the viewer decoded."""

    video_frames: int = 0
    audio_frames: int = 0
    width: int = 0
    height: int = 0
    last_video_at: float = 0.0


@dataclass
class _Resource:
    url: str
    pc: RTCPeerConnection
    location: str | None = None


@dataclass
class MeetingSession:
    """Publish (WHIP) and view (WHEP) with one join grant. `lost` is set when either peer
    connection fails or closes without `close()` having been called. A presentation
    (`confbridge.agent.content`) publishes its video alone: no audio, `view` False."""

    grant: JoinInfo
    video: MediaStreamTrack
    audio: MediaStreamTrack | None
    # how ICE reaches the bridge (`confbridge.agent.routes`): which TURN URL, relay or not
    route: IceRoute = DIRECT
    # verifies `turns:` servers (system CAs, plus a private CA if configured)
    turn_tls: ssl.SSLContext | None = None
    # the camera's small layer, sent as the offer's second video m-line (the worker's thumbnail)
    thumbnail: MediaStreamTrack | None = None
    view: bool = True
    received: ReceivedMedia = field(default_factory=ReceivedMedia)
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    lost_reason: str = ""
    # the media server of the connection that was lost first (JoinInfo.node_id or
    # JoinInfo.viewing_node_id), named in the next join
    lost_node: str | None = None
    _resources: list[_Resource] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _closing: bool = False

    def _peer(self, node_id: str | None) -> RTCPeerConnection:
        pc = RTCPeerConnection(
            rtc_configuration(
                self.route.ice_servers(self.grant.ice_servers), relay_only=self.route.relay_only
            )
        )

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState in ("failed", "closed") and not self._closing:
                if not self.lost.is_set():
                    self.lost_reason = f"connection {pc.connectionState}"
                    self.lost_node = node_id
                self.lost.set()

        return pc

    async def start(self) -> None:
        """Send the offers and wait until the connections are up (or raise)."""
        publisher = _Resource(self.grant.whip_url, self._peer(self.grant.node_id))
        publisher.pc.addTransceiver(self.video, direction="sendonly")
        if self.audio is not None:
            publisher.pc.addTransceiver(self.audio, direction="sendonly")
        if self.thumbnail is not None:
            publisher.pc.addTransceiver(self.thumbnail, direction="sendonly")
        self._resources = [publisher]
        if self.view:
            viewer_node = self.grant.viewing_node_id or self.grant.node_id
            viewer = _Resource(self.grant.whep_url, self._peer(viewer_node))
            viewer.pc.addTransceiver("video", direction="recvonly")
            viewer.pc.addTransceiver("audio", direction="recvonly")
            viewer.pc.on("track", self._on_track)
            self._resources.append(viewer)
        try:
            await asyncio.gather(*(self._negotiate(r) for r in self._resources))
            await self._connected()
        except BaseException:
            await self.close()
            raise

    async def _negotiate(self, resource: _Resource) -> None:
        pc = resource.pc
        if self.turn_tls is not None:
            use_turn_tls_context(pc, self.turn_tls)
        await pc.setLocalDescription(await pc.createOffer())
        headers = {"Content-Type": SDP, "Authorization": f"Bearer {self.grant.token}"}
        try:
            async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
                response = await http.post(
                    resource.url, content=pc.localDescription.sdp, headers=headers
                )
        except httpx.HTTPError as exc:
            raise SessionError(0, f"cannot reach the bridge at {resource.url}: {exc!r}") from None
        if response.status_code != 201:
            reason = response.text.strip().split("\n", 1)[0][:MAX_REASON_CHARS]
            raise SessionError(response.status_code, reason or response.reason_phrase)
        location = response.headers.get("location")
        if not location:
            raise SessionError(response.status_code, "the answer has no Location header")
        resource.location = str(httpx.URL(resource.url).join(location))
        await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))

    async def _connected(self) -> None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while any(r.pc.connectionState != "connected" for r in self._resources):
            if self.lost.is_set():
                raise MediaNotUp(
                    f"the media connection did not come up on route {self.route.name} "
                    f"({self.lost_reason})"
                )
            if time.monotonic() > deadline:
                states = ", ".join(r.pc.connectionState for r in self._resources)
                raise MediaNotUp(
                    f"the media connection did not come up on route {self.route.name} ({states})"
                )
            await asyncio.sleep(0.05)

    @property
    def paths(self) -> list[str | None]:
        """Each connection's selected candidate pair (`relay/tcp`, `host/udp`, ...)."""
        return [selected_path(r.pc) for r in self._resources]

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.create_task(self._read(track), name=f"agent-{track.kind}"))

    async def _read(self, track: MediaStreamTrack) -> None:
        """Decode what arrives (aiortc decodes on `recv`); the programme's first frame and its
        size changes are logged."""
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track.kind != "video":
                    self.received.audio_frames += 1
                    continue
                received = self.received
                received.video_frames += 1
                received.last_video_at = time.monotonic()
                size = (frame.width, frame.height)
                if size != (received.width, received.height):
                    received.width, received.height = size
                    log.info(
                        "programme video %dx%d",
                        frame.width,
                        frame.height,
                        extra={"event": "video", "width": frame.width, "height": frame.height},
                    )

    async def close(self) -> None:
        """Leave: DELETE both resources (a deliberate leave for attendance), close the peers."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.gather(*(self._delete(r) for r in self._resources), return_exceptions=True)
        for resource in self._resources:
            await resource.pc.close()
        self._resources = []
        if self.thumbnail is not None:
            self.thumbnail.stop()  # its own subscription to the camera: nobody reads it now

    async def _delete(self, resource: _Resource) -> None:
        if resource.location is None:
            return
        headers = {"Authorization": f"Bearer {self.grant.token}"}
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
                await http.delete(resource.location, headers=headers)
        resource.location = None
