"""The video half of a SIP leg: a room system's H.264 into the room and the room's out to it,
PLI and FIR both ways with real RTCP bytes, and the leg in a room's floor."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest
from aiortc.rtp import RtcpPacket, RtcpPsfbPacket, RtcpRrPacket, RtpPacket

from confbridge_kernel.contracts import FloorAction, FloorCommand
from sfu import forwarding
from sfu.codecs import H264, RtpCodec
from sfu.forwarding import Slot, Source
from sfu.room import PipedRoomInfo, Room
from sfu.sip.video import SipEgress, SipVideo
from tests.sfu.sip.media import IDR, PPS, SPS, decode, encode, nal_types, packetize

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
