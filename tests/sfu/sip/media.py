"""Real H.264 for the SIP tests: frames encoded with libx264 (through aiortc's encoder), cut
into RTP packets by aiortc's packetiser, and decoded back with FFmpeg's decoder (PyAV)."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import random
from collections.abc import Iterable

import av
from aiortc.codecs.h264 import H264Encoder, h264_depayload
from aiortc.rtp import RtcpPacket, RtpPacket

from sfu.sip.h264 import nal_units
from sfu.sip.video import SipVideo

SPS, PPS, IDR = 7, 8, 5
FRAME_TICKS = 3000  # 30 frames a second at 90 kHz


def picture(index: int, width: int = 320, height: int = 240) -> av.VideoFrame:
    """A frame with enough detail that an IDR picture spans several packets (FU-A)."""
    rng = random.Random(index)
    image = av.VideoFrame(width=width, height=height, format="yuv420p")
    for plane in image.planes:
        plane.update(rng.randbytes(plane.buffer_size))
    image.pts = index * FRAME_TICKS
    image.time_base = fractions.Fraction(1, 90_000)
    return image


def encode(
    count: int, keyframes: Iterable[int], *, keep_parameter_sets_after: int = 0
) -> list[list[bytes]]:
    """NAL units of `count` frames, IDR at `keyframes`; SPS and PPS are dropped from every
    access unit after index `keep_parameter_sets_after`, as a room system that sends them
    only once does."""
    encoder = H264Encoder()
    wanted = set(keyframes)
    units = []
    for index in range(count):
        nals = list(encoder._encode_frame(picture(index), force_keyframe=index in wanted))
        if index > keep_parameter_sets_after:
            nals = [nal for nal in nals if nal[0] & 0x1F not in (SPS, PPS)]
        units.append(nals)
    return units


def packetize(
    access_units: list[list[bytes]], *, payload_type: int, ssrc: int, first_seq: int = 1000
) -> list[RtpPacket]:
    """RTP packets of these access units, as aiortc's sender cuts them (STAP-A, FU-A)."""
    packets = []
    seq = first_seq
    for index, nals in enumerate(access_units):
        payloads = H264Encoder._packetize(nals)
        for number, payload in enumerate(payloads):
            packets.append(
                RtpPacket(
                    payload_type=payload_type,
                    marker=int(number == len(payloads) - 1),
                    sequence_number=seq & 0xFFFF,
                    timestamp=index * FRAME_TICKS,
                    ssrc=ssrc,
                    payload=payload,
                )
            )
            seq += 1
    return packets


def nal_types(packet: RtpPacket) -> list[int]:
    return [nal_type for nal_type, _unit in nal_units(packet.payload)]


def decode(packets: Iterable[RtpPacket]) -> list[av.VideoFrame]:
    """The frames FFmpeg's H.264 decoder makes of these packets (an access unit per RTP
    timestamp); access units it cannot decode give nothing."""
    decoder = av.CodecContext.create("h264", "r")
    frames: list[av.VideoFrame] = []
    units: dict[int, bytes] = {}
    for packet in packets:
        units[packet.timestamp] = units.get(packet.timestamp, b"") + h264_depayload(packet.payload)
    for timestamp, data in units.items():
        chunk = av.Packet(data)
        chunk.pts = timestamp
        try:
            frames += decoder.decode(chunk)
        except av.error.FFmpegError:
            continue
    with contextlib.suppress(av.error.FFmpegError):
        frames += decoder.decode(None)
    return frames


class LegSocket(asyncio.DatagramProtocol):
    """The leg's side of the test's socket pair (rtcp-mux), demultiplexing into `SipVideo`."""

    def __init__(self) -> None:
        self.video: SipVideo | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.video is not None
        if 192 <= data[1] <= 223:
            self.video.on_rtcp(RtcpPacket.parse(data))
        else:
            self.video.on_rtp(RtpPacket.parse(data))
