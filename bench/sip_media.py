"""What the SIP benchmarks share: the leg codecs and the goal, a room system's media made once
(a tone in the leg's codec, an H.264 loop of the test card), and room systems' media on plain
RTP in a process of their own (`leg_main`), for `bench/sip.py`.

A room system here is two UDP sockets (audio, video; RTCP muxed) that replay pre-encoded
packets: a 400 Hz tone in the leg's codec every 20 ms and the H.264 loop at 30 fps (restarted
at its IDR when the worker asks with PLI or FIR), and count what the worker sends back.
Nothing is encoded or decoded while it runs, so a machine with two cores holds 20 of them
next to the worker that is measured. The legs are opened on the worker's `/sip-legs` API, as
the gateway opens them (a call in: the room system's offer, the site's join grant).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import random
import signal
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
import numpy as np
from aiortc.codecs.h264 import H264Encoder
from fanout import FPS, HEIGHT, LOOP_FRAMES, WIDTH, test_card

from sfu.sip.audio import FRAME_S, encode_pcm, leg_format
from sfu.sip.sdp import SdpCodec

CODECS = [
    SdpCodec(0, "PCMU", 8000),
    SdpCodec(8, "PCMA", 8000),
    SdpCodec(9, "G722", 8000),
    SdpCodec(111, "opus", 48000, 2),
]
GOAL_CORE_PER_LEG = 0.02
"""Issue 15: one SIP leg costs the worker at most 2 % of a core."""
TONE_HZ = 400
TONE_AMPLITUDE = 8000
VIDEO_PT = 109
TICK_S = 0.005  # the room systems' sender wakes this often and sends what is due
VIDEO_TICKS = 3000  # RTP timestamp units per frame at 90 kHz and 30 fps
STOP_TIMEOUT_S = 10.0


def codec_named(name: str) -> SdpCodec:
    for codec in CODECS:
        if codec.name.lower() == name.lower():
            return codec
    raise ValueError(f"unknown leg codec {name!r}: one of {[c.name for c in CODECS]}")


def tone_payloads(codec: SdpCodec, seconds: int = 1) -> list[bytes]:
    """`seconds` of a steady tone in the leg's codec, one RTP payload per 20 ms (a whole
    number of seconds of a whole-Hz tone, so it loops without a click)."""
    fmt = leg_format(codec)
    context = av.CodecContext.create(fmt.encoder, "w")
    context.sample_rate = fmt.pcm_rate
    context.layout = "mono"
    context.format = "s16"
    context.time_base = fractions.Fraction(1, fmt.pcm_rate)
    context.open()
    per_frame = round(fmt.pcm_rate * FRAME_S)
    frames = round(seconds / FRAME_S)
    t = np.arange(per_frame * frames) / fmt.pcm_rate
    pcm = (np.sin(2 * math.pi * TONE_HZ * t) * TONE_AMPLITUDE).astype(np.int16)
    return [
        encode_pcm(context, pcm[i * per_frame : (i + 1) * per_frame], fmt.pcm_rate, i * per_frame)
        for i in range(frames)
    ]


def encode_h264_loop(bitrate: int) -> list[av.Packet]:
    """LOOP_FRAMES frames of `fanout`'s test card in H.264 (constrained baseline, SPS and PPS
    before the one IDR at the start), as a WebRTC publisher in a room with room systems and a
    room system itself send it."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.bit_rate = bitrate
    codec.framerate = fractions.Fraction(FPS, 1)
    codec.time_base = fractions.Fraction(1, FPS)
    codec.gop_size = LOOP_FRAMES * 2
    codec.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "profile": "baseline",
        "level": "3.1",
        "x264-params": f"repeat-headers=1:scenecut=0:keyint={LOOP_FRAMES * 2}",
    }
    packets: list[av.Packet] = []
    for index in range(LOOP_FRAMES):
        frame = test_card(index)
        frame.pts = index
        frame.time_base = codec.time_base
        packets.extend(codec.encode(frame))
    packets.extend(codec.encode(None))
    return packets[:LOOP_FRAMES]


def h264_rtp_frames(packets: list[av.Packet]) -> list[list[bytes]]:
    """The RTP payloads (single NAL, STAP-A, FU-A) of each access unit, as aiortc cuts them."""
    return [
        H264Encoder._packetize(H264Encoder._split_bitstream(bytes(packet))) for packet in packets
    ]


def room_system_offer(codec: SdpCodec, audio_port: int, video_port: int | None) -> str:
    """A room system's SDP offer: the leg codec (and H.264 on its own port), RTCP muxed."""
    lines = [
        "v=0",
        "o=roomsystem 1 1 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {audio_port} RTP/AVP {codec.payload_type}",
        f"a=rtpmap:{codec.rtpmap()}",
        "a=ptime:20",
        "a=rtcp-mux",
        "a=sendrecv",
    ]
    if video_port is not None:
        lines += [
            f"m=video {video_port} RTP/AVP {VIDEO_PT}",
            f"a=rtpmap:{VIDEO_PT} H264/90000",
            f"a=fmtp:{VIDEO_PT} packetization-mode=1;profile-level-id=42e01f",
            "a=rtcp-fb:* nack pli",
            "a=rtcp-mux",
            "a=sendrecv",
        ]
    return "\r\n".join(lines) + "\r\n"


def answered_port(sdp: str, kind: str) -> int:
    """The port of the answer's m-line of `kind` (0: refused or absent)."""
    for line in sdp.splitlines():
        if line.startswith(f"m={kind} "):
            return int(line.split()[1])
    return 0


class Counter(asyncio.DatagramProtocol):
    """One stream's socket: counts RTP and RTCP from the worker; a PLI or FIR (RTCP PSFB,
    FMT 1 or 4) calls `on_keyframe_request`."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.rtp = 0
        self.rtcp = 0
        self.keyframe_requests = 0
        self.on_keyframe_request: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12:
            return
        if 192 <= data[1] <= 223:  # RTCP (RFC 5761)
            self.rtcp += 1
            if data[1] == 206 and data[0] & 0x1F in (1, 4):
                self.keyframe_requests += 1
                if self.on_keyframe_request is not None:
                    self.on_keyframe_request()
        else:
            self.rtp += 1

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


@dataclass
class Stream:
    """What one stream of a leg sends: a loop of packets (lists of payloads per tick)."""

    counter: Counter
    payload_type: int
    period_s: float
    ticks: int  # RTP timestamp units per period
    frames: list[list[bytes]]
    target: tuple[str, int] = ("127.0.0.1", 0)
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    seq: int = field(default_factory=lambda: random.getrandbits(16))
    timestamp: int = field(default_factory=lambda: random.getrandbits(32))
    index: int = 0
    next_at: float = 0.0
    sent: int = 0

    def restart(self) -> None:
        self.index = 0  # the loop's first frame is its IDR, with SPS and PPS

    def send_due(self, now: float) -> None:
        transport = self.counter.transport
        while transport is not None and self.next_at <= now:
            payloads = self.frames[self.index]
            for number, payload in enumerate(payloads):
                marker = 0x80 if number == len(payloads) - 1 else 0
                header = struct.pack(
                    "!BBHII", 0x80, self.payload_type | marker, self.seq, self.timestamp, self.ssrc
                )
                transport.sendto(header + payload, self.target)
                self.seq = (self.seq + 1) & 0xFFFF
                self.sent += 1
            self.index = (self.index + 1) % len(self.frames)
            self.timestamp = (self.timestamp + self.ticks) & 0xFFFFFFFF
            self.next_at += self.period_s
            if now - self.next_at > 0.5:  # the process stalled: do not send a burst
                self.next_at = now + self.period_s


@dataclass
class RoomSystemLeg:
    leg_id: str
    audio: Stream
    video: Stream | None


async def _open_leg(
    http: httpx.AsyncClient, token: str, codec: SdpCodec, media: dict[str, Any], number: int
) -> RoomSystemLeg:
    loop = asyncio.get_running_loop()
    _t, audio = await loop.create_datagram_endpoint(Counter, local_addr=("127.0.0.1", 0))
    video: Counter | None = None
    if media["video"]:
        _t, video = await loop.create_datagram_endpoint(Counter, local_addr=("127.0.0.1", 0))
    offer = room_system_offer(codec, audio.port, video.port if video else None)
    response = await http.post(
        "/sip-legs",
        json={
            "call_id": f"bench-{number}@127.0.0.1",
            "remote_uri": f"sip:roomsystem{number}@127.0.0.1",
            "offer": offer,
            "token": token,
        },
    )
    if response.status_code != 201:
        raise RuntimeError(f"leg {number}: {response.status_code} {response.text[:200]}")
    answer = response.json()["sdp"]
    step = leg_format(codec).rtp_step
    start = time.monotonic() + random.random() * 0.03  # room systems do not tick together
    audio_stream = Stream(audio, codec.payload_type, FRAME_S, step, [[p] for p in media["tone"]])
    audio_stream.target, audio_stream.next_at = ("127.0.0.1", answered_port(answer, "audio")), start
    video_stream = None
    if video is not None and answered_port(answer, "video"):
        video_stream = Stream(video, VIDEO_PT, 1 / FPS, VIDEO_TICKS, media["h264"])
        video_stream.target = ("127.0.0.1", answered_port(answer, "video"))
        video_stream.next_at = start
        video.on_keyframe_request = video_stream.restart
    return RoomSystemLeg(response.json()["leg_id"], audio_stream, video_stream)


def leg_main(conn: Any) -> None:
    """A process of room systems, told what to do over `conn` (see `_leg_loop`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent shuts us down
    asyncio.run(_leg_loop(conn))


async def _send_loop(legs: list[RoomSystemLeg]) -> None:
    while True:
        now = time.monotonic()
        for leg in legs:
            leg.audio.send_due(now)
            if leg.video is not None:
                leg.video.send_due(now)
        await asyncio.sleep(TICK_S)


def _counts(legs: list[RoomSystemLeg]) -> dict[str, Any]:
    videos = [leg.video for leg in legs if leg.video is not None]
    return {
        "legs": len(legs),
        "video_legs": len(videos),
        "audio_rx": [leg.audio.counter.rtp for leg in legs],
        "video_rx": [v.counter.rtp for v in videos],
        "audio_tx": sum(leg.audio.sent for leg in legs),
        "video_tx": sum(v.sent for v in videos),
        "keyframe_requests": sum(v.counter.keyframe_requests for v in videos),
    }


async def _leg_loop(conn: Any) -> None:
    """Commands: ("open", worker_url, headers, tokens, codec_name, media) opens a leg per
    token (`media`: {"tone": payloads, "h264": frames or [], "video": bool}) and answers
    {"opened", "failures"}; ("counts",) answers `_counts`; ("stop",) closes every leg."""
    loop = asyncio.get_running_loop()
    legs: list[RoomSystemLeg] = []
    sender = asyncio.create_task(_send_loop(legs))
    http: httpx.AsyncClient | None = None
    try:
        while True:
            if not await loop.run_in_executor(None, conn.poll, 1.0):
                continue
            command, *args = conn.recv()
            if command == "open":
                worker_url, headers, tokens, codec_name, media = args
                http = http or httpx.AsyncClient(base_url=worker_url, headers=headers, timeout=20)
                failures = []
                for token in tokens:
                    try:
                        legs.append(
                            await _open_leg(http, token, codec_named(codec_name), media, len(legs))
                        )
                    except Exception as exc:
                        failures.append(f"{type(exc).__name__}: {exc}"[:200])
                conn.send({"opened": len(legs), "failures": failures})
            elif command == "counts":
                conn.send(_counts(legs))
            elif command == "stop":
                break
    finally:
        sender.cancel()
        if http is not None:
            for leg in legs:
                with contextlib.suppress(Exception):
                    await http.request("DELETE", f"/sip-legs/{leg.leg_id}", json={"reason": "bye"})
            await http.aclose()
        for leg in legs:
            for stream in (leg.audio, leg.video):
                if stream is not None and stream.counter.transport is not None:
                    stream.counter.transport.close()
        with contextlib.suppress(Exception):
            conn.send("stopped")
