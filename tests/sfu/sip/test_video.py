"""The video half of a SIP leg: a room system's H.264 into the room and the room's out to it,
PLI and FIR both ways with real RTCP bytes, and the leg in a room's floor."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from datetime import UTC, datetime, timedelta

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import (
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
)

from confbridge_kernel.contracts import FloorAction, FloorCommand, GrantClaims, PeerRole
from sfu import forwarding
from sfu.codecs import EXT_ABS_SEND_TIME, H264, RtpCodec
from sfu.errors import SfuError
from sfu.forwarding import Slot, Source
from sfu.room import Peer, PipedRoomInfo, Room
from sfu.sip.video import SipEgress, SipVideo
from sfu.worker import Worker
from tests.sfu.sip.conftest import grant
from tests.sfu.sip.media import (
    IDR,
    PPS,
    SPS,
    LegSocket,
    decode,
    encode,
    nal_types,
    packetize,
    picture,
)
from tests.support.peers import SizedVideoTrack, loopback_peer, until

ROOM_SYSTEM_SSRC = 0x5157_0001
SIP_PT = 109


class Clock:
    """`time.monotonic` of the forwarding module, moved by hand past the PLI rate limit."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(forwarding, "_monotonic", fake)
    return fake


class Wire:
    """What a leg sends to the room system: RTP and RTCP datagrams."""

    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []

    def leg(self, **kwargs: object) -> SipVideo:
        return SipVideo(
            send_rtp=self.rtp.append,
            send_rtcp=self.rtcp.append,
            payload_type=SIP_PT,
            **kwargs,  # type: ignore[arg-type]
        )

    def rtp_packets(self) -> list[RtpPacket]:
        return [RtpPacket.parse(data) for data in self.rtp]


def h264(payload_type: int = 96) -> RtpCodec:
    return RtpCodec(
        H264,
        90_000,
        payload_type,
        parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
    )


def pli(sender: int, media: int) -> bytes:
    # RFC 4585 §6.1: V=2, FMT=1, PT=206 (PSFB), length 2 words after the first
    return struct.pack("!BBHII", 0x81, 206, 2, sender, media)


def fir(sender: int, target: int, seq: int) -> bytes:
    # RFC 5104 §4.3.1: FMT=4, media source SSRC 0, one FCI entry (SSRC, seq nr, reserved)
    return struct.pack("!BBHIIIB3x", 0x84, 206, 4, sender, 0, target, seq)


def receiver_report(sender: int, about: int, fraction_lost: int, lost: int) -> bytes:
    # RFC 3550 §6.4.2: one report block; the cumulative loss is 24 bits
    block = struct.pack("!IB", about, fraction_lost) + lost.to_bytes(3, "big")
    block += struct.pack("!IIII", 5000, 90, 0, 0)
    return struct.pack("!BBHI", 0x81, 201, 7, sender) + block


def test_sip_video_late_viewer_decodes_room_system_that_sent_parameter_sets_once(
    clock: Clock,
) -> None:
    """A viewer switched to a room system mid-call gets SPS/PPS in front of the next IDR and
    decodes from there, on one continuous numbering; the room system was asked for an IDR."""
    wire = Wire()
    leg = wire.leg()
    sent: list[bytes] = []
    viewer = Slot(SipEgress(sent.append, 0xABCD, h264(96)), label="viewer")
    packets = packetize(encode(12, {0, 6}), payload_type=SIP_PT, ssrc=ROOM_SYSTEM_SSRC)
    early = [p for p in packets if p.timestamp < 6 * 3000]
    for packet in early:
        leg.on_rtp(packet)
    viewer.switch_to(leg.source)
    assert viewer.waiting_for_keyframe
    [request] = wire.rtcp
    kinds = [(type(p).__name__, getattr(p, "fmt", None)) for p in RtcpPacket.parse(request)]
    assert kinds == [("RtcpRrPacket", None), ("RtcpPsfbPacket", 1), ("RtcpPsfbPacket", 4)]
    for packet in packets[len(early) :]:
        leg.on_rtp(packet)

    received = [RtpPacket.parse(data) for data in sent]
    assert nal_types(received[0]) == [SPS, PPS]
    assert {(p.payload_type, p.ssrc) for p in received} == {(96, 0xABCD)}
    seqs = [p.sequence_number for p in received]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    frames = decode(received)
    assert len(frames) == 6 and frames[0].width == 320
    stats = leg.stats()
    assert stats.packets_received == len(packets)
    assert stats.parameter_sets_inserted == 1
    assert stats.packets_lost == 0
    assert stats.keyframe_requests_sent == 1


def test_sip_video_without_parameter_sets_the_late_viewer_decodes_nothing(clock: Clock) -> None:
    """The same stream fed straight into a source: the viewer starts at an IDR it cannot
    decode (why the leg keeps parameter sets)."""
    source = Source("video", [h264(SIP_PT)])
    sent: list[bytes] = []
    viewer = Slot(SipEgress(sent.append, 0xABCD, h264(96)))
    packets = packetize(encode(12, {0, 6}), payload_type=SIP_PT, ssrc=ROOM_SYSTEM_SSRC)
    early = [p for p in packets if p.timestamp < 6 * 3000]
    for packet in early:
        source.push(packet)
    viewer.switch_to(source)
    for packet in packets[len(early) :]:
        source.push(packet)
    received = [RtpPacket.parse(data) for data in sent]
    assert nal_types(received[0])[0] == IDR
    assert len({p.timestamp for p in received}) == 6
    assert decode(received) == []


def test_sip_video_pli_or_fir_from_the_room_system_asks_the_source(clock: Clock) -> None:
    asked: list[int] = []
    publisher = Source("video", [h264()], send_pli=lambda: asked.append(1) or True)
    leg = Wire().leg()
    leg.slot.switch_to(publisher)
    assert len(asked) == 1  # the switch asks for a keyframe itself

    clock.tick()
    leg.on_rtcp(RtcpPacket.parse(pli(ROOM_SYSTEM_SSRC, leg.ssrc)))
    assert len(asked) == 2
    clock.tick()
    leg.on_rtcp(RtcpPacket.parse(pli(ROOM_SYSTEM_SSRC, 0x1234)))  # about another stream
    leg.on_rtcp(RtcpPacket.parse(fir(ROOM_SYSTEM_SSRC, 0x1234, 1)))
    assert len(asked) == 2
    leg.on_rtcp(RtcpPacket.parse(fir(ROOM_SYSTEM_SSRC, leg.ssrc, 7)))
    assert len(asked) == 3
    clock.tick()
    leg.on_rtcp(RtcpPacket.parse(fir(ROOM_SYSTEM_SSRC, leg.ssrc, 7)))  # a retransmission
    assert len(asked) == 3
    clock.tick()
    compound = receiver_report(ROOM_SYSTEM_SSRC, 2, 0, 0) + fir(ROOM_SYSTEM_SSRC, leg.ssrc, 8)
    leg.on_rtcp(RtcpPacket.parse(compound))
    assert len(asked) == 4
    assert leg.stats().keyframe_requests_received == 3  # PLI, FIR 7, FIR 8


def test_sip_video_room_keyframe_request_sends_pli_and_fir_with_counting_seq(clock: Clock) -> None:
    wire = Wire()
    leg = wire.leg()
    assert leg.source.request_keyframe() is False  # no stream heard yet: nothing to name
    assert wire.rtcp == []
    packets = packetize(encode(1, {0}), payload_type=SIP_PT, ssrc=ROOM_SYSTEM_SSRC)
    leg.on_rtp(packets[0])
    assert leg.source.request_keyframe() is True
    clock.tick()
    assert leg.source.request_keyframe() is True
    assert len(wire.rtcp) == 2
    for seq, datagram in enumerate(wire.rtcp, start=1):
        rr, pli_packet, fir_packet = RtcpPacket.parse(datagram)
        assert isinstance(rr, RtcpRrPacket) and rr.ssrc == leg.ssrc
        assert isinstance(pli_packet, RtcpPsfbPacket) and pli_packet.fmt == 1
        assert (pli_packet.ssrc, pli_packet.media_ssrc) == (leg.ssrc, ROOM_SYSTEM_SSRC)
        assert isinstance(fir_packet, RtcpPsfbPacket) and fir_packet.fmt == 4
        assert fir_packet.fci == struct.pack("!IB3x", ROOM_SYSTEM_SSRC, seq)
    assert leg.stats().keyframe_requests_sent == 2


def test_sip_video_receiver_report_gives_egress_loss() -> None:
    leg = Wire().leg()
    assert leg.stats().fraction_lost is None
    leg.on_rtcp(RtcpPacket.parse(receiver_report(ROOM_SYSTEM_SSRC, 0x999, 128, 3)))
    assert leg.stats().fraction_lost is None  # a report about someone else's stream
    leg.on_rtcp(RtcpPacket.parse(receiver_report(ROOM_SYSTEM_SSRC, leg.ssrc, 64, 12)))
    stats = leg.stats()
    assert (stats.fraction_lost, stats.remote_packets_lost) == (0.25, 12)
    assert stats.jitter_s == pytest.approx(90 / 90_000)


def test_sip_video_counts_incoming_loss_and_drops_other_streams() -> None:
    leg = Wire().leg(remote_ssrc=ROOM_SYSTEM_SSRC)
    packets = packetize(encode(3, {0}), payload_type=SIP_PT, ssrc=ROOM_SYSTEM_SSRC)
    for packet in packets[:2] + packets[4:]:
        leg.on_rtp(packet)
    stranger = RtpPacket(payload_type=SIP_PT, sequence_number=1, ssrc=0x42, payload=b"\x41x")
    audio = RtpPacket(payload_type=0, sequence_number=1, ssrc=ROOM_SYSTEM_SSRC, payload=b"x")
    leg.on_rtp(stranger)
    leg.on_rtp(audio)
    stats = leg.stats()
    assert stats.packets_received == len(packets) - 2
    assert stats.packets_lost == 2


def test_sip_video_rtcp_report_counts_both_ways_and_gives_rtt(clock: Clock) -> None:
    """Our SR counts what went out, its block what came in (loss, the room system's SR);
    the room system's RR answering our SR gives the round trip."""
    leg = Wire().leg()
    rr, sdes = RtcpPacket.parse(leg.rtcp_report())  # nothing either way yet
    assert isinstance(rr, RtcpRrPacket) and rr.reports == []
    assert isinstance(sdes, RtcpSdesPacket) and sdes.chunks[0].ssrc == leg.ssrc

    packets = packetize(encode(3, {0}), payload_type=SIP_PT, ssrc=ROOM_SYSTEM_SSRC)
    for packet in packets[:2] + packets[3:]:
        leg.on_rtp(packet)
    their_ntp = 0x1234_5678_9ABC_DEF0
    their_sr = RtcpSrPacket(
        ssrc=ROOM_SYSTEM_SSRC, sender_info=RtcpSenderInfo(their_ntp, 0, len(packets), 1000)
    )
    leg.on_rtcp([their_sr])
    publisher = Source("video", [h264()])
    leg.slot.switch_to(publisher)
    publisher.push(RtpPacket(payload_type=96, sequence_number=1, ssrc=9, payload=b"\x65idr"))

    sr, _sdes = RtcpPacket.parse(leg.rtcp_report())
    assert isinstance(sr, RtcpSrPacket) and sr.ssrc == leg.ssrc
    assert (sr.sender_info.packet_count, sr.sender_info.octet_count) == (1, 4)
    [block] = sr.reports
    assert block.ssrc == ROOM_SYSTEM_SSRC
    assert block.packets_lost == 1
    assert block.fraction_lost == 256 // len(packets)
    assert block.lsr == (their_ntp >> 16) & 0xFFFFFFFF
    assert leg.stats().rtt_s is None

    lsr = (sr.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF
    answer = RtcpRrPacket(
        ssrc=ROOM_SYSTEM_SSRC,
        reports=[RtcpReceiverInfo(leg.ssrc, 0, 0, 1, 0, lsr=lsr, dlsr=0)],
    )
    leg.on_rtcp(RtcpPacket.parse(bytes(answer)))
    rtt = leg.stats().rtt_s
    assert rtt is not None and 0 <= rtt < 1.0


def test_sip_video_sends_with_the_room_systems_numbering_and_only_negotiated_extensions(
    clock: Clock,
) -> None:
    publisher = Source("video", [h264()])
    idr = RtpPacket(payload_type=96, sequence_number=1, ssrc=9, payload=b"\x65idr")
    sent = {}
    for name, options in {
        "plain": {},
        "asymmetric": {"remote_payload_type": 120, "header_extensions": {EXT_ABS_SEND_TIME: 3}},
    }.items():
        wire = Wire()
        leg = wire.leg(**options)
        leg.slot.switch_to(publisher)
        publisher.push(idr)
        [sent[name]] = wire.rtp
        leg.on_rtp(RtpPacket(payload_type=120, sequence_number=1, ssrc=5, payload=b"\x41p"))
        assert leg.stats().packets_received == 0  # 120 is what it sends with, not we
        leg.close()
    assert sent["plain"][0] == 0x80 and sent["plain"][1] == SIP_PT  # no extension, no marker
    assert len(sent["plain"]) == 12 + 4
    assert sent["asymmetric"][0] & 0x10 and sent["asymmetric"][1] & 0x7F == 120
    assert sent["asymmetric"][12:14] == b"\xbe\xde"  # RFC 8285 one-byte extensions


async def test_sip_video_attach_refuses_a_closed_room() -> None:
    info = PipedRoomInfo("occ-2", 2, 1, datetime.now(UTC) + timedelta(hours=1))
    room = Room(info, on_floor_changed=lambda _room: None)
    await room.close()
    with pytest.raises(SfuError) as refused:
        Wire().leg().attach(room, 1, site_name="Room system", peer_id="leg-3")
    assert refused.value.status == 409


def test_sip_video_refuses_a_static_payload_type_or_malformed_profile() -> None:
    with pytest.raises(ValueError, match="dynamic payload type"):
        SipVideo(send_rtp=print, send_rtcp=print, payload_type=34)
    with pytest.raises(ValueError, match="six hex digits"):
        SipVideo(send_rtp=print, send_rtcp=print, payload_type=99, profile_level_id="42e0")


async def test_room_add_plain_routes_sip_legs_by_the_floor() -> None:
    """Two room systems in a room: each sees whom the floor says; leaving reroutes the other."""
    info = PipedRoomInfo("occ-1", 1, 1, datetime.now(UTC) + timedelta(hours=1))
    room = Room(info, on_floor_changed=lambda _room: None)
    chair, ward = Wire().leg(label="chair"), Wire().leg(label="ward")
    assert not room.prefers_h264
    peers = chair.attach(room, 1, site_name="Chair", peer_id="leg-a")
    ward.attach(room, 2, site_name="Ward", peer_id="leg-b")
    assert room.prefers_h264
    assert [p.direction for p in peers] == ["ingest", "egress"]
    assert all(p.connected and p.pc is None for p in room.peers.values())
    assert len(room.peers) == 4
    assert ward.slot.source is chair.source  # the chair speaks
    assert chair.slot.source is None  # and sees nobody else yet
    with pytest.raises(RuntimeError, match="detach"):
        chair.attach(room, 1, site_name="Chair", peer_id="leg-a")

    room.apply_floor(FloorCommand(action=FloorAction.give, site_id=2, by="test"))
    assert chair.slot.source is ward.source
    assert ward.slot.source is chair.source

    chair.detach()
    assert chair.peers == [] and chair.slot.source is None
    assert ward.slot.source is None
    assert len(room.peers) == 2
    await room.close()
    assert ward.source.closed and ward.slot.closed
    assert not chair.source.closed
    chair.close()
    assert chair.source.closed and chair.slot.closed


# --- a real worker: WHIP and WHEP sessions of aiortc peers beside a leg on UDP sockets ---------


async def answer(
    worker: Worker, direction: str, pc: RTCPeerConnection, claims: GrantClaims
) -> Peer:
    await pc.setLocalDescription(await pc.createOffer())
    peer, sdp = await worker.sessions.create_peer(
        direction, claims.room, claims, pc.localDescription.sdp
    )
    await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
    return peer


def first_video_codec(sdp: str) -> str:
    video = sdp[sdp.index("m=video") :]
    first_pt = video.splitlines()[0].split()[3]
    rtpmap = next(line for line in video.splitlines() if line.startswith(f"a=rtpmap:{first_pt} "))
    return rtpmap.split()[1].split("/")[0].lower()


async def test_whip_answer_prefers_h264_only_in_a_room_flagged_for_sip(worker: Worker) -> None:
    """A publisher offering VP8 then H.264: a normal room keeps VP8; a room with a SIP leg, or
    whose grant says legs are expected, answers H.264 (packetization-mode 1, 42e01f) first."""
    answers = {}
    worker.sessions.room_for(grant(1, PeerRole.chair, "occ-sip")).prefer_h264()  # a leg joined
    for room_name in ("occ-plain", "occ-sip", "occ-expects-sip"):
        # the grant says room systems are expected before any joined
        claims = grant(2, PeerRole.site, room_name, prefers_h264=room_name == "occ-expects-sip")
        pc = loopback_peer()
        pc.addTransceiver(SizedVideoTrack(160, 120), direction="sendonly")
        try:
            peer = await answer(worker, "whip", pc, claims)
            answers[room_name] = pc.remoteDescription.sdp
            codecs = peer.sources["video"].codecs
        finally:
            await pc.close()
        if room_name != "occ-plain":
            assert codecs[0].name == "video/h264"
            assert codecs[0].parameters["profile-level-id"] == "42e01f"
            assert {str(c.parameters.get("packetization-mode")) for c in codecs[:-1]} == {"1"}
            assert codecs[-1].name == "video/vp8"
        else:
            assert [c.name for c in codecs] == ["video/vp8"]
    assert first_video_codec(answers["occ-plain"]) == "vp8"
    assert first_video_codec(answers["occ-sip"]) == "h264"
    assert first_video_codec(answers["occ-expects-sip"]) == "h264"
    assert not worker.rooms["occ-plain"].prefers_h264


class RoomSystem(asyncio.DatagramProtocol):
    """A room system's media socket: sends H.264 with SPS/PPS only in its first access unit,
    answers PLI or FIR with an IDR, and keeps the RTP it receives."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.leg_addr: tuple[str, int] = ("127.0.0.1", 0)
        self.received: list[RtpPacket] = []
        self.keyframe_requests = 0
        self._encoder = H264Encoder()
        self._seq = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if 192 <= data[1] <= 223:
            for packet in RtcpPacket.parse(data):
                if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (1, 4):
                    self.keyframe_requests += 1
        else:
            self.received.append(RtpPacket.parse(data))

    async def stream(self, frames: int) -> None:
        answered = 0
        for index in range(frames):
            wanted = answered < self.keyframe_requests or index == 0
            answered = self.keyframe_requests
            nals = list(self._encoder._encode_frame(picture(index, 176, 144), wanted))
            if index:
                nals = [nal for nal in nals if nal[0] & 0x1F not in (SPS, PPS)]
            payloads = H264Encoder._packetize(nals)
            for number, payload in enumerate(payloads):
                packet = RtpPacket(
                    payload_type=SIP_PT,
                    marker=int(number == len(payloads) - 1),
                    sequence_number=self._seq & 0xFFFF,
                    timestamp=index * 3000,
                    ssrc=ROOM_SYSTEM_SSRC,
                    payload=payload,
                )
                self._seq += 1
                assert self.transport is not None
                self.transport.sendto(packet.serialize(), self.leg_addr)
            await asyncio.sleep(1 / 30)


async def test_sip_video_in_a_worker_room_both_ways(worker: Worker) -> None:
    """A room system on plain RTP is the chair: a WHEP viewer decodes its H.264; given the
    floor, a WHIP publisher's H.264 (asked for by the flagged room) reaches the room system,
    and FFmpeg decodes it."""
    loop = asyncio.get_running_loop()
    far_transport, far = await loop.create_datagram_endpoint(
        RoomSystem, local_addr=("127.0.0.1", 0)
    )
    near_transport, near = await loop.create_datagram_endpoint(
        LegSocket, local_addr=("127.0.0.1", 0)
    )
    far.leg_addr = near_transport.get_extra_info("sockname")[:2]
    far_addr = far_transport.get_extra_info("sockname")[:2]
    leg = SipVideo(
        send_rtp=lambda data: near_transport.sendto(data, far_addr),
        send_rtcp=lambda data: near_transport.sendto(data, far_addr),
        payload_type=SIP_PT,
        label="room system",
    )
    near.video = leg
    chair = grant(1, PeerRole.chair)
    room = worker.sessions.room_for(chair)
    leg.attach(room, 1, site_name="Room system", peer_id="leg-1")
    streaming = asyncio.create_task(far.stream(600))
    viewer_pc, publisher_pc = loopback_peer(), loopback_peer()
    try:
        await asyncio.sleep(0.3)  # the call's first IDR, with its SPS and PPS, is gone
        viewer_pc.addTransceiver("video", direction="recvonly")
        widths: list[int] = []
        reading: list[asyncio.Task[None]] = []

        async def read(track: MediaStreamTrack) -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    widths.append((await track.recv()).width)

        viewer_pc.on("track", lambda track: reading.append(asyncio.create_task(read(track))))
        await answer(worker, "whep", viewer_pc, grant(3, PeerRole.site))
        await until(lambda: len(widths) >= 10, timeout_s=15)
        assert set(widths) == {176}
        assert far.keyframe_requests >= 1
        assert leg.stats().parameter_sets_inserted >= 1

        publisher_pc.addTransceiver(SizedVideoTrack(192, 144), direction="sendonly")
        publisher = await answer(worker, "whip", publisher_pc, grant(2, PeerRole.site))
        assert publisher.sources["video"].codecs[0].name == "video/h264"
        await until(lambda: publisher.connected, timeout_s=15)
        room.apply_floor(FloorCommand(action=FloorAction.give, site_id=2, by="test"))
        await until(lambda: len(decode(list(far.received))) >= 10, timeout_s=15)
        frames = decode(far.received)
        assert {(f.width, f.height) for f in frames} == {(192, 144)}
        assert {(p.payload_type, p.ssrc) for p in far.received} == {(SIP_PT, leg.ssrc)}
        assert leg.stats().packets_sent == len(far.received)
        assert not streaming.done()  # the room system streamed throughout
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)
    finally:
        streaming.cancel()
        await asyncio.gather(streaming, return_exceptions=True)
        await viewer_pc.close()
        await publisher_pc.close()
        leg.close()
        near_transport.close()
        far_transport.close()


async def test_sip_leg_halves_are_no_whip_or_whep_sessions(worker: Worker) -> None:
    """PATCH or DELETE on /whip/{room}/{id} cannot reach a leg's half: 404, not a crash."""
    room = worker.sessions.room_for(grant(1, PeerRole.chair))
    leg = Wire().leg()
    peers = leg.attach(room, 1, site_name="Room system", peer_id="leg-7")
    for peer in peers:
        with pytest.raises(SfuError) as refused:
            worker.sessions.find_peer(room.name, peer.id)
        assert refused.value.status == 404
    leg.close()
    assert room.peers == {}
