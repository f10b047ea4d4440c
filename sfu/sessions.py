"""WHIP/WHEP sessions of one worker: answering offers, trickle and ICE restarts, leaving.

A session (a `Peer`) joins its room once connected. One live session is kept per grant and
direction. What a session needs of the worker comes in as narrow collaborators: the rooms, a
way to open one, the revocation check, the events, the metrics, and whom to tell when a room's
sources change (the pipes to its edges).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceCandidate,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from confbridge_kernel.contracts import GrantClaims, GrantPurpose, PeerRole
from sfu.admission import HANDSHAKE_HOLD_S, JoinGate, Ticket
from sfu.cascade import (
    FLOOR_CHANNEL,
    RELAY_AUDIO_TRACKS,
    RELAY_CONTENT_TRACKS,
    RELAY_VIDEO_TRACKS,
    send_state,
)
from sfu.codecs import H264
from sfu.config import WorkerSettings
from sfu.content import attach_content, check_presenter, joined_event, left_event
from sfu.errors import SfuError
from sfu.forwarding import Slot, Source
from sfu.gallery import attach_gallery, check_gallery
from sfu.layers import SMALL_MAX_BITRATE_BPS, SMALL_VIDEO
from sfu.metrics import WorkerMetrics
from sfu.room import Peer, Room, RoomInfo
from sfu.room_events import RoomEvents, utcnow
from sfu.rtc.egress import RtpEgress
from sfu.rtc.ice import (
    IceRestartError,
    NoMediaPort,
    begin_ice_restart,
    complete_ice_restart,
    end_ice_watch_on_close,
    share_port,
)
from sfu.rtc.sdp import bundle_transports, offered_direction, restrict_codecs
from sfu.tasks import PendingTasks

log = logging.getLogger(__name__)

AUDIO_CODECS = ["audio/opus"]
# A peer that has not connected this long after its offer is given up.
CONNECT_TIMEOUT_S = 30.0
# Grants admitted lately that are remembered before the expired ones are pruned.
ADMITTED_GRANTS_KEPT = 1000


def _ice_ufrags(sdp: str) -> set[str]:
    return {
        line.split(":", 1)[1].strip()
        for line in sdp.splitlines()
        if line.startswith("a=ice-ufrag:")
    }


class Sessions:
    """The WHIP (publish) and WHEP (view) sessions of a worker's rooms."""

    def __init__(
        self,
        settings: WorkerSettings,
        rooms: dict[str, Room],
        *,
        new_room: Callable[[RoomInfo], Room],
        refuse_revoked: Callable[[GrantClaims], None],
        sources_changed: Callable[[Room], None],
        events: RoomEvents,
        metrics: WorkerMetrics,
        tasks: PendingTasks,
        gate: JoinGate | None = None,
    ) -> None:
        self._settings = settings
        # paces new sessions (sfu.admission); None: every join starts at once
        self._gate = gate
        self._rooms = rooms
        self._new_room = new_room
        self._refuse_revoked = refuse_revoked
        # a room's sources changed: its edges are told what their pipes carry now
        self._sources_changed = sources_changed
        self._events = events
        self._metrics = metrics
        self._tasks = tasks
        # the checks of each peer's latest ICE restart, by peer id
        self._ice_restarts: dict[str, asyncio.Task[None]] = {}
        # the one live session of each grant and direction
        self._by_grant: dict[tuple[str, str], Peer] = {}
        # rooms whose meeting the control plane ended, and when (Unix time): a grant issued
        # before that does not open them again
        self.ended_rooms: dict[str, float] = {}
        # the handshake slot of each session admitted and not yet connected, by peer id
        self._tickets: dict[str, Ticket] = {}
        # when a grant (its jti) was last admitted: its hall's other session goes first
        self._admitted_at: dict[str, float] = {}

    def room_for(self, grant: GrantClaims) -> Room:
        """The grant's room, opened now if it is not (409 once the meeting has ended)."""
        now = utcnow()
        room = self._rooms.get(grant.room)
        if room is not None and room.closed:
            room = None
        # an extension told to this node outlives the grants issued before it
        ends_at = max(grant.ends_at, room.ends_at) if room is not None else grant.ends_at
        if now > ends_at + timedelta(seconds=self._settings.room_grace_s):
            raise SfuError(409, "the meeting has ended; the room is closed")
        ended_at = self.ended_rooms.get(grant.room)
        if ended_at is not None and grant.iat <= ended_at:
            raise SfuError(409, "the meeting has ended; the room is closed")
        if room is None:
            room = self._new_room(grant)
            log.info("room %s opened (occurrence %s)", room.name, room.occurrence_id)
        elif grant.ends_at > room.ends_at:
            room.ends_at = grant.ends_at  # a grant issued after an extension
        if grant.prefers_h264:
            room.prefer_h264()
        return room

    async def create_peer(
        self, direction: str, room_name: str, grant: GrantClaims, offer: str
    ) -> tuple[Peer, str]:
        """Answer a WHIP (publish) or WHEP (view) offer; the peer joins the room once connected."""
        if direction == "whip" and grant.role in (PeerRole.viewer, PeerRole.relay):
            raise SfuError(403, f"a {grant.role.value} grant cannot publish")
        room = self.room_for(grant)
        check_presenter(direction, grant, room.floor)
        check_gallery(direction, grant)
        if direction == "whip" and room.is_edge:
            raise SfuError(409, "this media server only relays the room; publish to its origin")
        ticket = await self._admit(grant, direction)
        try:
            peer, answer = await self._open(room, direction, grant, offer)
        except BaseException:
            ticket.release()
            raise
        self._tickets[peer.id] = ticket
        return peer, answer

    async def _admit(self, grant: GrantClaims, direction: str) -> Ticket:
        """A handshake slot from the gate: relays between media servers, the chair and the
        other session of a hall admitted already (its WHEP beside its WHIP) go first."""
        if self._gate is None:
            return Ticket(None)
        loop = asyncio.get_running_loop()
        other = "egress" if direction == "whip" else "ingest"

        def hall_admitted() -> bool:
            admitted_at = self._admitted_at.get(grant.jti)
            return (grant.jti, other) in self._by_grant or (
                admitted_at is not None and loop.time() - admitted_at < HANDSHAKE_HOLD_S
            )

        priority = grant.role in (PeerRole.relay, PeerRole.chair) or hall_admitted()
        ticket = await self._gate.admit(priority=priority, promoted=hall_admitted)
        now = loop.time()
        if len(self._admitted_at) > ADMITTED_GRANTS_KEPT:
            self._admitted_at = {
                jti: at for jti, at in self._admitted_at.items() if now - at < HANDSHAKE_HOLD_S
            }
        self._admitted_at[grant.jti] = now
        return ticket

    def _handshake_done(self, peer: Peer) -> None:
        ticket = self._tickets.pop(peer.id, None)
        if ticket is not None:
            ticket.release()

    async def _open(
        self, room: Room, direction: str, grant: GrantClaims, offer: str
    ) -> tuple[Peer, str]:
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
            purpose=grant.purpose,
        )
        if peer.role is PeerRole.relay:
            self._serve_floor_channel(room, peer)
        try:
            answer = await self._negotiate(room, peer, offer)
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

    def _video_codecs(self, room: Room) -> list[str]:
        """The video formats a session of `room` is answered with, preferred first."""
        configured = self._settings.video_codec
        if room.prefers_h264 and configured.lower() != H264:
            # H.264 first, for the room systems; the configured codec still serves a peer
            # that offers no H.264 (its video reaches WebRTC viewers only)
            return [H264, configured]
        return [configured]

    async def _negotiate(self, room: Room, peer: Peer, offer: str) -> str:
        pc = peer.pc
        if not offer.lstrip().startswith("v=0"):
            raise SfuError(400, "malformed SDP offer: it must start with 'v=0'")
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except Exception as exc:  # aiortc raises ValueError, KeyError... on malformed SDP
            raise SfuError(400, f"malformed SDP offer: {exc or type(exc).__name__}") from None
        bundle_transports(pc, offer)
        transceivers = pc.getTransceivers()
        if not transceivers:
            raise SfuError(400, "the offer has no audio or video")
        if peer.role is PeerRole.relay:
            kinds = [t.kind for t in transceivers]
            # the content track is optional: an edge of an older release offers none
            videos = range(RELAY_VIDEO_TRACKS, RELAY_VIDEO_TRACKS + RELAY_CONTENT_TRACKS + 1)
            if kinds.count("video") not in videos or kinds.count("audio") != RELAY_AUDIO_TRACKS:
                raise SfuError(
                    400,
                    f"a relay offer carries {RELAY_VIDEO_TRACKS} video and "
                    f"{RELAY_AUDIO_TRACKS} audio tracks, then at most "
                    f"{RELAY_CONTENT_TRACKS} more video track for content",
                )
        wanted_direction = "send" if peer.direction == "ingest" else "recv"
        for transceiver in transceivers:
            if wanted_direction not in offered_direction(transceiver):
                verb = "send" if peer.direction == "ingest" else "receive"
                raise SfuError(
                    400, f"a {'WHIP' if verb == 'send' else 'WHEP'} offer must {verb} media"
                )
            allowed = self._video_codecs(room) if transceiver.kind == "video" else AUDIO_CODECS
            if not restrict_codecs(transceiver, allowed):
                raise SfuError(
                    422,
                    f"unsupported {transceiver.kind} codec: this bridge takes {', '.join(allowed)}",
                )
        label = f"{peer.site_name} ({peer.id[:6]})"
        if peer.purpose is GrantPurpose.gallery:
            attach_gallery(peer, transceivers, label)  # its slots follow its layout, not the floor
            return await self._answer(peer)
        content = attach_content(peer, transceivers, label)  # a presenter's, or a viewer's
        rest = [t for t in transceivers if t is not content]
        if peer.direction == "ingest":
            if content is None:
                self._attach_sources(peer, rest, label)
        else:
            for transceiver in rest:
                egress = RtpEgress(transceiver)
                slot = Slot(egress, label=label)
                (peer.video_slots if slot.kind == "video" else peer.audio_slots).append(slot)
                if slot.kind == "video" and peer.video_link is None:
                    peer.video_link = egress.stats  # what the viewer reports: its layer
        return await self._answer(peer)

    async def _answer(self, peer: Peer) -> str:
        pc = peer.pc
        assert pc is not None
        share_port(pc)  # single-port mode: gather on the worker's one media socket
        end_ice_watch_on_close(pc)
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except NoMediaPort as exc:
            log.warning("refused a %s session: %s", peer.direction, exc)
            raise SfuError(
                503, "this media server has no free media port; try again later"
            ) from None
        return pc.localDescription.sdp

    @staticmethod
    def _attach_sources(peer: Peer, transceivers: list[Any], label: str) -> None:
        """A hall's camera comes as two video m-lines, in this order: the main stream, then
        its thumbnail (sfu.layers); a hall that sends one has no thumbnail."""
        videos = [t for t in transceivers if t.kind == "video"]
        audios = [t for t in transceivers if t.kind == "audio"]
        if len(videos) > 2 or len(audios) > 1:
            raise SfuError(
                400,
                "a WHIP offer carries at most two video tracks (the camera, then its "
                "thumbnail) and one audio track",
            )
        for kind, transceiver in zip(("video", SMALL_VIDEO), videos, strict=False):
            small = kind == SMALL_VIDEO
            peer.sources[kind] = Source.attach(
                transceiver,
                label=f"{label} thumbnail" if small else label,
                max_bps=SMALL_MAX_BITRATE_BPS if small else 0,
            )
        for transceiver in audios:
            peer.sources["audio"] = Source.attach(transceiver, label=label)

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
                self._handshake_done(peer)
                replaced = room.content.presenter if peer.content_source else None
                room.add(peer)
                if peer.sources:
                    self._sources_changed(room)
                if replaced is not None:  # one presenter at a time (sfu.content)
                    await self.remove_peer(replaced, reason="replaced by another presenter")
                self._events.emit(joined_event(peer), room, peer)
            elif state in ("failed", "closed"):
                await self.remove_peer(peer, reason=f"connection {state}")

        async def _give_up() -> None:
            await asyncio.sleep(CONNECT_TIMEOUT_S)
            if not peer.connected and peer.id in room.peers:
                await self.remove_peer(peer, reason="never connected")

        self._tasks.own(asyncio.get_running_loop().create_task(_give_up()))

    def find_peer(self, room_name: str, peer_id: str) -> Peer:
        room = self._rooms.get(room_name)
        peer = room.peers.get(peer_id) if room else None
        if peer is None or peer.pc is None:  # a SIP leg's peers are the gateway's, not WHIP's
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
        room = self._rooms.get(peer.room_name)
        self._ice_restarts[peer.id] = checks
        self._tasks.own(checks, lambda task: self._ice_restart_ended(room, peer, task))
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
            self._tasks.own(
                asyncio.get_running_loop().create_task(
                    self.remove_peer(peer, reason="ICE restart failed")
                )
            )

    def forget(self, peer: Peer) -> None:
        """Drop `peer` as its grant's live session (its room is closing)."""
        key = (peer.grant_id, peer.direction)
        if self._by_grant.get(key) is peer:
            del self._by_grant[key]

    async def remove_peer(self, peer: Peer, *, reason: str) -> None:
        """Take `peer` out of its room and close it; nothing if it has left already."""
        self._handshake_done(peer)
        room = self._rooms.get(peer.room_name)
        if room is None or room.peers.get(peer.id) is not peer:
            return
        room.remove(peer)
        self.forget(peer)
        if peer.sources:
            self._sources_changed(room)
        self._metrics.retire(peer)
        restart = self._ice_restarts.pop(peer.id, None)
        if restart is not None:
            restart.cancel()
        if peer.connected:
            self._events.emit(left_event(peer), room, peer, detail={"reason": reason})
        await peer.close()
        log.info("peer %s of %s left %s: %s", peer.id[:6], peer.site_name, room.name, reason)
