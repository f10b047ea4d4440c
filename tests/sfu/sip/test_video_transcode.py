"""A SIP leg's video when the source is not H.264: VP8 decoded and encoded to H.264 for that leg
alone, PLI answered by our encoder, loss answered by asking the source, and passthrough again
once the slot gets H.264."""

from __future__ import annotations

import asyncio
import itertools
import math
import struct

import pytest
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtcpPacket, RtpPacket

from confbridge_kernel.contracts import FloorAction, FloorCommand, PeerRole
from sfu.codecs import H264, VP8, RtpCodec
from sfu.forwarding import Source
from sfu.sip.video import SipVideo
from sfu.sip.video_transcode import VideoTranscoder, output_size
from sfu.worker import Worker
from tests.sfu.sip.conftest import grant
from tests.sfu.sip.media import IDR, SPS, LegSocket, decode, encode, nal_types, packetize, picture
from tests.sfu.sip.test_video import answer
from tests.support.peers import SizedVideoTrack, loopback_peer, until

SIP_PT = 109
VP8_PT = 96
PUBLISHER_SSRC = 0x7008_0001
ROOM_SYSTEM_SSRC = 0x5157_0002


def vp8(payload_type: int = VP8_PT) -> RtpCodec:
    return RtpCodec(VP8, 90_000, payload_type)


def h264(payload_type: int) -> RtpCodec:
    parameters = {"packetization-mode": "1", "profile-level-id": "42e01f"}
    return RtpCodec(H264, 90_000, payload_type, parameters=parameters)


def pli(sender: int, media: int) -> bytes:
    # RFC 4585 §6.1: V=2, FMT=1, PT=206 (PSFB), length 2 words after the first
    return struct.pack("!BBHII", 0x81, 206, 2, sender, media)


class Vp8Stream:
    """A publisher's VP8 as RTP: aiortc's encoder, its payload descriptors, our numbering."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._encoder = Vp8Encoder()
        self._seq = 4000
        self.index = 0

    def frame(self, *, keyframe: bool = False) -> list[RtpPacket]:
        image = picture(self.index, self.width, self.height)
        payloads, timestamp = self._encoder.encode(image, keyframe or self.index == 0)
        self.index += 1
        packets = []
        for number, payload in enumerate(payloads):
            packets.append(
                RtpPacket(
                    payload_type=VP8_PT,
                    marker=int(number == len(payloads) - 1),
                    sequence_number=self._seq & 0xFFFF,
                    timestamp=timestamp,
                    ssrc=PUBLISHER_SSRC,
                    payload=payload,
                )
            )
            self._seq += 1
        return packets


class Leg:
    """A leg negotiating H.264 at SIP_PT, its datagrams kept; the publisher's keyframe
    requests counted."""

    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.video = SipVideo(
            send_rtp=self.rtp.append, send_rtcp=lambda _data: None, payload_type=SIP_PT
        )
        self.asked = 0
        self.source = Source("video", [vp8()], send_pli=self._ask, label="publisher")

    def _ask(self) -> bool:
        self.asked += 1
        return True

    def received(self) -> list[RtpPacket]:
        return [RtpPacket.parse(data) for data in self.rtp]

    async def send(self, stream: Vp8Stream, frames: int, *, skip: set[int] = frozenset()) -> None:
        """Push `frames` frames at 30 fps (packets whose index in the run is in `skip` lost)."""
        pushed = 0
        for _ in range(frames):
            for packet in stream.frame():
                if pushed not in skip:
                    self.source.push(packet)
                pushed += 1
            await asyncio.sleep(1 / 30)


@pytest.fixture
async def leg() -> Leg:
    made = Leg()
    yield made
    made.video.close()
    made.source.close()


def access_units(packets: list[RtpPacket]) -> dict[int, list[RtpPacket]]:
    units: dict[int, list[RtpPacket]] = {}
    for packet in packets:
        units.setdefault(packet.timestamp, []).append(packet)
    return units


async def test_transcode_vp8_source_reaches_the_leg_as_h264_that_decodes(leg: Leg) -> None:
    """A VP8 source on a leg that negotiated only H.264: the room system gets H.264 at its
    payload type, at the source's size, one numbering, the marker on each frame's last packet."""
    leg.video.slot.switch_to(leg.source)
    await leg.send(Vp8Stream(320, 240), 20)
    transcoder = leg.video.egress.transcoder
    assert transcoder is not None and not transcoder.closed
    await until(lambda: transcoder.stats().frames_decoded >= 19, timeout_s=10)

    received = leg.received()
    assert {(p.payload_type, p.ssrc) for p in received} == {(SIP_PT, leg.video.ssrc)}
    seqs = [p.sequence_number for p in received]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    units = access_units(received)
    assert all([p.marker for p in unit] == [0] * (len(unit) - 1) + [1] for unit in units.values())
    assert nal_types(received[0])[0] == SPS  # it starts with an IDR and its parameter sets
    frames = decode(received)
    assert len(frames) == len(units) >= 5  # fewer if the thread fell behind (a busy machine)
    assert {(f.width, f.height) for f in frames} == {(320, 240)}
    stats = transcoder.stats()
    assert (stats.width, stats.height) == (320, 240)
    assert stats.packets_sent == len(received)
    assert leg.video.slot.stats().packets_dropped == 0
    leg.video.detach()
    assert transcoder.closed


async def test_transcode_pli_from_the_room_system_makes_our_encoder_send_an_idr(leg: Leg) -> None:
    leg.video.slot.switch_to(leg.source)
    stream = Vp8Stream(320, 240)
    await leg.send(stream, 10)
    transcoder = leg.video.egress.transcoder
    assert transcoder is not None
    await until(lambda: transcoder.stats().frames_decoded >= 9, timeout_s=10)
    asked_before, sent_before = leg.asked, len(leg.rtp)
    assert not any(IDR in nal_types(p) for p in leg.received()[-5:])  # no IDR of late

    leg.video.on_rtcp(RtcpPacket.parse(pli(ROOM_SYSTEM_SSRC, leg.video.ssrc)))
    await leg.send(stream, 5)
    await until(lambda: transcoder.stats().frames_decoded >= 14, timeout_s=10)

    # a frame already in the encoder's thread may come first; the next one is the IDR
    units = list(access_units(leg.received()[sent_before:]).values())
    with_idr = [n for n, unit in enumerate(units) if any(IDR in nal_types(p) for p in unit)]
    assert len(with_idr) == 1 and with_idr[0] <= 1
    assert nal_types(units[with_idr[0]][0])[0] == SPS  # with its parameter sets
    assert transcoder.stats().keyframes_forced == 1
    assert leg.asked == asked_before  # the publisher was not bothered
    assert leg.video.stats().keyframe_requests_received == 1


async def test_transcode_lost_packets_ask_the_source_for_a_keyframe(leg: Leg) -> None:
    """A packet lost upstream stops decoding (no broken pictures to the room system) and asks
    the source for a keyframe; its keyframe resumes the pictures."""
    leg.video.slot.switch_to(leg.source)
    stream = Vp8Stream(160, 120)
    await leg.send(stream, 5)
    transcoder = leg.video.egress.transcoder
    assert transcoder is not None
    await until(lambda: transcoder.stats().frames_decoded >= 4, timeout_s=10)
    await asyncio.sleep(0.6)  # past the source's limit on keyframe requests
    asked_before = leg.asked
    decoded_before = transcoder.stats().frames_decoded

    # one packet lost, then enough frames for the jitter buffer to give the gap up
    for index in range(150):
        for number, packet in enumerate(stream.frame()):
            if index != 0 or number != 0:
                leg.source.push(packet)
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.3)
    stats = transcoder.stats()
    assert leg.asked > asked_before and stats.keyframe_requests >= 1
    assert stats.frames_discarded > 100  # inter frames after the loss: not decoded
    assert stats.frames_decoded <= decoded_before + 1
    stalled = stats.frames_encoded

    for packet in stream.frame(keyframe=True):
        leg.source.push(packet)
    await leg.send(stream, 3)
    await until(lambda: transcoder.stats().frames_encoded > stalled, timeout_s=10)
    assert decode(leg.received())[-1].width == 160


async def test_transcode_stops_when_the_slot_gets_h264_again(leg: Leg) -> None:
    """The floor moves to an H.264 publisher: its packets go through untouched, numbered on
    from the transcoded ones, and the transcoder is closed."""
    leg.video.slot.switch_to(leg.source)
    await leg.send(Vp8Stream(320, 240), 10)
    transcoder = leg.video.egress.transcoder
    assert transcoder is not None
    await until(lambda: transcoder.stats().frames_decoded >= 9, timeout_s=10)
    transcoded = len(leg.rtp)

    h264_source = Source("video", [h264(100)], label="H.264 publisher")
    leg.video.slot.switch_to(h264_source)
    passthrough = packetize(encode(4, {0}), payload_type=100, ssrc=0x2640_0001)
    for packet in passthrough:
        h264_source.push(packet)
    assert transcoder.closed
    await transcoder.wait_closed()
    await leg.send(Vp8Stream(320, 240), 2)  # the old source goes on, to nobody here

    received = leg.received()
    after = received[transcoded:]
    assert [p.payload for p in after] == [p.payload for p in passthrough]
    seqs = [p.sequence_number for p in received]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    stamps = [p.timestamp for p in received]
    assert all(0 <= (b - a) & 0xFFFFFFFF < 0x8000_0000 for a, b in itertools.pairwise(stamps))
    assert {(f.width, f.height) for f in decode(after)} == {(320, 240)}
    assert leg.video.egress.transcoders_started == 1
    h264_source.close()


async def test_transcode_a_new_vp8_source_gets_a_new_transcoder_numbered_on(leg: Leg) -> None:
    """The floor moves from one VP8 publisher to another: a fresh decoder for the new stream,
    the room system's numbering and pictures go on (now at the second one's size)."""
    leg.video.slot.switch_to(leg.source)
    await leg.send(Vp8Stream(320, 240), 6)
    first = leg.video.egress.transcoder
    assert first is not None
    await until(lambda: first.stats().frames_decoded >= 5, timeout_s=10)

    other = Source("video", [vp8()], send_pli=lambda: True, label="second publisher")
    leg.video.slot.switch_to(other)
    stream = Vp8Stream(160, 120)
    for _ in range(6):
        for packet in stream.frame():
            other.push(packet)
        await asyncio.sleep(1 / 30)
    second = leg.video.egress.transcoder
    assert second is not None and second is not first
    assert first.closed and not second.closed
    await until(lambda: second.stats().frames_decoded >= 5, timeout_s=10)

    received = leg.received()
    seqs = [p.sequence_number for p in received]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    sizes = [(f.width, f.height) for f in decode(received)]
    assert sizes[0] == (320, 240) and sizes[-1] == (160, 120)
    assert leg.video.egress.transcoders_started == 2
    other.close()


def test_transcode_only_for_codecs_aiortc_decodes() -> None:
    """Anything else stays dropped, as for a WebRTC viewer (tests/sfu/test_forwarding.py)."""
    assert VideoTranscoder.can_decode(vp8())
    assert VideoTranscoder.can_decode(h264(100))
    assert not VideoTranscoder.can_decode(RtpCodec("video/AV1", 90_000, 45))
    assert not VideoTranscoder.can_decode(RtpCodec("audio/opus", 48_000, 111, channels=2))


@pytest.mark.parametrize(
    ("size", "profile_level_id", "expected"),
    [
        ((320, 240), "42e01f", (320, 240)),
        ((1920, 1080), "42e01f", (1280, 720)),
        ((1280, 720), "42e028", (1280, 720)),  # level 4 allows more; 720p is our cap
        ((640, 360), "42e01e", (640, 360)),  # level 3: up to 1620 macroblocks
        ((1280, 720), "42e01e", None),  # level 3: scaled to fit
        ((640, 480), "42e00a", None),  # level 1: 99 macroblocks (QCIF)
    ],
)
def test_transcode_output_size_fits_the_legs_level(
    size: tuple[int, int], profile_level_id: str, expected: tuple[int, int] | None
) -> None:
    width, height = output_size(*size, profile_level_id)
    if expected is not None:
        assert (width, height) == expected
        return
    max_mbs = 1620 if profile_level_id.endswith("1e") else 99
    assert math.ceil(width / 16) * math.ceil(height / 16) <= max_mbs
    assert width % 2 == 0 and height % 2 == 0
    assert abs(width / height - size[0] / size[1]) < 0.05
    assert width * height > 0.8 * max_mbs * 256  # scaled to fit, not far below


# --- a real worker: an aiortc publisher's VP8 to a leg on UDP sockets -------------------------


class FarEnd(asyncio.DatagramProtocol):
    """The room system's socket (rtcp-mux): keeps the RTP it gets, sends RTCP to the leg."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[RtpPacket] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not 192 <= data[1] <= 223:
            self.received.append(RtpPacket.parse(data))


def idr_count(packets: list[RtpPacket]) -> int:
    return sum(IDR in nal_types(p) for p in packets)


async def test_transcode_in_a_worker_room_from_an_aiortc_vp8_publisher(worker: Worker) -> None:
    """A hall that published VP8 before a room system joined: the room system gets H.264 that
    decodes at the hall's size, its PLI is answered with an IDR, and when the floor goes to an
    H.264 publisher the leg is back on passthrough (the transcoder closed)."""
    loop = asyncio.get_running_loop()
    far_transport, far = await loop.create_datagram_endpoint(FarEnd, local_addr=("127.0.0.1", 0))
    near_transport, near = await loop.create_datagram_endpoint(
        LegSocket, local_addr=("127.0.0.1", 0)
    )
    near_addr = near_transport.get_extra_info("sockname")[:2]
    far_addr = far_transport.get_extra_info("sockname")[:2]
    leg = SipVideo(
        send_rtp=lambda data: near_transport.sendto(data, far_addr),
        send_rtcp=lambda data: near_transport.sendto(data, far_addr),
        payload_type=SIP_PT,
        label="room system",
    )
    near.video = leg
    room = worker.sessions.room_for(grant(1, PeerRole.chair))
    vp8_pc, h264_pc = loopback_peer(), loopback_peer()
    try:
        vp8_pc.addTransceiver(SizedVideoTrack(320, 240), direction="sendonly")
        hall = await answer(worker, "whip", vp8_pc, grant(1, PeerRole.chair))
        assert [c.name for c in hall.sources["video"].codecs] == ["video/vp8"]
        await until(lambda: hall.connected, timeout_s=15)
        leg.attach(room, 2, site_name="Room system", peer_id="leg-vp8")
        await until(lambda: len(decode(list(far.received))) >= 10, timeout_s=15)
        transcoder = leg.egress.transcoder
        assert transcoder is not None and not transcoder.closed
        assert {(f.width, f.height) for f in decode(far.received)} == {(320, 240)}
        assert {(p.payload_type, p.ssrc) for p in far.received} == {(SIP_PT, leg.ssrc)}

        idrs = idr_count(far.received)
        assert far.transport is not None
        far.transport.sendto(pli(ROOM_SYSTEM_SSRC, leg.ssrc), near_addr)
        await until(lambda: idr_count(far.received) > idrs, timeout_s=10)
        assert transcoder.stats().keyframes_forced == 1

        h264_pc.addTransceiver(SizedVideoTrack(192, 144), direction="sendonly")
        speaker = await answer(worker, "whip", h264_pc, grant(3, PeerRole.site))
        assert speaker.sources["video"].codecs[0].name == "video/h264"  # the room asks now
        await until(lambda: speaker.connected, timeout_s=15)
        switched_at = len(far.received)
        room.apply_floor(FloorCommand(action=FloorAction.give, site_id=3, by="test"))
        await until(lambda: len(decode(far.received[switched_at:])) >= 10, timeout_s=15)
        assert transcoder.closed
        sizes = [(f.width, f.height) for f in decode(far.received[switched_at:])]
        assert sizes[-5:] == [(192, 144)] * 5
        assert leg.egress.transcoders_started == 1
        seqs = [p.sequence_number for p in far.received]
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    finally:
        await vp8_pc.close()
        await h264_pc.close()
        leg.close()
        near_transport.close()
        far_transport.close()
