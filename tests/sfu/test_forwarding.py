"""Forwarding from publishers' Sources to viewers' Slots.

The first tests drive `Source`/`Slot` with hand-made packets and a recording egress; the rest use
real aiortc peers over 127.0.0.1 (offer/answer handed over in-process): publishers encode VP8
and Opus, viewers decode, the SFU side only forwards packets.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from struct import unpack_from

import pytest
from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.rtp import RtpPacket, unpack_header_extensions

import sfu.forwarding
from sfu.codecs import EXT_ABS_SEND_TIME, EXT_AUDIO_LEVEL, EXT_MID, RtpCodec
from sfu.forwarding import PLI_MIN_INTERVAL_S, Slot, Source
from sfu.keyframes import PLI_WIDE_FANOUT, PLI_WIDE_INTERVAL_S
from sfu.rtc.egress import EgressStats
from sfu.rtc.ice import nominated_datagram_transport, use_host_addresses
from sfu.rtc.observe import observe_rtp, set_receive_filter
from sfu.rtc.sdp import NegotiatedRtp, negotiated_rtp
from tests.support.peers import LOOPBACK_ONLY, SizedVideoTrack

VP8_PT_PUBLISHER = 97
VP8_PT_VIEWER = 120
OPUS_PT_PUBLISHER = 111
OPUS_PT_VIEWER = 109
KEY = bytes((0x10, 0x50, 0x2D, 0x00))  # VP8 descriptor S=1, then a keyframe tag
DELTA = bytes((0x10, 0x51, 0x2D, 0x00))
MIDDLE = bytes((0x00, 0xAA, 0xBB))  # not the start of a partition


# ---------------------------------------------------------------------------------------------
# Source / Slot with hand-made packets


class Clock:
    """A settable stand-in for time.monotonic()."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(sfu.forwarding, "_monotonic", fake)
    return fake


@dataclass
class Sent:
    ssrc: int
    pt: int
    marker: int
    seq: int
    ts: int
    extensions: dict[int, bytes]
    payload: bytes


@dataclass
class RecordingEgress:
    """A SlotEgress that keeps what it is given."""

    kind: str
    params: NegotiatedRtp
    ssrc: int = 0x11223344
    clock_rate: int = 90000
    ready: bool = True
    on_keyframe_request: Callable[[], None] = lambda: None
    sent: list[Sent] = field(default_factory=list)
    payload_objects: list[bytes] = field(default_factory=list)
    closed: bool = False

    def send(self, header: bytes, payload: bytes, seq: int, rtp_ts: int, now: float) -> bool:
        b0, b1, hseq, ts, ssrc = unpack_from("!BBHII", header)
        extensions: dict[int, bytes] = {}
        if b0 & 0x10:
            profile, words = unpack_from("!HH", header, 12)
            raw = header[16 : 16 + 4 * words]
            assert len(header) == 16 + 4 * words
            extensions = dict(unpack_header_extensions(profile, raw))
        else:
            assert len(header) == 12
        assert (hseq, ts) == (seq, rtp_ts)
        self.sent.append(Sent(ssrc, b1 & 0x7F, b1 >> 7, hseq, ts, extensions, payload))
        self.payload_objects.append(payload)
        return True

    def stats(self) -> EgressStats:
        return EgressStats(len(self.sent), 0, 0, 0, 0, 0, None, None, None, None, None)

    def close(self) -> None:
        self.closed = True


def vp8(pt: int) -> RtpCodec:
    return RtpCodec("video/VP8", 90000, pt, rtx_payload_type=pt + 1, nack=True)


def opus(pt: int) -> RtpCodec:
    return RtpCodec("audio/opus", 48000, pt, channels=2)


def viewer_params(kind: str, extensions: dict[str, int] | None = None) -> NegotiatedRtp:
    codecs = (vp8(VP8_PT_VIEWER),) if kind == "video" else (opus(OPUS_PT_VIEWER),)
    return NegotiatedRtp(kind=kind, mid="1", codecs=codecs, header_extensions=extensions or {})


class FakePublisher:
    """Feeds a Source with numbered packets, counting the keyframe requests it receives."""

    def __init__(self, kind: str = "video", seq: int = 40000, ts: int = 5000, ssrc: int = 7):
        self.kind = kind
        self.seq = seq
        self.ts = ts
        self.ssrc = ssrc
        self.plis = 0
        codec = vp8(VP8_PT_PUBLISHER) if kind == "video" else opus(OPUS_PT_PUBLISHER)
        self.source = Source(kind, [codec], send_pli=self._pli, label=f"{kind}-{ssrc}")

    def _pli(self) -> bool:
        self.plis += 1
        return True

    def packet(self, payload: bytes, *, marker: int = 1, advance_ts: int = 3000) -> RtpPacket:
        pt = VP8_PT_PUBLISHER if self.kind == "video" else OPUS_PT_PUBLISHER
        packet = RtpPacket(
            payload_type=pt,
            marker=marker,
            sequence_number=self.seq,
            timestamp=self.ts,
            ssrc=self.ssrc,
            payload=payload,
        )
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + advance_ts) & 0xFFFFFFFF
        return packet

    def send(self, payload: bytes, **kwargs: int) -> RtpPacket:
        packet = self.packet(payload, **kwargs)
        self.source.push(packet)
        return packet


def make_slot(
    kind: str = "video", extensions: dict[str, int] | None = None
) -> tuple[Slot, RecordingEgress]:
    egress = RecordingEgress(kind=kind, params=viewer_params(kind, extensions))
    return Slot(egress, label="viewer"), egress


def test_slot_rewrites_header_and_keeps_payload(clock: Clock) -> None:
    publisher = FakePublisher()
    slot, egress = make_slot("video", {EXT_MID: 4, EXT_ABS_SEND_TIME: 9})
    slot.switch_to(publisher.source)
    sent_payloads = [publisher.send(p).payload for p in (KEY, DELTA, MIDDLE)]
    assert [s.ssrc for s in egress.sent] == [egress.ssrc] * 3
    assert [s.pt for s in egress.sent] == [VP8_PT_VIEWER] * 3
    seqs = [s.seq for s in egress.sent]
    assert seqs == [seqs[0], (seqs[0] + 1) & 0xFFFF, (seqs[0] + 2) & 0xFFFF]
    assert [(s.ts - egress.sent[0].ts) & 0xFFFFFFFF for s in egress.sent] == [0, 3000, 6000]
    for sent in egress.sent:
        assert set(sent.extensions) == {4, 9}
        assert sent.extensions[4] == b"1"
        assert len(sent.extensions[9]) == 3
    # the very same payload objects: never copied or rewritten
    assert all(a is b for a, b in zip(egress.payload_objects, sent_payloads, strict=True))


def test_slot_audio_level_written_only_when_negotiated_and_sent(clock: Clock) -> None:
    publisher = FakePublisher("audio")
    with_level, egress_with = make_slot("audio", {EXT_AUDIO_LEVEL: 2, EXT_ABS_SEND_TIME: 3})
    without_level, egress_without = make_slot("audio", {})
    with_level.switch_to(publisher.source)
    without_level.switch_to(publisher.source)
    packet = publisher.packet(b"\xfc\x01", advance_ts=960)
    packet.extensions.audio_level = (True, 30)
    publisher.source.push(packet)
    publisher.send(b"\xfc\x02", advance_ts=960)  # no level in this one
    assert egress_with.sent[0].extensions == {2: bytes((0x80 | 30,))}
    assert egress_with.sent[1].extensions == {}
    assert [s.extensions for s in egress_without.sent] == [{}, {}]
    assert publisher.source.audio_level_dbov == -30
    assert publisher.source.voice_activity is True


def test_slot_video_switch_waits_for_keyframe_then_continues_numbering(clock: Clock) -> None:
    a = FakePublisher(seq=100, ts=10_000, ssrc=1)
    b = FakePublisher(seq=60_000, ts=4_000_000_000, ssrc=2)
    slot, egress = make_slot()
    slot.switch_to(a.source)
    a.send(KEY)
    a.send(DELTA)
    slot.switch_to(b.source)
    assert b.plis == 1 and slot.waiting_for_keyframe and slot.active_source is a.source
    clock.now += 0.033
    a.send(DELTA)  # still forwarded: the viewer keeps watching A until B's keyframe
    b.send(DELTA)  # not forwarded: B has not sent a keyframe yet
    assert len(egress.sent) == 3
    clock.now += 0.1
    b.send(KEY)
    b.send(DELTA)
    a.send(DELTA)  # A is no longer forwarded
    assert slot.active_source is b.source and not slot.waiting_for_keyframe
    assert len(egress.sent) == 5
    seqs = [s.seq for s in egress.sent]
    assert all((y - x) & 0xFFFF == 1 for x, y in itertools.pairwise(seqs))
    # B's first packet follows A's last one by the wall-clock time between them (0.1 s)
    assert (egress.sent[3].ts - egress.sent[2].ts) & 0xFFFFFFFF == 9000
    assert (egress.sent[4].ts - egress.sent[3].ts) & 0xFFFFFFFF == 3000
    assert {s.ssrc for s in egress.sent} == {egress.ssrc}
    assert slot.stats().switches == 2


def test_slot_audio_switch_is_immediate(clock: Clock) -> None:
    a = FakePublisher("audio", ssrc=1)
    b = FakePublisher("audio", seq=9, ts=123, ssrc=2)
    slot, egress = make_slot("audio")
    slot.switch_to(a.source)
    a.send(b"a1", advance_ts=960)
    slot.switch_to(b.source)
    a.send(b"a2", advance_ts=960)
    clock.now += 0.02
    b.send(b"b1", advance_ts=960)
    b.send(b"b2", advance_ts=960)
    assert [s.payload for s in egress.sent] == [b"a1", b"b1", b"b2"]
    assert [(s.seq - egress.sent[0].seq) & 0xFFFF for s in egress.sent] == [0, 1, 2]
    assert (egress.sent[1].ts - egress.sent[0].ts) & 0xFFFFFFFF == 960
    assert a.plis == b.plis == 0


def test_slot_upstream_gap_stays_visible_and_late_repair_fills_it(clock: Clock) -> None:
    publisher = FakePublisher()
    slot, egress = make_slot()
    slot.switch_to(publisher.source)
    publisher.send(KEY)
    lost = publisher.packet(DELTA)  # lost upstream
    publisher.send(DELTA)
    publisher.source.push(lost)  # its repair arrives late (RTX, already unwrapped)
    seqs = [s.seq for s in egress.sent]
    assert seqs == [seqs[0], seqs[0] + 2, seqs[0] + 1]


def test_slot_drops_packets_older_than_its_segment(clock: Clock) -> None:
    a = FakePublisher(seq=500)
    slot, egress = make_slot()
    early = a.packet(DELTA)
    slot.switch_to(a.source)
    a.send(KEY)
    a.source.push(early)  # sent before the keyframe the slot started at
    assert len(egress.sent) == 1
    assert slot.stats().packets_dropped == 1


def test_source_request_keyframe_is_rate_limited(clock: Clock) -> None:
    publisher = FakePublisher()
    assert publisher.source.request_keyframe() is True
    assert publisher.source.request_keyframe() is False
    clock.now += PLI_MIN_INTERVAL_S
    assert publisher.source.request_keyframe() is True
    assert publisher.plis == 2
    assert publisher.source.stats().keyframe_requests_sent == 2
    assert FakePublisher("audio").source.request_keyframe() is False


def test_source_feeding_many_slots_spaces_its_keyframe_requests_wider(clock: Clock) -> None:
    publisher = FakePublisher()
    slots = [make_slot()[0] for _ in range(PLI_WIDE_FANOUT)]
    for slot in slots[:-1]:
        slot.switch_to(publisher.source)
    publisher.send(KEY)  # the slots are fed now
    plis = publisher.plis
    clock.now += PLI_MIN_INTERVAL_S
    # one slot short of a wide fan-out: the usual interval
    assert publisher.source.request_keyframe() is True
    slots[-1].switch_to(publisher.source)  # waiting for a keyframe: counts too
    clock.now += PLI_MIN_INTERVAL_S
    assert publisher.source.request_keyframe() is False
    clock.now += PLI_WIDE_INTERVAL_S - PLI_MIN_INTERVAL_S
    assert publisher.source.request_keyframe() is True
    assert publisher.plis == plis + 2


def test_slot_viewer_keyframe_request_reaches_its_source(clock: Clock) -> None:
    publisher = FakePublisher()
    slot, egress = make_slot()
    slot.switch_to(publisher.source)
    publisher.send(KEY)
    clock.now += 1
    egress.on_keyframe_request()
    egress.on_keyframe_request()  # rate-limited
    assert publisher.plis == 2


def test_slot_waits_for_another_keyframe_until_viewer_can_receive(clock: Clock) -> None:
    publisher = FakePublisher()
    slot, egress = make_slot()
    egress.ready = False
    slot.switch_to(publisher.source)
    publisher.send(KEY)
    assert publisher.plis == 0 and egress.sent == []
    egress.ready = True
    publisher.send(DELTA)  # the viewer is reachable now: ask for a fresh keyframe
    assert publisher.plis == 1 and egress.sent == []
    publisher.send(KEY)
    assert len(egress.sent) == 1


def test_source_muted_forwards_nothing_and_unmute_resumes_at_keyframe(clock: Clock) -> None:
    publisher = FakePublisher()
    slot, egress = make_slot()
    slot.switch_to(publisher.source)
    publisher.send(KEY)
    publisher.source.muted = True
    for _ in range(5):
        publisher.send(DELTA)
    assert len(egress.sent) == 1
    publisher.source.muted = False
    publisher.send(DELTA)
    assert len(egress.sent) == 1 and publisher.plis >= 1
    publisher.send(KEY)
    assert len(egress.sent) == 2
    # numbering continues without exposing the muted stretch as loss
    assert (egress.sent[1].seq - egress.sent[0].seq) & 0xFFFF == 1
    assert publisher.source.stats().packets_dropped_muted == 5


def test_slot_codec_not_negotiated_by_viewer_is_dropped(clock: Clock) -> None:
    h264 = RtpCodec("video/H264", 90000, 102, parameters={"packetization-mode": "1"})
    source = Source("video", [h264], send_pli=lambda: True)
    slot, egress = make_slot()
    slot.switch_to(source)
    source.push(RtpPacket(payload_type=102, sequence_number=1, ssrc=3, payload=b"\x65\x88"))
    assert egress.sent == []
    assert slot.stats().packets_dropped == 1


def test_slot_switch_rejects_other_kind_and_closed_source(clock: Clock) -> None:
    slot, _ = make_slot()
    with pytest.raises(ValueError):
        slot.switch_to(FakePublisher("audio").source)
    closed = FakePublisher().source
    closed.close()
    with pytest.raises(ValueError):
        slot.switch_to(closed)


def test_source_close_silences_slots_and_slot_close_detaches(clock: Clock) -> None:
    publisher = FakePublisher()
    slot, egress = make_slot()
    other, other_egress = make_slot()
    slot.switch_to(publisher.source)
    other.switch_to(publisher.source)
    publisher.send(KEY)
    other.close()
    assert other_egress.closed and publisher.source.slots == (slot,)
    publisher.source.close()
    assert slot.source is None and slot.active_source is None
    assert len(egress.sent) == 1
    with pytest.raises(RuntimeError):
        other.switch_to(None)


# ---------------------------------------------------------------------------------------------
# real aiortc peers over 127.0.0.1


@pytest.fixture(autouse=True)
def loopback_host_candidates() -> Iterator[None]:
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)


@dataclass
class Decoded:
    at: float
    pts: int
    width: int


class Viewer:
    """A WHEP-like client: recvonly transceivers whose tracks are really decoded."""

    def __init__(self, kinds: tuple[str, ...] = ("video",)) -> None:
        self.pc = RTCPeerConnection(LOOPBACK_ONLY)
        self.transceivers = {
            kind: self.pc.addTransceiver(kind, direction="recvonly") for kind in kinds
        }
        self.frames: dict[str, list[Decoded]] = {kind: [] for kind in kinds}
        self.packets: dict[str, list[RtpPacket]] = {kind: [] for kind in kinds}
        self._tasks: list[asyncio.Task[None]] = []
        for kind, transceiver in self.transceivers.items():
            observe_rtp(transceiver, self.packets[kind].append)
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        frames = self.frames[track.kind]
        with contextlib.suppress(Exception):
            while True:
                image = await track.recv()
                frames.append(Decoded(time.monotonic(), image.pts, getattr(image, "width", 0)))

    def media_seqs(self, kind: str = "video") -> list[int]:
        """Sequence numbers received on the media SSRC, RTX repairs unwrapped."""
        rtx_pts = {c.rtx_payload_type for c in negotiated_rtp(self.transceivers[kind]).codecs}
        seqs = []
        for packet in self.packets[kind]:
            if packet.payload_type in rtx_pts:
                seqs.append(unpack_from("!H", packet.payload)[0])
            else:
                seqs.append(packet.sequence_number)
        return seqs

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()


@dataclass
class Bridge:
    """The SFU side of the test: one answering peer connection per publisher or viewer."""

    pcs: list[RTCPeerConnection] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    clients: list[RTCPeerConnection] = field(default_factory=list)
    viewers: list[Viewer] = field(default_factory=list)

    async def _answer(
        self, client: RTCPeerConnection, attach: Callable[[RTCRtpTransceiver], None]
    ) -> RTCPeerConnection:
        await client.setLocalDescription(await client.createOffer())
        server = RTCPeerConnection(LOOPBACK_ONLY)
        self.pcs.append(server)
        await server.setRemoteDescription(client.localDescription)
        for transceiver in server.getTransceivers():
            attach(transceiver)
        await server.setLocalDescription(await server.createAnswer())
        await client.setRemoteDescription(server.localDescription)
        return server

    async def publish(
        self, width: int = 160, height: int = 120, audio: bool = False, video_codec: str = ""
    ) -> tuple[dict[str, Source], RTCPeerConnection]:
        client = RTCPeerConnection(LOOPBACK_ONLY)
        self.clients.append(client)
        video = client.addTransceiver(SizedVideoTrack(width, height), direction="sendonly")
        if video_codec:
            video.setCodecPreferences(
                [
                    codec
                    for codec in RTCRtpSender.getCapabilities("video").codecs
                    if codec.mimeType == video_codec
                ]
            )
        if audio:
            client.addTrack(AudioStreamTrack())
        sources: dict[str, Source] = {}

        def attach(transceiver: RTCRtpTransceiver) -> None:
            sources[transceiver.kind] = Source.attach(transceiver, label=f"{width}x{height}")
            self.sources.append(sources[transceiver.kind])

        server = await self._answer(client, attach)
        return sources, server

    async def view(
        self, sources: dict[str, Source], kinds: tuple[str, ...] = ("video",), **slot_kwargs: int
    ) -> tuple[Viewer, dict[str, Slot], RTCPeerConnection]:
        viewer = Viewer(kinds)
        self.viewers.append(viewer)
        slots: dict[str, Slot] = {}

        def attach(transceiver: RTCRtpTransceiver) -> None:
            slot = Slot.attach(transceiver, label=f"viewer-{len(self.viewers)}", **slot_kwargs)
            slot.switch_to(sources[transceiver.kind])
            slots[transceiver.kind] = slot
            self.slots.append(slot)

        server = await self._answer(viewer.pc, attach)
        return viewer, slots, server

    async def close(self) -> None:
        for slot in self.slots:
            slot.close()
        for source in self.sources:
            source.close()
        for viewer in self.viewers:
            await viewer.close()
        for pc in (*self.clients, *self.pcs):
            await pc.close()


@pytest.fixture
async def bridge() -> AsyncIterator[Bridge]:
    instance = Bridge()
    try:
        yield instance
    finally:
        await instance.close()
    for pc in (*instance.clients, *instance.pcs):
        assert pc.connectionState == "closed"


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until `condition()` holds; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {condition}")
        await asyncio.sleep(0.02)


def increasing(values: list[int]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def continuous(seqs: list[int]) -> bool:
    return all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))


async def test_forwarding_viewers_decode_video_and_audio_without_sfu_decoding(
    bridge: Bridge,
) -> None:
    """One publisher, three viewers: every viewer decodes; the SFU's receivers decode nothing."""
    sources, ingest_pc = await bridge.publish(audio=True)
    viewers = [(await bridge.view(sources, ("video", "audio")))[0] for _ in range(3)]
    await until(lambda: all(len(v.frames["video"]) >= 20 for v in viewers), 8)
    await until(lambda: all(len(v.frames["audio"]) >= 20 for v in viewers), 3)
    for viewer in viewers:
        video = viewer.frames["video"]
        assert increasing([f.pts for f in video])
        assert {f.width for f in video} == {160}
        assert increasing([f.pts for f in viewer.frames["audio"]])
    assert sources["video"].stats().slots == 3
    assert sources["audio"].audio_level_dbov is not None  # aiortc sends ssrc-audio-level
    for transceiver in ingest_pc.getTransceivers():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(transceiver.receiver.track.recv(), 0.2)


async def test_source_sends_bandwidth_estimates_to_its_publisher(bridge: Bridge) -> None:
    """REMB goes back to the publisher (it has no transport-cc), so its encoder stays in bounds."""
    sources, _ = await bridge.publish()
    await bridge.view(sources)
    await until(lambda: sources["video"].stats().bandwidth_reports_sent > 0, 8)


async def test_forwarding_h264_publisher_reaches_viewer(bridge: Bridge) -> None:
    """An H.264 publisher (packetization-mode 1): the viewer decodes, starting at an IDR."""
    sources, _ = await bridge.publish(192, 144, video_codec="video/H264")
    assert sources["video"].codec.name == "video/h264"
    viewer, slots, _ = await bridge.view(sources)
    await until(lambda: len(viewer.frames["video"]) >= 15, 8)
    assert {f.width for f in viewer.frames["video"]} == {192}
    assert increasing([f.pts for f in viewer.frames["video"]])
    viewer_h264 = {
        c.payload_type
        for c in negotiated_rtp(viewer.transceivers["video"]).codecs
        if c.name == "video/h264"
    }
    assert {p.payload_type for p in viewer.packets["video"]} <= viewer_h264
    assert slots["video"].stats().packets_dropped == 0


async def test_slot_switch_from_publisher_a_to_b_keeps_viewer_decoding(bridge: Bridge) -> None:
    """The viewer's stream moves from A (160×120) to B (192×144): same SSRC, numbering goes on."""
    a, _ = await bridge.publish(160, 120, audio=True)
    b, _ = await bridge.publish(192, 144, audio=True)
    viewer, slots, _ = await bridge.view(a, ("video", "audio"))
    await until(lambda: len(viewer.frames["video"]) >= 15)
    audio_before = len(viewer.frames["audio"])
    slots["video"].switch_to(b["video"])
    slots["audio"].switch_to(b["audio"])
    await until(lambda: sum(f.width == 192 for f in viewer.frames["video"]) >= 15)
    await until(lambda: len(viewer.frames["audio"]) >= audio_before + 25)
    widths = [f.width for f in viewer.frames["video"]]
    first_b = widths.index(192)
    assert set(widths[:first_b]) == {160} and set(widths[first_b:]) == {192}
    assert increasing([f.pts for f in viewer.frames["video"]])
    assert increasing([f.pts for f in viewer.frames["audio"]])
    for kind in ("video", "audio"):
        packets = viewer.packets[kind]
        assert {p.ssrc for p in packets} == {slots[kind].ssrc}
        assert continuous([p.sequence_number for p in packets])
    # B's first frame came within a keyframe request's reach of the switch
    assert slots["video"].active_source is b["video"]
    assert b["video"].stats().keyframe_requests_sent >= 1


async def test_slot_late_viewer_gets_keyframe_within_one_second(bridge: Bridge) -> None:
    """A viewer joining a running stream decodes within 1 s (the encoder's GOP is 3000 frames)."""
    sources, _ = await bridge.publish()
    first, _, _ = await bridge.view(sources)
    await until(lambda: len(first.frames["video"]) >= 5)
    await asyncio.sleep(1.0)
    joined_at = time.monotonic()
    late, _, _ = await bridge.view(sources)
    await until(lambda: bool(late.frames["video"]), 3)
    assert late.frames["video"][0].at - joined_at < 1.0
    await until(lambda: len(late.frames["video"]) >= 10)
    assert increasing([f.pts for f in late.frames["video"]])


async def test_slot_sender_reports_carry_forwarded_counts_and_rtt(bridge: Bridge) -> None:
    """SR still goes out, counting what the slot forwarded; the viewer's RR gives RTT and loss."""
    sources, _ = await bridge.publish()
    viewer, slots, _ = await bridge.view(sources)
    await until(lambda: slots["video"].stats().rtt_s is not None, 6)
    stats = slots["video"].stats()
    assert stats.rtt_s is not None and 0 <= stats.rtt_s < 0.1
    assert stats.fraction_lost == 0 and stats.packets_lost == 0
    report = await viewer.pc.getStats()
    remote_sent = [s for s in report.values() if s.type == "remote-outbound-rtp"]
    assert remote_sent and 0 < remote_sent[0].packetsSent <= slots["video"].stats().packets_sent
    assert remote_sent[0].ssrc == slots["video"].ssrc


def drop_every(
    nth: int, payload_type: int, dropped: list[int], limit: int = 20
) -> Callable[[bytes], bool]:
    """A loss pattern: the first copy of every `nth` packet of one payload type is dropped."""
    seen: set[int] = set()

    def drop(datagram: bytes) -> bool:
        if len(datagram) < 12 or datagram[1] & 0x7F != payload_type or len(dropped) >= limit:
            return False
        seq = unpack_from("!H", datagram, 2)[0]
        if seq % nth or seq in seen:
            return False
        seen.add(seq)
        dropped.append(seq)
        return True

    return drop


async def test_slot_nack_repairs_loss_on_viewer_hop(bridge: Bridge) -> None:
    """Packets lost between SFU and viewer are resent by the SFU from its history, as RTX."""
    sources, _ = await bridge.publish(320, 240)
    viewer, slots, _ = await bridge.view(sources)
    # a receiver NACKs only after its first packet: start losing once the stream runs
    await until(lambda: len(viewer.frames["video"]) >= 3)
    pt = negotiated_rtp(viewer.transceivers["video"]).codecs[0].payload_type
    dropped: list[int] = []
    set_receive_filter(viewer.transceivers["video"].receiver.transport, drop_every(5, pt, dropped))
    await until(lambda: len(dropped) >= 20, 8)
    await until(lambda: set(dropped) <= set(viewer.media_seqs()), 3)
    assert slots["video"].stats().packets_retransmitted >= 20
    rtx_pt = negotiated_rtp(viewer.transceivers["video"]).codecs[0].rtx_payload_type
    assert any(p.payload_type == rtx_pt for p in viewer.packets["video"])
    frames = len(viewer.frames["video"])
    await until(lambda: len(viewer.frames["video"]) > frames + 5)
    assert increasing([f.pts for f in viewer.frames["video"]])


async def test_source_nack_repairs_loss_on_publisher_hop(bridge: Bridge) -> None:
    """Packets lost between publisher and SFU are NACKed by the SFU; viewers see no gap."""
    sources, ingest_pc = await bridge.publish(320, 240)
    viewer, _, _ = await bridge.view(sources)
    await until(lambda: len(viewer.frames["video"]) >= 3)
    pt = sources["video"].codec.payload_type
    dropped: list[int] = []
    transport = ingest_pc.getTransceivers()[0].receiver.transport
    set_receive_filter(transport, drop_every(5, pt, dropped))
    await until(lambda: len(dropped) >= 20, 8)
    set_receive_filter(transport, None)
    await asyncio.sleep(0.5)
    seqs = viewer.media_seqs()
    assert sources["video"].stats().nacks_sent >= 10
    window = range(min(seqs), max(seqs) + 1)
    assert not set(window) - set(seqs), "every upstream loss was repaired"
    assert increasing([f.pts for f in viewer.frames["video"]])


class StuckSocket:
    """Stands in for a socket the kernel no longer drains: everything waits in the transport."""

    def __init__(self) -> None:
        self.queued: list[bytes] = []

    def sendto(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        self.queued.append(data)

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self.queued))


async def test_slot_stuck_viewer_stays_bounded_and_others_keep_decoding(bridge: Bridge) -> None:
    """One viewer's socket backs up, another's vanishes: memory stays bounded, others play on."""
    sources, _ = await bridge.publish(320, 240)
    bound = 2048  # bytes; the synthetic camera's frames are small
    healthy, _, _ = await bridge.view(sources)
    stuck, stuck_slots, stuck_server = await bridge.view(sources, max_write_buffer_bytes=bound)
    gone, _, _ = await bridge.view(sources)
    viewers = (healthy, stuck, gone)
    await until(lambda: all(len(v.frames["video"]) >= 5 for v in viewers))

    selected = nominated_datagram_transport(stuck_server.getTransceivers()[0].sender.transport)
    assert selected is not None
    server_transport = selected[0]
    backlog = StuckSocket()
    server_transport.sendto = backlog.sendto  # type: ignore[method-assign]
    server_transport.get_write_buffer_size = backlog.get_write_buffer_size  # type: ignore[method-assign]
    gone_side = nominated_datagram_transport(gone.transceivers["video"].receiver.transport)
    assert gone_side is not None
    gone_side[0].close()  # the viewer's socket disappears without a goodbye

    dropped_before = stuck_slots["video"].stats().packets_dropped
    healthy_before = len(healthy.frames["video"])
    await asyncio.sleep(2.0)
    assert len(healthy.frames["video"]) >= healthy_before + 30
    assert increasing([f.pts for f in healthy.frames["video"]])
    assert backlog.get_write_buffer_size() <= bound + 1500
    assert stuck_slots["video"].stats().packets_dropped > dropped_before + 20
    del server_transport.sendto
    del server_transport.get_write_buffer_size
