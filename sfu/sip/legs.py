"""The SIP legs of one worker: opening them for the gateway, the lobby, admission into a room,
leaving, and the clocks they share (the 20 ms audio tick, RTCP reports, the media timeout).

What the legs need of the worker comes in as narrow collaborators, as for `sfu.sessions`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress

from confbridge_kernel.contracts import (
    EventType,
    FloorAction,
    FloorCommand,
    FloorState,
    GrantClaims,
    PeerRole,
)
from confbridge_kernel.sip_legs import SipLegEvent, SipLegList, SipLegOpen, SipLegOpened
from sfu.config import WorkerSettings
from sfu.errors import SfuError
from sfu.metrics import WorkerMetrics
from sfu.room import Peer, Room
from sfu.room_events import RoomEvents
from sfu.sip.audio import run_every_frame
from sfu.sip.dtmf import normalise_digits
from sfu.sip.leg import SipLeg, VideoFactory
from sfu.sip.metrics import SipLegMetrics
from sfu.sip.sdp import (
    LocalOffer,
    LocalPorts,
    MediaPlan,
    SdpError,
    accept_answer,
    answer_offer,
    render_answer,
    render_offer,
)
from sfu.sip.transport import NoSipPort, RtpTransport

log = logging.getLogger(__name__)

MEDIA_TIMEOUT_S = 30.0
"""A leg whose far end sent no RTP for this long, once media had started, is closed."""
RTCP_INTERVAL_S = 5.0
HOUSEKEEPING_INTERVAL_S = 1.0
MAX_LEGS = 500


class SipLegs:
    """Every SIP leg of a worker, by id; `close()` ends them all."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        verify_grant: Callable[[str], GrantClaims],
        room_for: Callable[[GrantClaims], Room],
        apply_floor: Callable[[str, FloorCommand], FloorState],
        sources_changed: Callable[[Room], None],
        events: RoomEvents,
        metrics: WorkerMetrics,
    ) -> None:
        self._settings = settings
        self._verify_grant = verify_grant
        self._room_for = room_for
        self._apply_floor = apply_floor
        self._sources_changed = sources_changed
        self._events = events
        self._metrics = metrics
        self.legs: dict[str, SipLeg] = {}
        self.leg_metrics = SipLegMetrics(metrics.registry, lambda: self.legs.values())
        self._offers: dict[str, LocalOffer] = {}
        self._waiting: dict[str, GrantClaims] = {}  # admitted before the far end answered
        # Video is forwarded by a video path (`sfu.sip.video`) when one is plugged in here;
        # until then video m-lines are refused (port 0) and offers carry audio only.
        self.video_factory: VideoFactory | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None

    @property
    def media_address(self) -> str:
        """The address the far end sends media to (the announced one behind a 1:1 NAT)."""
        return self._settings.announced_ip or self._settings.media_ip

    def find(self, leg_id: str) -> SipLeg:
        leg = self.legs.get(leg_id)
        if leg is None:
            raise SfuError(404, "no such SIP leg")
        return leg

    # the contract's calls

    async def open(self, request: SipLegOpen) -> SipLegOpened:
        """Open a leg: answer the caller's offer, or offer for a call out."""
        if request.lobby == (request.token is not None):
            raise SfuError(422, "give a join grant (token) or lobby=true, not both or neither")
        if len(self.legs) >= MAX_LEGS:
            raise SfuError(503, "this media server holds as many SIP legs as it can")
        grant = self._check_grant(request.token) if request.token is not None else None
        leg = SipLeg(
            call_id=request.call_id,
            remote_uri=request.remote_uri,
            display_name=request.display_name,
            upstream=request.upstream,
            direction=request.direction,
        )
        leg.on_digits = self._on_digits
        try:
            sdp = await self._negotiate(leg, request.offer)
        except BaseException:
            leg.close("refused")
            raise
        self.legs[leg.id] = leg
        self.leg_metrics.leg_opened(leg)
        self._start()
        if grant is not None:
            try:
                self._admit_when_ready(leg, grant)
            except BaseException:
                self._close(leg, "refused")
                raise
        log.info("%r opened for %s", leg, request.remote_uri[:80])
        return SipLegOpened(leg_id=leg.id, sdp=sdp)

    async def _negotiate(self, leg: SipLeg, offer: str | None) -> str:
        video = self.video_factory is not None
        plan = None
        if offer is not None:
            try:
                plan = answer_offer(offer, can_forward_video=video)
            except SdpError as exc:
                raise SfuError(400, f"SDP offer: {exc}") from None
        assert plan is None or plan.audio is not None
        mux = plan.audio.rtcp_mux if plan is not None and plan.audio else False
        ports = await self._bind(leg.transport, mux=mux)
        video_ports = None
        if (plan is None and video) or (plan is not None and plan.video is not None):
            video_mux = plan.video.rtcp_mux if plan is not None and plan.video else False
            video_ports = await self._bind(leg.open_video_transport(), mux=video_mux)
        if plan is None:
            local = render_offer(address=self.media_address, audio=ports, video=video_ports)
            self._offers[leg.id] = local
            return local.sdp
        self._use_plan(leg, plan)
        return render_answer(plan, address=self.media_address, audio=ports, video=video_ports)

    async def _bind(self, transport: RtpTransport, *, mux: bool) -> LocalPorts:
        try:
            await transport.bind(self._settings.media_ip, self._settings.udp_port_range, mux=mux)
        except NoSipPort as exc:
            log.warning("refused a SIP leg: %s", exc)
            raise SfuError(503, "this media server has no free media port; try later") from None
        return LocalPorts(transport.local_port, transport.local_rtcp_port)

    def _use_plan(self, leg: SipLeg, plan: MediaPlan) -> None:
        """Take the negotiated media; hand accepted video to the video path."""
        leg.use_plan(plan)
        if plan.video is not None and leg.video_transport is not None and self.video_factory:
            leg.video_transport.connect(plan.video.remote, plan.video.remote_rtcp, None)
            leg.video = self.video_factory(leg, plan.video, leg.video_transport)
        else:
            leg.close_video()

    def answer(self, leg_id: str, sdp: str) -> None:
        """The far end's answer to the worker's offer (a call out)."""
        leg = self.find(leg_id)
        offer = self._offers.get(leg_id)
        if offer is None:
            raise SfuError(409, "this leg made no offer, or its answer was already given")
        try:
            plan = accept_answer(offer, sdp, can_forward_video=self.video_factory is not None)
        except SdpError as exc:
            raise SfuError(400, f"SDP answer: {exc}") from None
        del self._offers[leg_id]
        self._use_plan(leg, plan)
        grant = self._waiting.pop(leg_id, None)
        if grant is not None:
            self._admit(leg, grant)

    def admit(self, leg_id: str, token: str) -> None:
        """The lobby caller gave the PIN: the leg joins the grant's room as its site."""
        leg = self.find(leg_id)
        if leg.member is not None or leg_id in self._waiting:
            raise SfuError(409, "this leg is already admitted")
        self._admit_when_ready(leg, self._check_grant(token))

    def dtmf(self, leg_id: str, digits: str) -> None:
        """Digits the gateway received as SIP INFO: as if heard in RTP."""
        leg = self.find(leg_id)
        try:
            keys = normalise_digits(digits)
        except ValueError as exc:
            raise SfuError(422, str(exc)) from None
        for key in keys:
            leg.digit(key)

    def list_(self) -> SipLegList:
        """Every open leg, oldest first."""
        now = time.monotonic()
        legs = sorted(self.legs.values(), key=lambda leg: leg.opened_at)
        return SipLegList(node_id=self._settings.node_id, legs=[leg.info(now) for leg in legs])

    def follow(self, leg_id: str) -> AsyncIterator[SipLegEvent]:
        """The leg's events until it closes."""
        return self.find(leg_id).events.follow()

    def close_leg(self, leg_id: str, reason: str) -> None:
        """The call ended."""
        self._close(self.find(leg_id), reason)

    # the room

    def _check_grant(self, token: str) -> GrantClaims:
        grant = self._verify_grant(token)
        if grant.role is PeerRole.relay:
            raise SfuError(403, "a relay grant cannot join as a site")
        return grant

    def _admit_when_ready(self, leg: SipLeg, grant: GrantClaims) -> None:
        if leg.plan is None:
            self._waiting[leg.id] = grant  # joins when the far end's answer comes
            return
        self._admit(leg, grant)

    def _admit(self, leg: SipLeg, grant: GrantClaims) -> None:
        publish = grant.role is not PeerRole.viewer
        room = self._room_for(grant)
        if publish and room.is_edge:
            raise SfuError(409, "this media server relays the room; send the call to its origin")
        member = leg.join(room, grant, publish=publish)
        for peer in (member.ingest, member.egress):
            room.add(peer)
        if publish:
            self._sources_changed(room)
        for peer in (member.ingest, member.egress):
            self._events.emit(EventType.joined, room, peer)
        log.info("%r joined %s as %s", leg, room.name, grant.site_name)

    def _leave(self, leg: SipLeg, reason: str) -> None:
        member = leg.member
        if member is None:
            return
        room = member.room
        peers = (member.ingest, member.egress)
        if room.peers.get(member.ingest.id) is member.ingest:
            for peer in peers:
                room.remove(peer)
            if member.ingest.sources:
                self._sources_changed(room)
            for peer in peers:
                self._metrics.retire(peer)
                self._events.emit(EventType.left, room, peer, detail={"reason": reason})
        leg.leave()

    def _on_digits(self, leg: SipLeg, digits: str) -> None:
        member = leg.member
        if member is None:
            return
        command = FloorCommand(
            action=FloorAction.raise_hand, site_id=member.grant.site_id, by=f"sip:{leg.id[:8]}"
        )
        try:
            self._apply_floor(member.room.name, command)
        except SfuError as exc:
            log.warning("%r: raising the hand failed: %s", leg, exc.message)

    def close_for(self, peer: Peer, reason: str) -> bool:
        """End the leg `peer` belongs to (its grant was revoked, say); False if none does."""
        for leg in list(self.legs.values()):
            member = leg.member
            if member is not None and peer in (member.ingest, member.egress):
                self._close(leg, reason)
                return True
        return False

    def room_closed(self, room: Room) -> None:
        """The room closed (its peers, the legs' among them, are gone): end its legs."""
        for leg in [leg for leg in self.legs.values() if leg.member and leg.member.room is room]:
            self._close(leg, "room closed")

    def _close(self, leg: SipLeg, reason: str) -> None:
        if leg.id in self.legs:
            self.leg_metrics.leg_closed(leg, reason)  # before its streams go
        self._leave(leg, reason)
        leg.close(reason)
        self.legs.pop(leg.id, None)
        self._offers.pop(leg.id, None)
        self._waiting.pop(leg.id, None)

    # clocks

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._ticker is None or self._ticker.done():
            ticking = run_every_frame(self._tick, "SIP legs")
            self._ticker = loop.create_task(ticking, name="sip-tick")
        if self._housekeeping is None or self._housekeeping.done():
            self._housekeeping = loop.create_task(self._keep(), name="sip-housekeeping")

    def _tick(self) -> None:
        for leg in list(self.legs.values()):
            if leg.member is not None:
                leg.tick()

    async def _keep(self) -> None:
        report_due = time.monotonic() + RTCP_INTERVAL_S
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            now = time.monotonic()
            try:
                self.close_silent(now)
                if now >= report_due:
                    report_due = now + RTCP_INTERVAL_S
                    for leg in self.legs.values():
                        leg.transport.send_report()
                        if leg.video_transport is not None:
                            leg.video_transport.send_report()
            except Exception:
                log.exception("SIP leg housekeeping failed")

    def close_silent(self, now: float) -> None:
        """Close the legs whose far end stopped sending RTP (`MEDIA_TIMEOUT_S`)."""
        for leg in list(self.legs.values()):
            if leg.silent_for(now) > MEDIA_TIMEOUT_S:
                self._close(leg, "no media")

    async def close(self) -> None:
        """End every leg and the clocks (the worker stops)."""
        for leg in list(self.legs.values()):
            self._close(leg, "worker stopped")
        for task in (self._ticker, self._housekeeping):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        self._ticker = self._housekeeping = None
