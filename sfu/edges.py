"""How a worker's rooms reach other workers and nodes: the cascade and the pipes.

- The cascade (`sfu.cascade`): an edge node relays a room from the node above it over one WHEP
  relay session, reconnecting for a while when it is lost.
- Pipes (`sfu.pipe`): one room over several workers; the origin pipes every source to its
  edges and pushes them what each pipe carries and who holds the floor.

Every second the relay sessions' state is repeated and the pipes kept alive, and a piped room
whose origin fell silent is closed, so that its halls join again elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from confbridge_kernel.contracts import CascadeRequest
from sfu.cascade import (
    RELAY_KEEPALIVE_S,
    UPSTREAM_SILENCE_S,
    RelayState,
    Upstream,
    send_state,
)
from sfu.config import WorkerSettings
from sfu.errors import SfuError
from sfu.forwarding import Source
from sfu.metrics import WorkerMetrics
from sfu.pipe import (
    PIPE_REQUEST_TIMEOUT_S,
    ExtendRoom,
    PipeIn,
    PipeOut,
    PipeRequest,
    PipeState,
    pipe_out_path,
    pipe_state_path,
)
from sfu.room import PipedRoomInfo, Room, RoomInfo, open_room
from sfu.tasks import PendingTasks

log = logging.getLogger(__name__)

# A cascade edge that lost its upstream tries again for this long (after 0.5, 1, 2... s),
# then closes the room: its halls join again and the control plane sends them where the room
# is now.
UPSTREAM_GRACE_S = 2.0

CloseRoom = Callable[..., Awaitable[None]]
"""The worker's `close_room(room, *, reason)`."""


class Edges:
    """The cascade and the pipes of a worker's rooms, and its client for other workers."""

    def __init__(
        self,
        settings: WorkerSettings,
        rooms: dict[str, Room],
        *,
        new_room: Callable[[RoomInfo], Room],
        close_room: CloseRoom,
        metrics: WorkerMetrics,
        tasks: PendingTasks,
    ) -> None:
        self._settings = settings
        self._rooms = rooms
        self._new_room = new_room
        self._close_room = close_room
        self._metrics = metrics
        self._tasks = tasks
        # calls to other workers' admin API (pipes), made lazily
        self._admin: httpx.AsyncClient | None = None

    async def close(self) -> None:
        """Close the client for other workers."""
        if self._admin is not None:
            await self._admin.aclose()
            self._admin = None

    async def keepalive(self) -> None:
        """Every second: repeat each relay session's state and keep each pipe alive (the
        edges below take silence as a lost origin), and close a piped room whose origin has
        been silent for UPSTREAM_SILENCE_S, so that its halls join again elsewhere."""
        while True:
            await asyncio.sleep(RELAY_KEEPALIVE_S)
            now = time.monotonic()
            for room in list(self._rooms.values()):
                try:
                    self.relay_floor(room)
                    for pipe, _url, _token in room.pipes_out.values():
                        pipe.keepalive()
                    pipe_in = room.pipe_in
                    if pipe_in is not None and pipe_in.silent_for(now) > UPSTREAM_SILENCE_S:
                        log.warning("room %s: origin %s fell silent", room.name, room.origin_url)
                        await self._close_room(room, reason="upstream_lost")
                except Exception:
                    log.exception("room %s: keepalive failed", room.name)

    def http(self) -> httpx.AsyncClient:
        """Calls to other workers and nodes (each with the room's relay grant)."""
        if self._admin is None:
            self._admin = httpx.AsyncClient(timeout=PIPE_REQUEST_TIMEOUT_S)
        return self._admin

    def _edge_room(
        self, room_name: str, request: CascadeRequest | ExtendRoom, *, fed_by: str
    ) -> Room:
        """The room to serve as an edge (opened now, as `request` describes it, if it is not
        open); 409 if this worker holds the room's publishers itself."""
        room = self._rooms.get(room_name)
        if room is not None and not room.closed and not room.is_edge and room.pipe_sources():
            raise SfuError(409, f"room {room_name} has its own publishers here; it is an origin")
        if room is None or room.closed:
            info = PipedRoomInfo(
                room=room_name,
                occurrence_id=request.occurrence_id,
                chair_site_id=request.chair_site_id,
                ends_at=request.ends_at,
            )
            room = self._new_room(info)
            log.info("room %s opened as an edge of %s", room_name, fed_by)
        return room

    async def relay_room(self, room_name: str, request: CascadeRequest) -> Room:
        """Edge: serve `room_name` with the programme of the node at `upstream_whep_url`.

        Called again with the same upstream, it keeps the session (opening it again if it
        was lost); with another (the room moved), it replaces it.
        """
        room = self._edge_room(room_name, request, fed_by=request.upstream_whep_url)
        current = room.upstream
        if current is not None and current.url == request.upstream_whep_url and not current.lost:
            current.token = request.token  # a fresher grant for the next reconnection
            return room
        if room.pipe_in is not None:  # fed over a pipe until now
            self._metrics.retire_sources(room.pipe_in.sources())
            room.pipe_in.close()
            room.pipe_in = None
        try:
            await self._connect_upstream(room, request.upstream_whep_url, request.token)
        except BaseException:
            if room.upstream is None and not room.peers:
                # opened for this request only: leave no room that would take publishers
                await self._close_room(room, reason="relay_refused")
            raise
        return room

    async def hold_room(self, room_name: str) -> bool:
        """This node holds the room now (it moved here): a relayed copy stops relaying and
        takes publishers. Returns True if the room was relayed here until now."""
        room = self._rooms.get(room_name)
        if room is None or room.closed or not room.is_edge:
            return False
        self._metrics.retire_sources(room.feed_sources())
        upstream, room.upstream = room.upstream, None
        room.hold()
        if upstream is not None:
            await upstream.close(self.http())
        log.info("room %s: held here now; no longer relayed", room_name)
        return True

    async def _connect_upstream(self, room: Room, url: str, token: str) -> None:
        upstream: Upstream | None = None

        def on_state(state: RelayState) -> None:
            if room.upstream is upstream and not room.closed:
                room.use_relayed(state)
                self.relay_floor(room)
                self.pipes_changed(room)

        def on_lost() -> None:
            if room.upstream is upstream and not room.closed:
                self._tasks.own(asyncio.get_running_loop().create_task(self._reconnect(room, url)))

        upstream = Upstream(url, token, on_state=on_state, on_lost=on_lost)
        try:
            await upstream.open(self.http())
        except BaseException:
            await upstream.close(self.http())  # an answered session is ended upstream too
            raise
        previous, room.upstream = room.upstream, upstream
        room.origin_url = url
        room.use_relayed(None)  # the upstream tells which track carries whom once connected
        if previous is not None:
            self._metrics.retire_sources(previous.feeds())
            await previous.close(self.http())

    async def _reconnect(self, room: Room, url: str) -> None:
        """Open the upstream session again; if that fails for UPSTREAM_GRACE_S, close the
        room, so that its halls join again and go where the room is now."""
        lost = room.upstream
        delay = 0.5
        give_up_at = asyncio.get_running_loop().time() + UPSTREAM_GRACE_S
        while lost is not None and room.upstream is lost and not room.closed:
            await asyncio.sleep(delay)
            if room.closed or room.upstream is not lost:
                return  # closed, or pointed elsewhere meanwhile
            try:
                await self._connect_upstream(room, url, lost.token)
                log.info("room %s: relay session to %s open again", room.name, url)
                return
            except Exception as exc:  # refused, unreachable, no media port: all retried
                log.warning("room %s: relay session to %s: %s", room.name, url, exc)
            if asyncio.get_running_loop().time() >= give_up_at:
                await self._close_room(room, reason="upstream_lost")
                return
            delay *= 2

    async def _admin_post(
        self, base_url: str, path: str, body: dict[str, Any], *, token: str
    ) -> httpx.Response:
        """POST to another worker's admin API with `token`: the room's relay grant, which
        that worker checks itself (workers share no secret)."""
        return await self.http().post(
            base_url.rstrip("/") + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )

    async def extend_room(self, room_name: str, request: ExtendRoom) -> PipeState:
        """Edge: serve `room_name` for the origin at `request.origin_url`, fed by a pipe.

        Called again (the origin moved, or its pipe broke), it replaces the pipe.
        """
        room = self._edge_room(room_name, request, fed_by=request.origin_url)
        self._metrics.retire_sources(room.feed_sources())
        if room.pipe_in is not None:
            room.pipe_in.close()
        if room.upstream is not None:  # relayed from another node until now
            await room.upstream.close(self.http())
            room.upstream = None
        pipe_in = await PipeIn.open(self._settings.media_ip)
        room.pipe_in = pipe_in
        room.pipe_token = request.token
        room.origin_url = request.origin_url.rstrip("/")
        ask = PipeRequest(
            edge_node_id=self._settings.node_id,
            edge_addr=pipe_in.local_addr,
            edge_url=self._settings.advertised_internal_url,
        )
        try:
            response = await self._admin_post(
                room.origin_url,
                pipe_out_path(room_name),
                ask.model_dump(mode="json"),
                token=request.token,
            )
        except httpx.HTTPError as exc:
            raise SfuError(502, f"the origin at {room.origin_url} is unreachable: {exc}") from None
        if response.status_code != 200:
            raise SfuError(502, f"the origin refused the pipe: {response.text[:200]}")
        state = PipeState.model_validate_json(response.content)
        pipe_in.origin_addr = state.origin_addr
        self.apply_pipe_state(room, state)
        return state

    async def open_pipe_out(self, room_name: str, request: PipeRequest, *, token: str) -> PipeState:
        """Origin: pipe every source of the room to an edge; returns what it carries. `token`
        (the edge's relay grant) goes back with every pipe state pushed to the edge."""
        room = open_room(self._rooms, room_name)
        if room.pipe_in is not None:
            raise SfuError(409, f"room {room_name} is piped here; pipe from its origin")
        previous = room.pipes_out.pop(request.edge_node_id, None)
        if previous is not None:
            previous[0].close()
        pipe = await PipeOut.open(request.edge_node_id, request.edge_addr, self._settings.media_ip)
        room.pipes_out[request.edge_node_id] = (pipe, request.edge_url, token)
        log.info("room %s piped to %s at %s", room_name, request.edge_node_id, request.edge_addr)
        return self._pipe_state(room, pipe)

    @staticmethod
    def _pipe_state(room: Room, pipe: PipeOut) -> PipeState:
        return PipeState(
            origin_addr=pipe.local_addr,
            sources=pipe.sync(room.pipe_sources(), content=room.pipe_content()),
            floor=room.floor.state(),
        )

    def apply_pipe_state(self, room: Room, state: PipeState) -> None:
        """Edge: take the origin's sources and floor."""
        if room.pipe_in is None or not room.is_edge:
            raise SfuError(409, f"room {room.name} is not relayed here")
        sources: dict[tuple[int, str], Source] = {}
        content: Source | None = None
        for piped in state.sources:
            what = "content" if piped.content else "site"
            source = room.pipe_in.source_for(
                piped, label=f"{what} {piped.site_id} from {room.origin_url}"
            )
            if piped.content:
                content = source
            else:
                sources[(piped.site_id, piped.kind)] = source
        self._metrics.retire_sources(room.pipe_in.retire({piped.ssrc for piped in state.sources}))
        room.use_piped(sources, state.floor, content)

    def pipes_changed(self, room: Room) -> None:
        """Origin: tell every edge what the pipe now carries and who holds the floor."""
        for edge_node_id, (pipe, edge_url, token) in list(room.pipes_out.items()):
            state = self._pipe_state(room, pipe)
            self._tasks.own(
                asyncio.get_running_loop().create_task(
                    self._push_pipe_state(room.name, edge_node_id, edge_url, state, token)
                )
            )

    async def _push_pipe_state(
        self, room_name: str, edge_node_id: str, edge_url: str, state: PipeState, token: str
    ) -> None:
        try:
            response = await self._admin_post(
                edge_url, pipe_state_path(room_name), state.model_dump(mode="json"), token=token
            )
            if response.status_code != 200:
                log.warning("edge %s refused the pipe state: %s", edge_node_id, response.text)
        except httpx.HTTPError as exc:
            log.warning("edge %s unreachable for room %s: %s", edge_node_id, room_name, exc)

    def relay_floor(self, room: Room) -> None:
        """Send the floor down to every relay session of the room (nodes below this one)."""
        for peer in room.relays():
            send_state(peer.floor_channel, room.relay_state(peer))
