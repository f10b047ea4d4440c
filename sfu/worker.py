"""The SFU worker: rooms, WHIP/WHEP sessions, floor, housekeeping and events."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiortc import (
    RTCConfiguration,
    RTCIceCandidate,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from confbridge_kernel.contracts import (
    CascadeRequest,
    EventType,
    FloorCommand,
    FloorState,
    GrantClaims,
    GrantRevocation,
    PeerRole,
    PeerStats,
    SfuEvent,
)
from sfu.cascade import (
    FLOOR_CHANNEL,
    RELAY_AUDIO_TRACKS,
    RELAY_KEEPALIVE_S,
    RELAY_VIDEO_TRACKS,
    UPSTREAM_SILENCE_S,
    RelayState,
    Upstream,
    send_state,
)
from sfu.config import WorkerSettings
from sfu.errors import SfuError
from sfu.events import EventReporter
from sfu.floor import FloorError
from sfu.forwarding import Slot, Source
from sfu.grants import GrantError, GrantVerifier, WrongRoom
from sfu.heartbeat import Heartbeat
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
from sfu.room import Peer, PipedRoomInfo, Room
from sfu.rtc.ice import (
    IceRestartError,
    NoMediaPort,
    begin_ice_restart,
    complete_ice_restart,
    set_consent_timing,
    use_host_candidates,
)
from sfu.rtc.sdp import offered_direction, restrict_codecs
from sfu.rtc.transport import accept_rsa_dtls_peers

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 5.0
AUDIO_CODECS = ["audio/opus"]
# A peer that has not connected this long after its offer is given up.
CONNECT_TIMEOUT_S = 30.0
# A cascade edge that lost its upstream tries again for this long (after 0.5, 1, 2... s),
# then closes the room: its halls join again and the control plane sends them where the room
# is now.
UPSTREAM_GRACE_S = 2.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ice_ufrags(sdp: str) -> set[str]:
    return {
        line.split(":", 1)[1].strip()
        for line in sdp.splitlines()
        if line.startswith("a=ice-ufrag:")
    }


class Worker:
    """Owns every room of this process; `start()` begins housekeeping, `close()` ends all."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        verifier: GrantVerifier | None = None,
        reporter: EventReporter | None = None,
    ) -> None:
        self.settings = settings
        self._verifier = verifier
        self.reporter = reporter
        self.rooms: dict[str, Room] = {}
        self._task: asyncio.Task[None] | None = None
        # connection watchdogs and ICE restarts; owned here so close() can end them
        self._pending: set[asyncio.Task[None]] = set()
        # the checks of each peer's latest ICE restart, by peer id
        self._ice_restarts: dict[str, asyncio.Task[None]] = {}
        self.metrics = WorkerMetrics(self)
        self.heartbeat = Heartbeat(self)
        # credential ids of terminal tokens whose grants are void (the control plane's list,
        # from the latest heartbeat answer), and the one live session of each grant and
        # direction
        self._revoked: dict[str, GrantRevocation] = {}
        self._by_grant: dict[tuple[str, str], Peer] = {}
        # calls to other workers' admin API (pipes), made lazily
        self._admin: httpx.AsyncClient | None = None
        self._stats_due = 0.0

    # lifecycle

    async def start(self) -> None:
        use_host_candidates(
            [self.settings.media_ip],
            announced_address=self.settings.announced_ip,
            port_range=self.settings.udp_port_range,
        )
        accept_rsa_dtls_peers()
        set_consent_timing(self.settings.ice_consent_interval_s, self.settings.ice_consent_failures)
        if self._verifier is None:
            self._verifier = await GrantVerifier.load(
                self.settings.grant_public_key_file,
                control_url=self.settings.control_url,
                node_key=self.settings.node_key or "",
            )
        if self.reporter is None:
            self.reporter = EventReporter(
                self.settings.control_url, self.settings.node_key or "", self.settings.spool_dir
            )
        self.reporter.start()
        self.heartbeat.start()
        self._task = asyncio.create_task(self._housekeeping(), name="sfu-housekeeping")
        self._own(asyncio.create_task(self._keepalive(), name="sfu-keepalive"))

    async def close(self) -> None:
        await self.heartbeat.close()
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        for room in list(self.rooms.values()):
            await self._close_room(room, reason="worker_stopped")
        if self.reporter is not None:
            await self.reporter.close()
        if self._admin is not None:
            await self._admin.aclose()
            self._admin = None

    # grants

    def verify_grant(self, token: str, *, room: str, site_id: int | None = None) -> GrantClaims:
        assert self._verifier is not None, "start() the worker first"
        try:
            grant = self._verifier.verify(token, room=room)
        except WrongRoom as exc:
            raise SfuError(403, str(exc)) from None
        except GrantError as exc:
            raise SfuError(401, str(exc)) from None
        if site_id is not None and grant.site_id != site_id:
            raise SfuError(403, "this session belongs to another site")
        self._refuse_revoked(grant)
        return grant

    def _refuse_revoked(self, grant: GrantClaims) -> None:
        if grant.credential_id is not None and grant.credential_id in self._revoked:
            raise SfuError(
                401,
                "this join grant has been revoked (its terminal was revoked or paired again)",
            )

    async def apply_revocations(self, revocations: Iterable[GrantRevocation]) -> None:
        """Take the control plane's revocation list (it replaces the previous one) and close
        every live session opened with a grant it voids."""
        self._revoked = {r.credential_id: r for r in revocations}
        if not self._revoked:
            return
        doomed = [
            peer
            for room in self.rooms.values()
            for peer in room.peers.values()
            if peer.credential_id is not None and peer.credential_id in self._revoked
        ]
        for peer in doomed:
            revocation = self._revoked[peer.credential_id]  # type: ignore[index]
            log.warning(
                "closing session %s of %s: terminal %s was revoked",
                peer.id[:6],
                peer.site_name,
                revocation.terminal_id,
            )
            await self.remove_peer(peer, reason="revoked")

    def verify_admin(self, token: str, *, method: str, path: str) -> None:
        """A call to the admin API: the control plane's token for this node and this call,
        or this node's own key (its operator)."""
        key = self.settings.node_key
        if key and hmac.compare_digest(token.encode(), key.encode()):
            return
        assert self._verifier is not None, "start() the worker first"
        try:
            self._verifier.verify_admin(
                token, node_id=self.settings.node_id, method=method, path=path
            )
        except GrantError as exc:
            raise SfuError(401, str(exc)) from None

    def verify_relay(self, token: str, *, room: str) -> None:
        """Another worker asking for the room's pipe: a relay grant for this room."""
        grant = self.verify_grant(token, room=room)
        if grant.role is not PeerRole.relay:
            raise SfuError(403, "only a relay grant may ask for a pipe")

    # sessions

    def _room_for(self, grant: GrantClaims) -> Room:
        now = utcnow()
        if now > grant.ends_at + timedelta(seconds=self.settings.room_grace_s):
            raise SfuError(409, "the meeting has ended; the room is closed")
        room = self.rooms.get(grant.room)
        if room is None or room.closed:
            room = Room(grant, on_floor_changed=self._floor_changed)
            self.rooms[grant.room] = room
            log.info("room %s opened (occurrence %s)", room.name, room.occurrence_id)
        return room

    async def create_peer(
        self, direction: str, room_name: str, grant: GrantClaims, offer: str
    ) -> tuple[Peer, str]:
        """Answer a WHIP (publish) or WHEP (view) offer; the peer joins the room once connected."""
        if direction == "whip" and grant.role in (PeerRole.viewer, PeerRole.relay):
            raise SfuError(403, f"a {grant.role.value} grant cannot publish")
        room = self._room_for(grant)
        if direction == "whip" and room.is_edge:
            raise SfuError(409, "this media server only relays the room; publish to its origin")
        # No STUN/TURN for the worker itself: its media address is configured, not discovered
        # (aiortc would otherwise ask a public STUN server).
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peer = Peer(
            id=uuid.uuid4().hex,
            direction="ingest" if direction == "whip" else "egress",
            room_name=room.name,
            site_id=grant.site_id,
            site_name=grant.site_name,
            role=grant.role,
            pc=pc,
            remote_ufrags=_ice_ufrags(offer),
            etag=secrets.token_hex(8),
            created_at=utcnow(),
            grant_id=grant.jti,
            credential_id=grant.credential_id,
        )
        if peer.role is PeerRole.relay:
            self._serve_floor_channel(room, peer)
        try:
            answer = await self._negotiate(peer, offer)
            self._refuse_revoked(grant)  # revoked while the offer was being answered
        except BaseException:
            await pc.close()
            raise
        self._watch(room, peer)
        room.peers[peer.id] = peer
        # One live session per grant and direction: a hall that lost its network comes back
        # with the grant it holds before its old session has timed out, so the newer session
        # replaces the older one (rather than being refused), and a copied grant cannot open
        # sessions beside the hall's own.
        key = (grant.jti, peer.direction)
        previous = self._by_grant.get(key)
        self._by_grant[key] = peer
        if previous is not None:
            await self.remove_peer(previous, reason="replaced")
        return peer, answer

    async def _negotiate(self, peer: Peer, offer: str) -> str:
        pc = peer.pc
        if not offer.lstrip().startswith("v=0"):
            raise SfuError(400, "malformed SDP offer: it must start with 'v=0'")
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except Exception as exc:  # aiortc raises ValueError, KeyError... on malformed SDP
            raise SfuError(400, f"malformed SDP offer: {exc or type(exc).__name__}") from None
        transceivers = pc.getTransceivers()
        if not transceivers:
            raise SfuError(400, "the offer has no audio or video")
        if peer.role is PeerRole.relay:
            kinds = [t.kind for t in transceivers]
            if (kinds.count("video"), kinds.count("audio")) != (
                RELAY_VIDEO_TRACKS,
                RELAY_AUDIO_TRACKS,
            ):
                raise SfuError(
                    400,
                    f"a relay offer carries {RELAY_VIDEO_TRACKS} video and "
                    f"{RELAY_AUDIO_TRACKS} audio tracks",
                )
        wanted_direction = "send" if peer.direction == "ingest" else "recv"
        for transceiver in transceivers:
            if wanted_direction not in offered_direction(transceiver):
                verb = "send" if peer.direction == "ingest" else "receive"
                raise SfuError(
                    400, f"a {'WHIP' if verb == 'send' else 'WHEP'} offer must {verb} media"
                )
            allowed = [self.settings.video_codec] if transceiver.kind == "video" else AUDIO_CODECS
            if not restrict_codecs(transceiver, allowed):
                raise SfuError(
                    422,
                    f"unsupported {transceiver.kind} codec: this bridge takes {', '.join(allowed)}",
                )
        label = f"{peer.site_name} ({peer.id[:6]})"
        for transceiver in transceivers:
            if peer.direction == "ingest":
                peer.sources[transceiver.kind] = Source.attach(transceiver, label=label)
            else:
                slot = Slot.attach(transceiver, label=label)
                (peer.video_slots if slot.kind == "video" else peer.audio_slots).append(slot)
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except NoMediaPort as exc:
            log.warning("refused a %s session: %s", peer.direction, exc)
            raise SfuError(
                503, "this media server has no free media port; try again later"
            ) from None
        return pc.localDescription.sdp

    def _serve_floor_channel(self, room: Room, peer: Peer) -> None:
        """A relay session's data channel carries the floor down the tree from its opening."""

        @peer.pc.on("datachannel")
        def _on_channel(channel: Any) -> None:
            if channel.label != FLOOR_CHANNEL:
                return
            peer.floor_channel = channel
            send_state(channel, room.relay_state(peer))
            channel.on("open", lambda: send_state(channel, room.relay_state(peer)))

    def _watch(self, room: Room, peer: Peer) -> None:
        @peer.pc.on("connectionstatechange")
        async def _on_state() -> None:
            state = peer.pc.connectionState
            if state == "connected" and not peer.connected:
                peer.connected = True
                room.add(peer)
                if peer.sources:
                    self._pipes_changed(room)
                self._emit(EventType.joined, room, peer)
            elif state in ("failed", "closed"):
                await self.remove_peer(peer, reason=f"connection {state}")

        async def _give_up() -> None:
            await asyncio.sleep(CONNECT_TIMEOUT_S)
            if not peer.connected and peer.id in room.peers:
                await self.remove_peer(peer, reason="never connected")

        self._own(asyncio.get_running_loop().create_task(_give_up()))

    def find_peer(self, room_name: str, peer_id: str) -> Peer:
        room = self.rooms.get(room_name)
        peer = room.peers.get(peer_id) if room else None
        if peer is None:
            raise SfuError(404, "no such session")
        return peer

    async def trickle(self, peer: Peer, fragment: str) -> str | None:
        """RFC 9725 §4.3: add trickled candidates, or restart ICE when the fragment carries new
        credentials; returns the answer fragment of a restart (None for a plain trickle)."""
        mid: str | None = None
        ufrag = pwd = None
        end_of_candidates = False
        candidates = []
        for raw in fragment.splitlines():
            line = raw.strip()
            if line.startswith("a=ice-ufrag:"):
                ufrag = line.split(":", 1)[1]
            elif line.startswith("a=ice-pwd:"):
                pwd = line.split(":", 1)[1]
            elif line.startswith("a=mid:"):
                mid = line.split(":", 1)[1]
            elif line == "a=end-of-candidates":
                end_of_candidates = True
            elif line.startswith("a=candidate:"):
                try:
                    candidate = candidate_from_sdp(line[len("a=candidate:") :])
                except (ValueError, IndexError):
                    raise SfuError(400, f"malformed candidate: {line[:80]}") from None
                candidate.sdpMid = mid
                candidates.append(candidate)
        if ufrag is not None and ufrag not in peer.remote_ufrags:
            if not pwd:
                raise SfuError(400, "an ICE restart needs a=ice-pwd beside the new a=ice-ufrag")
            return await self._restart_ice(peer, ufrag, pwd, candidates, end_of_candidates)
        for candidate in candidates:
            await peer.pc.addIceCandidate(candidate)
        if end_of_candidates:
            await peer.pc.addIceCandidate(None)  # type: ignore[arg-type]
        return None

    async def _restart_ice(
        self,
        peer: Peer,
        ufrag: str,
        pwd: str,
        candidates: list[RTCIceCandidate],
        end_of_candidates: bool,
    ) -> str:
        if not peer.connected:
            raise SfuError(422, "ICE restart before the session connected; start a new session")
        previous = self._ice_restarts.pop(peer.id, None)
        if previous is not None:
            previous.cancel()  # superseded: its checks run with credentials no longer in use
        try:
            local = begin_ice_restart(peer.pc)
            checks = await complete_ice_restart(
                peer.pc,
                remote_ufrag=ufrag,
                remote_pwd=pwd,
                remote_candidates=candidates,
                end_of_candidates=end_of_candidates,
            )
        except IceRestartError as exc:
            raise SfuError(422, f"{exc}; start a new session") from None
        peer.remote_ufrags = {ufrag}
        peer.etag = secrets.token_hex(8)
        room = self.rooms.get(peer.room_name)
        self._ice_restarts[peer.id] = checks
        self._own(checks, lambda task: self._ice_restart_ended(room, peer, task))
        log.info("peer %s of %s restarts ICE", peer.id[:6], peer.site_name)
        lines = [f"a=ice-ufrag:{local.ufrag}", f"a=ice-pwd:{local.pwd}"]
        if local.mid is not None:
            lines.append(f"a=mid:{local.mid}")
        lines += [f"a=candidate:{candidate}" for candidate in local.candidates]
        lines.append("a=end-of-candidates")
        return "\r\n".join(lines) + "\r\n"

    def _ice_restart_ended(self, room: Room | None, peer: Peer, task: asyncio.Task[None]) -> None:
        if self._ice_restarts.get(peer.id) is task:
            del self._ice_restarts[peer.id]
        if task.cancelled() or room is None:
            return
        if task.exception() is None:
            log.info("peer %s of %s: ICE restart completed", peer.id[:6], peer.site_name)
            return
        if room.peers.get(peer.id) is peer:
            self._own(
                asyncio.get_running_loop().create_task(
                    self.remove_peer(peer, reason="ICE restart failed")
                )
            )

    def _own(
        self, task: asyncio.Task[None], on_done: Callable[[asyncio.Task[None]], None] | None = None
    ) -> None:
        """Keep `task` until it ends, so close() can cancel it."""
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        if on_done is not None:
            task.add_done_callback(on_done)

    def _forget(self, peer: Peer) -> None:
        key = (peer.grant_id, peer.direction)
        if self._by_grant.get(key) is peer:
            del self._by_grant[key]

    async def remove_peer(self, peer: Peer, *, reason: str) -> None:
        room = self.rooms.get(peer.room_name)
        if room is None or room.peers.get(peer.id) is not peer:
            return
        room.remove(peer)
        self._forget(peer)
        if peer.sources:
            self._pipes_changed(room)
        self.metrics.retire(peer)
        restart = self._ice_restarts.pop(peer.id, None)
        if restart is not None:
            restart.cancel()
        if peer.connected:
            self._emit(EventType.left, room, peer, detail={"reason": reason})
        await peer.close()
        log.info("peer %s of %s left %s: %s", peer.id[:6], peer.site_name, room.name, reason)

    # floor

    def _open_room(self, room_name: str) -> Room:
        room = self.rooms.get(room_name)
        if room is None or room.closed:
            raise SfuError(404, f"room {room_name} is not open")
        return room

    def floor_state(self, room_name: str) -> FloorState:
        return self._open_room(room_name).floor.state()

    def apply_floor(self, room_name: str, command: FloorCommand) -> FloorState:
        room = self._open_room(room_name)
        if room.is_edge:
            raise SfuError(409, "this media server relays the room; its origin takes the floor")
        try:
            return room.apply_floor(command)
        except FloorError as exc:
            raise SfuError(422, str(exc)) from None

    def _floor_changed(self, room: Room) -> None:
        self._pipes_changed(room)
        self._relay_floor(room)
        self._emit(EventType.floor_changed, room, None, floor=room.floor.state())

    def _relay_floor(self, room: Room) -> None:
        """Send the floor down to every relay session of the room (nodes below this one)."""
        for peer in room.relays():
            send_state(peer.floor_channel, room.relay_state(peer))

    # the cascade: an edge node relays the room from the node above it (sfu.cascade)

    async def _keepalive(self) -> None:
        """Every second: repeat each relay session's state and keep each pipe alive (the
        edges below take silence as a lost origin), and close a piped room whose origin has
        been silent for UPSTREAM_SILENCE_S, so that its halls join again elsewhere."""
        while True:
            await asyncio.sleep(RELAY_KEEPALIVE_S)
            now = time.monotonic()
            for room in list(self.rooms.values()):
                try:
                    self._relay_floor(room)
                    for pipe, _url, _token in room.pipes_out.values():
                        pipe.keepalive()
                    pipe_in = room.pipe_in
                    if pipe_in is not None and pipe_in.silent_for(now) > UPSTREAM_SILENCE_S:
                        log.warning("room %s: origin %s fell silent", room.name, room.origin_url)
                        await self._close_room(room, reason="upstream_lost")
                except Exception:
                    log.exception("room %s: keepalive failed", room.name)

    def _http(self) -> httpx.AsyncClient:
        """Calls to other workers and nodes (each with the room's relay grant)."""
        if self._admin is None:
            self._admin = httpx.AsyncClient(timeout=PIPE_REQUEST_TIMEOUT_S)
        return self._admin

    def _edge_room(
        self, room_name: str, request: CascadeRequest | ExtendRoom, *, fed_by: str
    ) -> Room:
        """The room to serve as an edge (opened now, as `request` describes it, if it is not
        open); 409 if this worker holds the room's publishers itself."""
        room = self.rooms.get(room_name)
        if room is not None and not room.closed and not room.is_edge and room.pipe_sources():
            raise SfuError(409, f"room {room_name} has its own publishers here; it is an origin")
        if room is None or room.closed:
            info = PipedRoomInfo(
                room=room_name,
                occurrence_id=request.occurrence_id,
                chair_site_id=request.chair_site_id,
                ends_at=request.ends_at,
            )
            room = Room(info, on_floor_changed=self._floor_changed)
            self.rooms[room_name] = room
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
            self.metrics.retire_sources(room.pipe_in.sources())
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
        room = self.rooms.get(room_name)
        if room is None or room.closed or not room.is_edge:
            return False
        self.metrics.retire_sources(room.feed_sources())
        upstream, room.upstream = room.upstream, None
        room.hold()
        if upstream is not None:
            await upstream.close(self._http())
        log.info("room %s: held here now; no longer relayed", room_name)
        return True

    async def _connect_upstream(self, room: Room, url: str, token: str) -> None:
        upstream: Upstream | None = None

        def on_state(state: RelayState) -> None:
            if room.upstream is upstream and not room.closed:
                room.use_relayed(state)
                self._relay_floor(room)
                self._pipes_changed(room)

        def on_lost() -> None:
            if room.upstream is upstream and not room.closed:
                self._own(asyncio.get_running_loop().create_task(self._reconnect(room, url)))

        upstream = Upstream(url, token, on_state=on_state, on_lost=on_lost)
        try:
            await upstream.open(self._http())
        except BaseException:
            await upstream.close(self._http())  # an answered session is ended upstream too
            raise
        previous, room.upstream = room.upstream, upstream
        room.origin_url = url
        room.use_relayed(None)  # the upstream tells which track carries whom once connected
        if previous is not None:
            self.metrics.retire_sources([*previous.video, *previous.audio])
            await previous.close(self._http())

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

    # pipes: one room over several workers (sfu.pipe)

    async def _admin_post(
        self, base_url: str, path: str, body: dict[str, Any], *, token: str
    ) -> httpx.Response:
        """POST to another worker's admin API with `token`: the room's relay grant, which
        that worker checks itself (workers share no secret)."""
        return await self._http().post(
            base_url.rstrip("/") + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )

    async def extend_room(self, room_name: str, request: ExtendRoom) -> PipeState:
        """Edge: serve `room_name` for the origin at `request.origin_url`, fed by a pipe.

        Called again (the origin moved, or its pipe broke), it replaces the pipe.
        """
        room = self._edge_room(room_name, request, fed_by=request.origin_url)
        self.metrics.retire_sources(room.feed_sources())
        if room.pipe_in is not None:
            room.pipe_in.close()
        if room.upstream is not None:  # relayed from another node until now
            await room.upstream.close(self._http())
            room.upstream = None
        pipe_in = await PipeIn.open(self.settings.media_ip)
        room.pipe_in = pipe_in
        room.pipe_token = request.token
        room.origin_url = request.origin_url.rstrip("/")
        ask = PipeRequest(
            edge_node_id=self.settings.node_id,
            edge_addr=pipe_in.local_addr,
            edge_url=self.settings.advertised_internal_url,
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
        room = self._open_room(room_name)
        if room.pipe_in is not None:
            raise SfuError(409, f"room {room_name} is piped here; pipe from its origin")
        previous = room.pipes_out.pop(request.edge_node_id, None)
        if previous is not None:
            previous[0].close()
        pipe = await PipeOut.open(request.edge_node_id, request.edge_addr, self.settings.media_ip)
        room.pipes_out[request.edge_node_id] = (pipe, request.edge_url, token)
        log.info("room %s piped to %s at %s", room_name, request.edge_node_id, request.edge_addr)
        return self._pipe_state(room, pipe)

    @staticmethod
    def _pipe_state(room: Room, pipe: PipeOut) -> PipeState:
        return PipeState(
            origin_addr=pipe.local_addr,
            sources=pipe.sync(room.pipe_sources()),
            floor=room.floor.state(),
        )

    def apply_pipe_state(self, room: Room, state: PipeState) -> None:
        """Edge: take the origin's sources and floor."""
        if room.pipe_in is None or not room.is_edge:
            raise SfuError(409, f"room {room.name} is not relayed here")
        sources = {
            (piped.site_id, piped.kind): room.pipe_in.source_for(
                piped, label=f"site {piped.site_id} from {room.origin_url}"
            )
            for piped in state.sources
        }
        self.metrics.retire_sources(room.pipe_in.retire({piped.ssrc for piped in state.sources}))
        room.use_piped(sources, state.floor)

    def _pipes_changed(self, room: Room) -> None:
        """Origin: tell every edge what the pipe now carries and who holds the floor."""
        for edge_node_id, (pipe, edge_url, token) in list(room.pipes_out.items()):
            state = self._pipe_state(room, pipe)
            self._own(
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

    # events and housekeeping

    def _emit(
        self,
        type_: EventType,
        room: Room,
        peer: Peer | None,
        *,
        stats: PeerStats | None = None,
        floor: FloorState | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        if self.reporter is None or (peer is not None and peer.role is PeerRole.relay):
            return  # a relay is a node, not a site: not in attendance
        self.reporter.emit(
            SfuEvent(
                id=uuid.uuid4().hex,
                type=type_,
                at=utcnow(),
                node_id=self.settings.node_id,
                room=room.name,
                occurrence_id=room.occurrence_id,
                site_id=peer.site_id if peer else None,
                peer_id=peer.id if peer else None,
                direction=peer.direction if peer else None,  # type: ignore[arg-type]
                stats=stats,
                floor=floor,
                detail=detail or {},
            )
        )

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        self._stats_due = loop.time() + self.settings.stats_interval_s
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            try:
                await self._close_ended_rooms()
                for room in self.rooms.values():
                    # pushes are not retried: an edge that missed one is set right here
                    self._pipes_changed(room)
                if loop.time() >= self._stats_due:
                    self._stats_due = loop.time() + self.settings.stats_interval_s
                    self.report_stats()
            except Exception:
                log.exception("housekeeping failed")

    async def _close_ended_rooms(self) -> None:
        limit = utcnow() - timedelta(seconds=self.settings.room_grace_s)
        for room in list(self.rooms.values()):
            if room.ends_at < limit:
                await self._close_room(room, reason="meeting_ended")

    async def _close_room(self, room: Room, *, reason: str) -> None:
        self.rooms.pop(room.name, None)
        self.metrics.room_closed(room.name)
        self.metrics.retire_sources(room.feed_sources())
        for peer in await room.close(self._http()):
            self._forget(peer)
            self.metrics.retire(peer)
            if peer.connected:
                self._emit(EventType.left, room, peer, detail={"reason": reason})
        log.info("room %s closed: %s", room.name, reason)

    def report_stats(self) -> None:
        """One `stats` event per connected peer: link quality since the last report."""
        interval = self.settings.stats_interval_s
        self.metrics.sample_cpu()
        for room in self.rooms.values():
            for peer in room.peers.values():
                if peer.connected:
                    stats = self._peer_stats(peer, interval)
                    self.metrics.observe(room.name, peer.direction, stats)
                    self._emit(EventType.stats, room, peer, stats=stats)
            if room.upstream is not None and room.upstream.connected:
                # the link to the node above: its loss and jitter, for IT staff's charts
                feed, _total = self._received_stats(room.feed_sources())
                self.metrics.observe(room.name, "upstream", feed)

    @staticmethod
    def _received_stats(sources: Iterable[Source]) -> tuple[PeerStats, int]:
        """Loss, jitter and packets of incoming tracks; and their payload bytes."""
        counted = [source.stats() for source in sources]
        received = sum(s.packets_received for s in counted)
        lost = sum(s.packets_lost for s in counted)
        stats = PeerStats(
            loss_ratio=lost / (received + lost) if received + lost else None,
            jitter_ms=max((s.jitter_s for s in counted), default=0.0) * 1000,
            packets=received,
        )
        return stats, sum(s.bytes_received for s in counted)

    @staticmethod
    def _peer_stats(peer: Peer, interval_s: float) -> PeerStats:
        if peer.direction == "ingest":
            stats, total = Worker._received_stats(peer.sources.values())
        else:
            slots = [s.stats() for s in peer.slots]
            total = sum(s.bytes_sent for s in slots)
            rtts = [s.rtt_s for s in slots if s.rtt_s is not None]
            losses = [s.fraction_lost for s in slots if s.fraction_lost is not None]
            jitters = [s.jitter_s for s in slots if s.jitter_s is not None]
            stats = PeerStats(
                rtt_ms=max(rtts) * 1000 if rtts else None,
                loss_ratio=max(losses) if losses else None,
                jitter_ms=max(jitters) * 1000 if jitters else None,
                packets=sum(s.packets_sent for s in slots),
            )
        stats.bitrate_kbps = max(0, total - peer.last_bytes) * 8 / 1000 / interval_s
        stats.interval_s = interval_s  # attendance credits media at most two intervals back
        peer.last_bytes = total
        return stats

    def describe(self) -> dict[str, Any]:
        return {
            "node_id": self.settings.node_id,
            "rooms": [
                {
                    "room": room.name,
                    "occurrence_id": room.occurrence_id,
                    "floor": room.floor.state().model_dump(mode="json"),
                    "upstream": room.origin_url,
                    "upstream_connected": room.upstream.connected if room.upstream else None,
                    "relays": len(room.relays()),
                    "peers": [
                        {
                            "id": p.id,
                            "site_id": p.site_id,
                            "direction": p.direction,
                            "connected": p.connected,
                        }
                        for p in room.peers.values()
                    ],
                }
                for room in self.rooms.values()
            ],
        }
