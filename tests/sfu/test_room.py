"""A room's participants without WebRTC (`Room.add_plain`) and its H.264 preference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiortc.rtp import RtpPacket

from confbridge_kernel.contracts import FloorAction, FloorCommand, PeerRole
from sfu.codecs import VP8, RtpCodec
from sfu.forwarding import Slot, Source
from sfu.pipe import PipeEgress
from sfu.room import PipedRoomInfo, Room

VP8_CODEC = RtpCodec(VP8, 90_000, 96)


class Out:
    """A slot's transport: the datagrams it would send."""

    def __init__(self) -> None:
        self.transport = self
        self.edge_addr = ("127.0.0.1", 9)
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, _addr: tuple[str, int]) -> None:
        self.sent.append(data)


def room() -> Room:
    info = PipedRoomInfo("occ-7", 7, 1, datetime.now(UTC) + timedelta(hours=1))
    return Room(info, on_floor_changed=lambda _room: None)


async def test_room_add_plain_publishes_and_views_without_a_peer_connection() -> None:
    """A participant of plain sources and slots: its video reaches a viewer, the floor's
    choice reaches its slot, and removing it reroutes; closing the room closes it."""
    subject = room()
    plain_source = Source("video", [VP8_CODEC], label="plain")
    plain_out = Out()
    plain_slot = Slot(PipeEgress(plain_out, "video", (VP8_CODEC,)))  # type: ignore[arg-type]
    ingest, egress = subject.add_plain(
        peer_id="leg-9",
        site_id=1,
        site_name="Room system",
        role=PeerRole.chair,
        sources={"video": plain_source},
        video_slots=[plain_slot],
    )
    assert (ingest.direction, egress.direction) == ("ingest", "egress")
    assert ingest.pc is None and ingest.connected and egress.connected
    assert set(subject.peers) == {"leg-9-in", "leg-9-out"}

    ward_source = Source("video", [VP8_CODEC], label="ward")
    ward_out = Out()
    ward_slot = Slot(PipeEgress(ward_out, "video", (VP8_CODEC,)))  # type: ignore[arg-type]
    ward = subject.add_plain(
        peer_id="ward",
        site_id=2,
        site_name="Ward",
        role=PeerRole.site,
        sources={"video": ward_source},
        video_slots=[ward_slot],
    )
    assert ward_slot.source is plain_source  # the chair speaks
    keyframe = RtpPacket(payload_type=96, sequence_number=5, ssrc=3, payload=b"\x10\x00")
    plain_source.push(keyframe)
    assert len(ward_out.sent) == 1

    subject.apply_floor(FloorCommand(action=FloorAction.give, site_id=2, by="test"))
    assert plain_slot.source is ward_source
    for peer in ward:
        subject.remove(peer)
    assert plain_slot.source is None
    await subject.close()
    assert plain_source.closed and plain_slot.closed


def test_room_prefer_h264_sticks() -> None:
    subject = room()
    assert subject.prefers_h264 is False
    subject.prefer_h264()
    subject.prefer_h264()
    assert subject.prefers_h264 is True
