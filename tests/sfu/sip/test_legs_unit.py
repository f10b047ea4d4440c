"""The worker's SIP legs without a server: joining a room as a site, the media timeout, the
room closing, and what the events say."""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from confbridge_kernel.contracts import FloorCommand, FloorState, GrantClaims, PeerRole
from confbridge_kernel.sip_legs import SipLegOpen
from sfu.config import WorkerSettings
from sfu.errors import SfuError
from sfu.room import Peer, Room
from sfu.sip.dtmf import encode_event
from sfu.sip.legs import MEDIA_TIMEOUT_S, SipLegs
from sfu.sip.sdp import parse_sdp
from sfu.sip.transport import RtpTransport, Srtp
from tests.support.polling import until

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 5004 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def _grant(site_id: int, role: PeerRole = PeerRole.site) -> GrantClaims:
    now = datetime.now(UTC)
    return GrantClaims(
        jti=f"grant-{site_id}",
        room="occ-7",
        occurrence_id=7,
        site_id=site_id,
        site_name=f"Phường {site_id}",
        role=role,
        chair_site_id=1,
        starts_at=now,
        ends_at=now + timedelta(hours=1),
        iat=int(now.timestamp()),
        exp=int(now.timestamp()) + 600,
    )


class Recorder:
    """What the legs tell the worker: events, retired peers, floor commands (and a registry
    for the legs' metrics)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events: list[tuple[str, Peer | None, dict[str, Any]]] = []
        self.retired: list[Peer] = []
        self.floor: list[FloorCommand] = []

    def emit(self, type_: Any, room: Room, peer: Peer | None, **kwargs: Any) -> None:
        self.events.append((type_.value, peer, kwargs.get("detail") or {}))

    def retire(self, peer: Peer) -> None:
        self.retired.append(peer)


def _legs(room: Room, recorder: Recorder) -> SipLegs:
    def apply_floor(name: str, command: FloorCommand) -> FloorState:
        recorder.floor.append(command)
        return room.apply_floor(command)

    return SipLegs(
        WorkerSettings(),
        verify_grant=lambda token: _grant(int(token)),
        room_for=lambda grant: room,
        apply_floor=apply_floor,
        sources_changed=lambda _room: None,
        events=recorder,  # type: ignore[arg-type]
        metrics=recorder,  # type: ignore[arg-type]
    )


async def test_legs_unit_joined_leg_is_a_site_and_times_out_without_media() -> None:
    room = Room(_grant(2), on_floor_changed=lambda _room: None)
    recorder = Recorder()
    legs = _legs(room, recorder)
    try:
        opened = await legs.open(
            SipLegOpen(call_id="c1", remote_uri="sip:a@b", offer=OFFER, token="2")
        )
        leg = legs.find(opened.leg_id)
        assert {(p.direction, p.transport, p.site_id) for p in room.peers.values()} == {
            ("ingest", "sip", 2),
            ("egress", "sip", 2),
        }
        assert room.pipe_sources()[0][0] == 2  # its audio feeds the room
        assert [e[0] for e in recorder.events] == ["joined", "joined"]
        leg.digit("*")
        leg.digit("9")
        assert recorder.floor[0].action.value == "raise_hand" and room.floor.hands == [2]
        leg.last_rtp_at = time.monotonic() - MEDIA_TIMEOUT_S - 1
        legs.close_silent(time.monotonic())
        assert not room.peers and opened.leg_id not in legs.legs
        left = [e for e in recorder.events if e[0] == "left"]
        assert [e[2]["reason"] for e in left] == ["no media", "no media"]
        stream = [event async for event in leg.events.follow()]
        assert [(e.type, e.digit or e.reason) for e in stream] == [
            ("dtmf", "*"),
            ("dtmf", "9"),
            ("closed", "no media"),
        ]
    finally:
        await legs.close()


async def test_legs_unit_room_closing_closes_its_legs_and_lobby_legs_stay() -> None:
    room = Room(_grant(2), on_floor_changed=lambda _room: None)
    recorder = Recorder()
    legs = _legs(room, recorder)
    try:
        member = await legs.open(
            SipLegOpen(call_id="c1", remote_uri="sip:a@b", offer=OFFER, token="3")
        )
        lobby = await legs.open(
            SipLegOpen(call_id="c2", remote_uri="sip:c@d", offer=OFFER, lobby=True)
        )
        assert len(room.peers) == 2
        leg = legs.find(member.leg_id)
        await room.close()
        legs.room_closed(room)
        assert leg.closed and leg.close_reason == "room closed"
        assert list(legs.legs) == [lobby.leg_id] and legs.find(lobby.leg_id).member is None
    finally:
        await legs.close()


async def test_legs_unit_viewer_grant_views_without_publishing() -> None:
    room = Room(_grant(2), on_floor_changed=lambda _room: None)
    legs = _legs(room, Recorder())
    legs._verify_grant = lambda token: _grant(4, PeerRole.viewer)
    try:
        await legs.open(SipLegOpen(call_id="c1", remote_uri="sip:a@b", offer=OFFER, token="4"))
        assert room.pipe_sources() == []
        egress = [p for p in room.peers.values() if p.direction == "egress"]
        assert len(egress[0].audio_slots) == 2
    finally:
        await legs.close()


class FakeVideo:
    """A video path as `sfu.sip.video` plugs in: records what the leg hands it."""

    def __init__(self, leg: Any, plan: Any, transport: Any) -> None:
        self.plan, self.transport = plan, transport
        self.attached: list[tuple[str, int]] = []
        self.rtp: list[bytes] = []
        self.closed = False

    def attach(self, room: Room, site_id: int) -> None:
        self.attached.append((room.name, site_id))

    def on_rtp(self, packet: bytes) -> None:
        self.rtp.append(packet)

    def on_rtcp(self, packet: bytes) -> None:
        pass

    def close(self) -> None:
        self.closed = True


async def test_legs_unit_video_goes_to_the_video_path_when_one_is_plugged_in() -> None:
    room = Room(_grant(2), on_floor_changed=lambda _room: None)
    legs = _legs(room, Recorder())
    made: list[FakeVideo] = []

    def factory(leg: Any, plan: Any, transport: Any) -> FakeVideo:
        made.append(FakeVideo(leg, plan, transport))
        return made[-1]

    legs.video_factory = factory
    offer = OFFER + (
        "m=video 5006 RTP/AVP 109\r\na=rtpmap:109 H264/90000\r\n"
        "a=fmtp:109 profile-level-id=42801f;packetization-mode=1\r\n"
    )
    try:
        opened = await legs.open(
            SipLegOpen(call_id="c1", remote_uri="sip:a@b", offer=offer, lobby=True)
        )
        (video_line,) = [x for x in opened.sdp.splitlines() if x.startswith("m=video")]
        port = int(video_line.split()[1])
        assert port > 0 and "profile-level-id=42801f" in opened.sdp
        (video,) = made
        assert video.attached == []  # the lobby: nothing of it reaches the room
        legs._verify_grant = lambda token: _grant(5)
        legs.admit(opened.leg_id, "5")
        assert video.attached == [("occ-7", 5)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far_end:
            far_end.sendto(bytes((0x80, 109)) + bytes(10) + b"h264", ("127.0.0.1", port))
            await until(lambda: video.rtp, timeout_s=5)
        assert video.rtp[0].endswith(b"h264")
        legs.close_leg(opened.leg_id, "hangup")
        assert video.closed and video.transport.closed
    finally:
        await legs.close()
    assert port % 2 == 0


async def test_legs_unit_a_revoked_grant_ends_its_leg() -> None:
    room = Room(_grant(2), on_floor_changed=lambda _room: None)
    recorder = Recorder()
    legs = _legs(room, recorder)
    try:
        opened = await legs.open(
            SipLegOpen(call_id="c1", remote_uri="sip:a@b", offer=OFFER, token="6")
        )
        peer = next(iter(room.peers.values()))
        assert legs.close_for(peer, "revoked")
        assert not room.peers and legs.legs == {}
        assert not legs.close_for(peer, "revoked")
        with pytest.raises(SfuError) as refused:
            legs.find(opened.leg_id)
        assert refused.value.status == 404
    finally:
        await legs.close()


async def test_legs_unit_srtp_leg_hears_encrypted_digits() -> None:
    """RTP/SAVP: the caller's SDES key decrypts its digits; the answer's key is the worker's."""
    room = Room(_grant(2), on_floor_changed=lambda _room: None)
    legs = _legs(room, Recorder())
    caller_key = bytes(range(30))
    far = RtpTransport(on_rtp=lambda _d, _n: None, on_rtcp=lambda _d: None, clock_rate=8000)
    await far.bind("127.0.0.1", None, mux=True)
    offer = (
        f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {far.local_port} RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"a=rtcp-mux\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 "
        f"inline:{base64.b64encode(caller_key).decode()}\r\n"
    )
    try:
        opened = await legs.open(
            SipLegOpen(call_id="c1", remote_uri="sip:a@b", offer=offer, lobby=True)
        )
        answer = parse_sdp(opened.sdp).media[0]
        assert answer.proto == "RTP/SAVP" and answer.rtcp_mux
        far.connect(
            ("127.0.0.1", answer.port),
            None,
            Srtp("AES_CM_128_HMAC_SHA1_80", caller_key, answer.cryptos[0].key_salt),
        )
        for seq in range(3):
            header = struct.pack("!BBHII", 0x80, 101, seq, 8000, far.ssrc)
            far.send_rtp(header + encode_event("7", end=True, duration=800), 8000)
        leg = legs.find(opened.leg_id)
        seen: list[str | None] = []

        async def collect() -> None:
            async for event in leg.events.follow():
                seen.append(event.digit or event.type)

        task = asyncio.create_task(collect())
        await until(lambda: "7" in seen, timeout_s=5)
        task.cancel()
        assert seen == ["media", "7"]  # three end packets: one digit
    finally:
        far.close()
        await legs.close()
