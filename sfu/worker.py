"""The SFU worker: owns the rooms of this process and their lifecycle, checks grants, holds
the floor API, and runs housekeeping and periodic stats.

What happens inside a room's connections is delegated: WHIP/WHEP sessions to `Sessions`
(`sfu.sessions`), the cascade and pipes to other nodes and workers to `Edges` (`sfu.edges`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Iterable
from contextlib import suppress
from datetime import timedelta
from typing import Any

from confbridge_kernel.contracts import (
    EventType,
    FloorCommand,
    FloorState,
    GrantClaims,
    GrantRevocation,
    PeerRole,
    RoomSchedule,
)
from sfu.admission import JoinGate
from sfu.config import WorkerSettings
from sfu.edges import Edges
from sfu.errors import SfuError
from sfu.events import EventReporter
from sfu.floor import FloorError
from sfu.grants import GrantError, GrantVerifier, WrongRoom
from sfu.heartbeat import Heartbeat
from sfu.metrics import WorkerMetrics, peer_stats, received_stats
from sfu.recording.control import Recordings
from sfu.room import Room, RoomInfo, open_room
from sfu.room_events import RoomEvents, utcnow
from sfu.rtc.ice import (
    close_shared_port,
    open_shared_port,
    set_consent_timing,
    use_host_candidates,
)
from sfu.rtc.transport import accept_rsa_dtls_peers
from sfu.sessions import Sessions
from sfu.sip.leg_video import LegVideo
from sfu.sip.legs import SipLegs
from sfu.tasks import PendingTasks

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 5.0
# Rooms ended by the control plane that are remembered (so old grants cannot reopen them).
MAX_ENDED_ROOMS = 10_000


class MediaPortUnavailable(RuntimeError):
    """The worker's single media port cannot be bound (taken, or a wrong address)."""


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
        self.events = RoomEvents(settings.node_id, reporter)
        self.rooms: dict[str, Room] = {}
        self._task: asyncio.Task[None] | None = None
        # connection watchdogs, ICE restarts, pipe pushes; owned here so close() can end them
        self.tasks = PendingTasks()
        # paces new sessions under a join storm; before the metrics, which read it
        self.gate = JoinGate(
            max_handshakes=settings.join_max_handshakes,
            rate_per_s=settings.join_rate_per_s,
            burst=settings.join_burst,
            queue_s=settings.join_queue_s,
            max_lag_s=settings.join_max_loop_lag_ms / 1000,
        )
        self.metrics = WorkerMetrics(self)
        self.heartbeat = Heartbeat(self)
        # credential ids of terminal tokens whose grants are void (the control plane's list,
        # from the latest heartbeat answer)
        self._revoked: dict[str, GrantRevocation] = {}
        self._stats_due = 0.0
        self.edges = Edges(
            settings,
            self.rooms,
            new_room=self._new_room,
            close_room=self.close_room,
            metrics=self.metrics,
            tasks=self.tasks,
        )
        self.sessions = Sessions(
            settings,
            self.rooms,
            new_room=self._new_room,
            refuse_revoked=self._refuse_revoked,
            sources_changed=self.edges.pipes_changed,
            events=self.events,
            metrics=self.metrics,
            tasks=self.tasks,
            gate=self.gate,
        )
        self.sip_legs = SipLegs(
            settings,
            verify_grant=lambda token: self.verify_grant(token, room=None),
            room_for=self.sessions.room_for,
            apply_floor=self.apply_floor,
            sources_changed=self.edges.pipes_changed,
            events=self.events,
            metrics=self.metrics,
        )
        self.sip_legs.video_factory = LegVideo
        self.recordings = Recordings(
            settings.recordings_dir,
            on_ended=self.events.recording_ended,
            mixed_audio=settings.recording_mixed_audio,
        )
        self.metrics.registry.register(self.recordings)

    @property
    def reporter(self) -> EventReporter | None:
        """Where events go (set by `start()` unless given)."""
        return self.events.reporter

    # lifecycle

    async def start(self) -> None:
        use_host_candidates(
            [self.settings.media_ip],
            announced_address=self.settings.announced_ip,
            port_range=self.settings.udp_port_range,
        )
        if self.settings.udp_mode == "single":
            await self._open_media_port()
        accept_rsa_dtls_peers()
        set_consent_timing(self.settings.ice_consent_interval_s, self.settings.ice_consent_failures)
        if self._verifier is None:
            self._verifier = await GrantVerifier.load(
                self.settings.grant_public_key_file,
                control_url=self.settings.control_url,
                node_key=self.settings.node_key or "",
            )
        if self.events.reporter is None:
            self.events.reporter = EventReporter(
                self.settings.control_url, self.settings.node_key or "", self.settings.spool_dir
            )
        self.events.reporter.start()
        # recordings this worker's previous process left unfinished (it died): repaired and
        # told to the control plane, without holding up the start
        self.tasks.own(asyncio.create_task(self._recover_recordings(), name="sfu-recovery"))
        self.gate.start()
        self.heartbeat.start()
        self._task = asyncio.create_task(self._housekeeping(), name="sfu-housekeeping")
        self.tasks.own(asyncio.create_task(self.edges.keepalive(), name="sfu-keepalive"))

    async def _recover_recordings(self) -> None:
        try:
            await self.recordings.recover()
        except Exception:  # the worker serves its rooms all the same
            log.exception("recovering unfinished recordings failed")

    async def close(self) -> None:
        await self.heartbeat.close()
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.tasks.close()
        await self.gate.close()
        await self.sip_legs.close()
        for room in list(self.rooms.values()):
            await self.close_room(room, reason="worker_stopped")
        if self.events.reporter is not None:
            await self.events.reporter.close()
        await self.edges.close()
        close_shared_port()

    async def _open_media_port(self) -> None:
        settings = self.settings
        try:
            await open_shared_port(
                settings.media_ip,
                settings.udp_port,
                announced_address=settings.announced_ip,
                announced_port=settings.announced_port,
                batch=settings.udp_batch,
                ice_lite=settings.ice_lite,
            )
        except OSError as exc:
            raise MediaPortUnavailable(
                f"cannot open the media port UDP {settings.media_ip}:{settings.udp_port} "
                f"({exc.strerror or exc}); free it or set CONFBRIDGE_SFU_UDP_PORT"
            ) from None

    # rooms

    def _new_room(self, info: RoomInfo) -> Room:
        """Open a room (replacing a closed one of the same name)."""
        room = Room(info, on_floor_changed=self._floor_changed)
        self.rooms[info.room] = room
        return room

    async def close_room(self, room: Room, *, reason: str) -> None:
        self.rooms.pop(room.name, None)
        await self.recordings.room_closed(room)
        self.metrics.room_closed(room.name)
        self.metrics.retire_sources(room.feed_sources())
        for peer in await room.close(self.edges.http()):
            self.sessions.forget(peer)
            self.metrics.retire(peer)
            if peer.connected:
                self.events.emit(EventType.left, room, peer, detail={"reason": reason})
        self.sip_legs.room_closed(room)
        log.info("room %s closed: %s", room.name, reason)

    async def reschedule(self, room_name: str, schedule: RoomSchedule) -> Room | None:
        """The meeting was extended (the room closes later) or ended (it closes now); None
        if the room is not open here."""
        if schedule.ended:
            ended = self.sessions.ended_rooms
            ended[room_name] = utcnow().timestamp()
            if len(ended) > MAX_ENDED_ROOMS:  # the oldest go first (insertion order)
                del ended[next(iter(ended))]
        room = self.rooms.get(room_name)
        if room is None or room.closed:
            return None
        if schedule.ended:
            await self.close_room(room, reason="meeting_ended")
        else:
            room.ends_at = schedule.ends_at
            log.info("room %s now closes after %s", room.name, schedule.ends_at.isoformat())
        return room

    async def _close_ended_rooms(self) -> None:
        limit = utcnow() - timedelta(seconds=self.settings.room_grace_s)
        for room in list(self.rooms.values()):
            if room.ends_at < limit:
                await self.close_room(room, reason="meeting_ended")

    # grants

    def verify_grant(
        self, token: str, *, room: str | None, site_id: int | None = None
    ) -> GrantClaims:
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
            if not self.sip_legs.close_for(peer, "revoked"):
                await self.sessions.remove_peer(peer, reason="revoked")

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

    # floor

    def floor_state(self, room_name: str) -> FloorState:
        return open_room(self.rooms, room_name).floor.state()

    def apply_floor(self, room_name: str, command: FloorCommand) -> FloorState:
        room = open_room(self.rooms, room_name)
        if room.is_edge:
            raise SfuError(409, "this media server relays the room; its origin takes the floor")
        presenter = room.content.presenter
        try:
            state = room.apply_floor(command)
        except FloorError as exc:
            raise SfuError(422, str(exc)) from None
        if presenter is not None and room.content.presenter is None:
            # stop_content: the presentation ended at once; its session goes now too
            self.tasks.own(
                asyncio.get_running_loop().create_task(
                    self.sessions.remove_peer(presenter, reason=f"stopped by {command.by}")
                )
            )
        return state

    def _floor_changed(self, room: Room) -> None:
        self.edges.pipes_changed(room)
        self.edges.relay_floor(room)
        self.events.emit(EventType.floor_changed, room, None, floor=room.floor.state())

    # housekeeping and stats

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        self._stats_due = loop.time() + self.settings.stats_interval_s
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            try:
                await self._close_ended_rooms()
                for room in self.rooms.values():
                    # pushes are not retried: an edge that missed one is set right here
                    self.edges.pipes_changed(room)
                if loop.time() >= self._stats_due:
                    self._stats_due = loop.time() + self.settings.stats_interval_s
                    self.report_stats()
            except Exception:
                log.exception("housekeeping failed")

    def report_stats(self) -> None:
        """One `stats` event per connected peer: link quality since the last report."""
        interval = self.settings.stats_interval_s
        self.metrics.sample_cpu()
        for room in self.rooms.values():
            for peer in room.peers.values():
                if peer.connected:
                    stats = peer_stats(peer, interval)
                    self.metrics.observe(room.name, peer.direction, stats)
                    if peer.content_source is None:  # a presentation is not a site's link
                        self.events.emit(EventType.stats, room, peer, stats=stats)
            if room.upstream is not None and room.upstream.connected:
                # the link to the node above: its loss and jitter, for IT staff's charts
                feed, _total = received_stats(room.feed_sources())
                self.metrics.observe(room.name, "upstream", feed)

    def describe(self) -> dict[str, Any]:
        return {
            "node_id": self.settings.node_id,
            "rooms": [
                {
                    "room": room.name,
                    "occurrence_id": room.occurrence_id,
                    "ends_at": room.ends_at.isoformat(),
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
                            "transport": p.transport,
                            # what a publisher sends ("video-small": its camera's thumbnail)
                            # and a hall viewer's layer of the speaker's camera (sfu.layers)
                            "sources": sorted(p.sources),
                            "layer": p.layer.layer if p.layer is not None else None,
                        }
                        for p in room.peers.values()
                    ],
                }
                for room in self.rooms.values()
            ],
        }
