"""Keyframe detection on hand-built RTP payloads and on payloads from aiortc's own encoders."""

from __future__ import annotations

import fractions
from struct import pack

import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from av import VideoFrame

from sfu.codecs import (
    H264,
    OPUS,
    VP8,
    RtpCodec,
    h264_is_keyframe,
    is_keyframe,
    is_supported,
    match_codec,
    vp8_is_keyframe,
)

# VP8 frame tags (RFC 6386 §9.1): bit 0 is P, the inverse keyframe flag.
VP8_KEY_TAG = bytes((0x50, 0x2D, 0x00, 0x9D, 0x01, 0x2A))
VP8_DELTA_TAG = bytes((0x51, 0x2D, 0x00))


@pytest.mark.parametrize(
    ("descriptor", "expected"),
    [
        (bytes((0x10,)), True),  # S=1, PID=0, no extension
        (bytes((0x90, 0x80, 0x05)), True),  # X, I with a 7-bit PictureID
        (bytes((0x90, 0x80, 0x81, 0x23)), True),  # X, I with a 15-bit PictureID (M bit)
        (bytes((0x90, 0xC0, 0x81, 0x23, 0x07)), True),  # X, I (15-bit), L: TL0PICIDX
        (bytes((0x90, 0xF0, 0x05, 0x07, 0x40)), True),  # X, I, L, T and K: TID/KEYIDX byte
        (bytes((0x90, 0x20, 0x40)), True),  # X with only T
        (bytes((0x00,)), False),  # not the start of a partition
        (bytes((0x11,)), False),  # S=1 but partition 1
        (bytes((0x90, 0x00)), True),  # X with no optional fields
    ],
)
def test_codecs_vp8_keyframe_descriptor_forms(descriptor: bytes, expected: bool) -> None:
    assert vp8_is_keyframe(descriptor + VP8_KEY_TAG) is expected
    assert vp8_is_keyframe(descriptor + VP8_DELTA_TAG) is False


@pytest.mark.parametrize(
    "payload",
    [b"", bytes((0x10,)), bytes((0x90,)), bytes((0x90, 0x80)), bytes((0x90, 0x80, 0x81))],
)
def test_codecs_vp8_truncated_payload_is_not_keyframe(payload: bytes) -> None:
    assert vp8_is_keyframe(payload) is False


def nal(nal_type: int, body: bytes = b"\x88\x84") -> bytes:
    return bytes((0x60 | nal_type,)) + body


def stap_a(*units: bytes) -> bytes:
    return bytes((0x78,)) + b"".join(pack("!H", len(unit)) + unit for unit in units)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (nal(5), True),  # single NAL: IDR slice
        (nal(7), True),  # single NAL: SPS
        (nal(1), False),  # single NAL: non-IDR slice
        (nal(8), False),  # single NAL: PPS alone
        (stap_a(nal(7), nal(8)), True),  # STAP-A with SPS, PPS
        (stap_a(nal(6), nal(5)), True),  # STAP-A with SEI, IDR
        (stap_a(nal(6), nal(1)), False),  # STAP-A without SPS or IDR
        (bytes((0x7C, 0x85)) + b"\x00" * 4, True),  # FU-A, start of an IDR
        (bytes((0x7C, 0x05)) + b"\x00" * 4, False),  # FU-A, middle of an IDR
        (bytes((0x7C, 0x81)) + b"\x00" * 4, False),  # FU-A, start of a non-IDR slice
        (bytes((0x78, 0x00, 0x09)) + nal(7), False),  # STAP-A with a size past the end
        (bytes((0x7C,)), False),  # truncated FU-A
        (b"", False),
    ],
)
def test_codecs_h264_keyframe_packetizations(payload: bytes, expected: bool) -> None:
    assert h264_is_keyframe(payload) is expected


def test_codecs_is_keyframe_by_mime_type() -> None:
    assert is_keyframe("video/VP8", bytes((0x10,)) + VP8_KEY_TAG) is True
    assert is_keyframe("video/H264", nal(5)) is True
    assert is_keyframe("audio/opus", b"\xfc") is True
    assert is_keyframe("video/AV1", b"\x10\x00") is False


def frame(width: int, height: int, index: int) -> VideoFrame:
    image = VideoFrame(width=width, height=height)
    for plane in image.planes:
        plane.update(bytes((index * 7 % 256,)) * plane.buffer_size)
    image.pts = index * 3000
    image.time_base = fractions.Fraction(1, 90000)
    return image


def test_codecs_vp8_keyframe_on_aiortc_encoder_output() -> None:
    encoder = Vp8Encoder()
    key_payloads, _ = encoder.encode(frame(320, 240, 0), force_keyframe=True)
    delta_payloads, _ = encoder.encode(frame(320, 240, 1))
    assert vp8_is_keyframe(key_payloads[0])
    assert not any(vp8_is_keyframe(p) for p in key_payloads[1:])
    assert not any(vp8_is_keyframe(p) for p in delta_payloads)


def test_codecs_h264_keyframe_on_aiortc_encoder_output() -> None:
    encoder = H264Encoder()
    key_payloads, _ = encoder.encode(frame(320, 240, 0), force_keyframe=True)
    delta_payloads: list[bytes] = []
    for index in range(1, 4):
        delta_payloads += encoder.encode(frame(320, 240, index))[0]
    assert h264_is_keyframe(key_payloads[0])
    assert delta_payloads
    assert not any(h264_is_keyframe(p) for p in delta_payloads)


def codec(mime: str, pt: int, clock: int = 90000, **params: str | int) -> RtpCodec:
    return RtpCodec(mime_type=mime, clock_rate=clock, payload_type=pt, parameters=params)


def test_codecs_supported_formats() -> None:
    assert is_supported(codec("video/VP8", 96))
    assert is_supported(codec("audio/opus", 111, 48000))
    assert is_supported(codec("video/H264", 102, **{"packetization-mode": "1"}))
    assert not is_supported(codec("video/H264", 102, **{"packetization-mode": "0"}))
    assert not is_supported(codec("audio/PCMU", 0, 8000))
    assert {VP8, H264, OPUS} == {"video/vp8", "video/h264", "audio/opus"}


def test_codecs_match_prefers_same_h264_profile() -> None:
    publisher = codec("video/H264", 99, **{"packetization-mode": 1, "profile-level-id": "42e01f"})
    viewer = [
        codec("video/VP8", 96),
        codec("video/H264", 100, **{"packetization-mode": 1, "profile-level-id": "42001f"}),
        codec("video/H264", 102, **{"packetization-mode": 1, "profile-level-id": "42E01F"}),
        codec("video/H264", 104, **{"packetization-mode": 0, "profile-level-id": "42e01f"}),
    ]
    assert match_codec(publisher, viewer) is viewer[2]
    assert match_codec(publisher, viewer[:2]) is viewer[1]
    assert match_codec(publisher, [viewer[0], viewer[3]]) is None
    assert match_codec(codec("video/VP8", 97), viewer) is viewer[0]
