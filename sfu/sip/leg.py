"""One SIP leg: the media of one SIP call, in a room's lobby or in the room as a site.

A leg owns its RTP transport (`sfu.sip.transport`), its DTMF receiver and its event stream.
Admitted, it joins the room as one more site, the way a hall does with WHIP and WHEP: an ingest
`Peer` whose audio `Source` the leg's `Uplink` feeds, and an egress `Peer` whose audio slots the
leg's `Downlink` mixes, so the floor, mutes, voice activation, `GET /rooms` and attendance treat
it as a site. Video, when negotiated, is handed to a `VideoPath` (see `sfu.sip.video`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from confbridge_kernel.contracts import GrantClaims, PeerStats
from confbridge_kernel.sip_legs import SipLegEvent, SipLegInfo
from sfu.forwarding import Slot, Source
from sfu.room import Peer, Room
from sfu.room_events import utcnow
from sfu.sip.audio import ROOM_OPUS, DecodingEgress, Downlink, Uplink
from sfu.sip.dtmf import DtmfReceiver
from sfu.sip.sdp import MediaPlan, VideoPlan
from sfu.sip.transport import RemoteReport, RtpTransport, Srtp

log = logging.getLogger(__name__)

LEG_AUDIO_SLOTS = 2
"""What a hall hears: the speaker and the chair (`Floor.audio_for`), never itself."""
RAISE_HAND_DIGITS = "*9"
MAX_EVENTS = 1000


class VideoPath(Protocol):
    """The video of a leg, forwarded without decoding (provided by `sfu.sip.video`)."""

    def attach(self, room: Room, site_id: int) -> None:
        """The leg joined `room` as `site_id`: publish and view video there."""
        ...

    def on_rtp(self, packet: bytes) -> None:
        """One RTP packet of the leg's video stream (decrypted)."""
        ...

    def on_rtcp(self, packet: bytes) -> None:
        """One RTCP packet of the leg's video stream (decrypted)."""
        ...

    def close(self) -> None:
        """The leg ended or left its room."""
        ...


VideoFactory = Callable[["SipLeg", VideoPlan, RtpTransport], VideoPath]
"""Makes the video path of a leg whose video was accepted: the leg, what was negotiated, and
the video stream's own transport (its sockets; the path sends on it)."""


class LegEventStream:
    """The leg's events for the gateway: every subscriber gets them all, from the first."""

    def __init__(self) -> None:
        self._items: list[SipLegEvent] = []
        self._changed = asyncio.Event()
        self.closed = False

    def publish(self, event: SipLegEvent) -> None:
        if self.closed or len(self._items) >= MAX_EVENTS:
            return
        self._items.append(event)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self, event: SipLegEvent) -> None:
        self.publish(event)
        self.closed = True

    async def follow(self) -> AsyncIterator[SipLegEvent]:
        """Every event so far, then each new one, until the leg closes."""
        sent = 0
        while True:
            changed = self._changed
            while sent < len(self._items):
                yield self._items[sent]
                sent += 1
            if self.closed:
                return
            await changed.wait()


@dataclass
class Membership:
    """The leg inside a room: the site it is, its two peers and the media paths."""

    room: Room
    grant: GrantClaims
    ingest: Peer
    egress: Peer
    uplink: Uplink
    downlink: Downlink


class SipLeg:
    """The media of one SIP call; see the module's docstring."""

    def __init__(
        self,
        *,
        call_id: str,
        remote_uri: str,
        display_name: str,
        upstream: bool,
        direction: Literal["in", "out"] = "in",
    ) -> None:
        self.id = uuid.uuid4().hex
        self.call_id = call_id
        self.remote_uri = remote_uri
        self.display_name = display_name
        self.upstream = upstream
        self.direction: Literal["in", "out"] = direction
        self.opened_at = utcnow()
        self._opened_mono = time.monotonic()
        self.plan: MediaPlan | None = None
        # each receiver report of the far end, by media ("audio", "video"): metrics
        self.on_report: Callable[[str, RemoteReport], None] = lambda _media, _report: None
        self.transport = RtpTransport(
            on_rtp=self._on_rtp, on_rtcp=lambda _data: None, clock_rate=8000
        )
        self.transport.on_report = lambda report: self.on_report("audio", report)
        self.events = LegEventStream()
        self.video: VideoPath | None = None
        self.video_transport: RtpTransport | None = None
        self.member: Membership | None = None
        self.on_digits: Callable[[SipLeg, str], None] = lambda _leg, _digits: None
        self._dtmf = DtmfReceiver()
        self._typed = ""
        self.media_started_at: float | None = None
        self.last_rtp_at: float | None = None
        self.closed = False
        self.close_reason: str | None = None

    def __repr__(self) -> str:
        where = self.member.room.name if self.member else "lobby"
        return f"SipLeg({self.id[:8]}, {self.call_id[:40]!r}, {where})"

    @property
    def codec_name(self) -> str | None:
        codec = self.plan.audio.codec if self.plan and self.plan.audio else None
        return f"{codec.name}/{codec.clock_rate}" if codec else None

    @property
    def video_codec_name(self) -> str | None:
        """The video codec forwarded, while the leg has a video path."""
        codec = self.plan.video.codec if self.plan and self.plan.video else None
        return f"{codec.name}/{codec.clock_rate}" if codec and self.video else None

    def info(self, now: float) -> SipLegInfo:
        """What IT staff see of the call (`GET /sip-legs`); `now` is `time.monotonic()`."""
        member = self.member
        reports = [self.transport.remote_report]
        if self.video_transport is not None:
            reports.append(self.video_transport.remote_report)
        sent = [r.fraction_lost for r in reports if r.fraction_lost is not None]
        return SipLegInfo(
            leg_id=self.id,
            call_id=self.call_id,
            remote_uri=self.remote_uri,
            display_name=self.display_name,
            direction=self.direction,
            upstream=self.upstream,
            room=member.room.name if member else None,
            occurrence_id=member.grant.occurrence_id if member else None,
            site_id=member.grant.site_id if member else None,
            site_name=member.grant.site_name if member else None,
            audio_codec=self.codec_name,
            video_codec=self.video_codec_name,
            opened_at=self.opened_at,
            duration_s=round(max(0.0, now - self._opened_mono), 1),
            loss_sent_ratio=max(sent) if sent else None,
            loss_received_ratio=self.transport.stats.loss_ratio,
        )

    def open_video_transport(self) -> RtpTransport:
        """The sockets of the video stream; their packets go to the video path, if any."""

        def on_rtp(data: bytes, _now: float) -> None:
            if self.video is not None and self.member is not None:
                self.video.on_rtp(data)

        def on_rtcp(data: bytes) -> None:
            if self.video is not None and self.member is not None:
                self.video.on_rtcp(data)

        self.video_transport = RtpTransport(on_rtp=on_rtp, on_rtcp=on_rtcp, clock_rate=90000)
        self.video_transport.on_report = lambda report: self.on_report("video", report)
        return self.video_transport

    def close_video(self) -> None:
        """No video (refused, or the leg ended): the path and its sockets go."""
        if self.video is not None:
            self.video.close()
            self.video = None
        if self.video_transport is not None:
            self.video_transport.close()
            self.video_transport = None

    def use_plan(self, plan: MediaPlan) -> None:
        """Take the negotiated media (an answer given or received): keys and addresses."""
        audio = plan.audio
        assert audio is not None
        self.plan = plan
        self.transport.stats.clock_rate = audio.codec.clock_rate
        srtp = None
        if audio.srtp_suite and audio.local_key and audio.remote_key:
            srtp = Srtp(audio.srtp_suite, audio.local_key, audio.remote_key)
        if audio.rtcp_mux:
            self.transport.use_mux()
        self.transport.connect(audio.remote, audio.remote_rtcp, srtp)

    # receiving

    def _on_rtp(self, data: bytes, now: float) -> None:
        plan = self.plan
        if plan is None or plan.audio is None:
            return
        self.last_rtp_at = now
        if self.media_started_at is None:
            self.media_started_at = now
            self.events.publish(SipLegEvent(type="media"))
        payload_type = data[1] & 0x7F
        audio = plan.audio
        if audio.telephone_event and payload_type == audio.telephone_event.payload_type:
            timestamp = int.from_bytes(data[4:8], "big")
            for digit in self._dtmf.receive(timestamp, _payload(data)):
                self.digit(digit)
            return
        member = self.member
        if (
            member is not None
            and payload_type == audio.codec.payload_type
            and audio.direction in ("sendrecv", "recvonly")
        ):
            payload = _payload(data)
            if payload:
                member.uplink.receive(payload, now)

    def digit(self, digit: str) -> None:
        """One DTMF key, heard in RTP or relayed from SIP INFO."""
        self.events.publish(SipLegEvent(type="dtmf", digit=digit))
        self._typed = (self._typed + digit)[-len(RAISE_HAND_DIGITS) :]
        if self.member is not None and self._typed == RAISE_HAND_DIGITS:
            self._typed = ""
            self.on_digits(self, RAISE_HAND_DIGITS)

    # the room

    def join(self, room: Room, grant: GrantClaims, *, publish: bool) -> Membership:
        """Become the grant's site in `room`: an ingest and an egress peer, as a hall."""
        plan = self.plan
        assert plan is not None and plan.audio is not None and self.member is None
        label = f"{grant.site_name} (SIP {self.id[:6]})"
        source = Source("audio", [ROOM_OPUS], label=label) if publish else None
        egresses = [DecodingEgress() for _ in range(LEG_AUDIO_SLOTS)]
        ingest = self._peer(room, grant, "ingest")
        if source is not None:
            ingest.sources["audio"] = source
        egress = self._peer(room, grant, "egress")
        egress.audio_slots = [Slot(e, label=label) for e in egresses]
        member = Membership(
            room=room,
            grant=grant,
            ingest=ingest,
            egress=egress,
            uplink=Uplink(plan.audio.codec, source),
            downlink=Downlink(plan.audio.codec, egresses),
        )
        self.member = member
        self._typed = ""
        if self.video is not None:
            self.video.attach(room, grant.site_id)
        return member

    def _peer(self, room: Room, grant: GrantClaims, direction: str) -> Peer:
        peer = Peer(
            id=uuid.uuid4().hex,
            direction=direction,
            room_name=room.name,
            site_id=grant.site_id,
            site_name=grant.site_name,
            role=grant.role,
            pc=None,
            remote_ufrags=set(),
            etag="",
            created_at=utcnow(),
            connected=True,
            grant_id=grant.jti,
            credential_id=grant.credential_id,
            transport="sip",
            codec=self.codec_name,
        )
        peer.measure = self._measure_ingest if direction == "ingest" else self._measure_egress
        return peer

    def _measure_ingest(self, stats: PeerStats) -> None:
        received = self.transport.stats
        if received.ssrc is not None and received.expected > 0:
            stats.loss_ratio = min(1.0, received.lost / received.expected)
            stats.jitter_ms = received.jitter_s * 1000

    def _measure_egress(self, stats: PeerStats) -> None:
        report = self.transport.remote_report
        stats.packets = self.transport.packets_sent
        if report.fraction_lost is not None:
            stats.loss_ratio = report.fraction_lost
        if report.jitter_s is not None:
            stats.jitter_ms = report.jitter_s * 1000
        if report.rtt_s is not None:
            stats.rtt_ms = report.rtt_s * 1000

    def leave(self) -> Membership | None:
        """Stop being a site of the room (the caller takes the peers out of it)."""
        member, self.member = self.member, None
        if member is None:
            return None
        for peer in (member.ingest, member.egress):
            for slot in peer.slots:
                slot.close()
            for source in peer.sources.values():
                source.close()
        self.close_video()  # the video path belonged to the room it leaves
        return member

    # sending

    def tick(self) -> None:
        """20 ms passed: send the leg its next packet of the room's audio."""
        member, plan = self.member, self.plan
        if member is None or plan is None or plan.audio is None:
            return
        produced = member.downlink.produce(self.transport.ssrc)
        if produced is not None and plan.audio.direction in ("sendrecv", "sendonly"):
            self.transport.send_rtp(*produced)

    def silent_for(self, now: float) -> float:
        """Seconds since the far end's last RTP packet (0 before media started)."""
        if self.last_rtp_at is None:
            return 0.0
        return now - self.last_rtp_at

    def close(self, reason: str) -> None:
        """End the leg: sockets closed, the event stream told and ended."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.leave()
        self.close_video()
        self.transport.close()
        self.events.close(SipLegEvent(type="closed", reason=reason[:200]))
        log.info("%r closed: %s", self, reason)


def _payload(data: bytes) -> bytes:
    """The payload of an RTP packet (after CSRCs, extension and before padding)."""
    if len(data) < 12:
        return b""
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if len(data) < offset + 4:
            return b""
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    end = len(data)
    if data[0] & 0x20 and end > offset:
        end -= data[-1]
    return data[offset:end] if end > offset else b""
