"""Codecs the SFU forwards, and what it needs to know about their RTP payloads.

The forwarding path never decodes; the only payload inspection is keyframe detection, which
reads the first bytes of a packet (RFC 7741 for VP8, RFC 6184 for H.264).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

VP8 = "video/vp8"
H264 = "video/h264"
OPUS = "audio/opus"
SUPPORTED_MIME_TYPES: frozenset[str] = frozenset({VP8, H264, OPUS})

# RTP header extensions the SFU writes on egress (RFC 8843 mid, abs-send-time, RFC 6464).
EXT_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
EXT_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
EXT_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

# H.264 NAL unit types (RFC 6184 §5.2; ITU-T H.264 table 7-1).
_H264_NAL_IDR = 5
_H264_NAL_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28
_H264_KEY_NALS = frozenset({_H264_NAL_IDR, _H264_NAL_SPS})


@dataclass(frozen=True, eq=False)
class RtpCodec:
    """One negotiated RTP payload format, as the SFU sees it."""

    mime_type: str
    clock_rate: int
    payload_type: int
    channels: int | None = None
    parameters: Mapping[str, str | int] = field(default_factory=dict)
    rtx_payload_type: int | None = None
    nack: bool = False
    """True when the peer negotiated generic NACK (RFC 4585) for this format."""

    @property
    def kind(self) -> str:
        """`audio` or `video`."""
        return self.mime_type.split("/", 1)[0].lower()

    @property
    def name(self) -> str:
        """The lower-case MIME type, e.g. `video/vp8`."""
        return self.mime_type.lower()

    def __repr__(self) -> str:
        return f"RtpCodec({self.mime_type}/{self.clock_rate}, pt={self.payload_type})"


def is_supported(codec: RtpCodec) -> bool:
    """Whether the SFU can forward this format (H.264 only with packetization-mode=1)."""
    name = codec.name
    if name not in SUPPORTED_MIME_TYPES:
        return False
    if name == H264:
        return str(codec.parameters.get("packetization-mode", "0")) == "1"
    return True


def match_codec(codec: RtpCodec, candidates: Iterable[RtpCodec]) -> RtpCodec | None:
    """The candidate a viewer decodes `codec` with, or None.

    Same MIME type and clock rate; for H.264 the same packetization mode, preferring the same
    profile-level-id (decoders accept any constrained-baseline level, so a mismatch still
    plays).
    """
    fallback: RtpCodec | None = None
    for candidate in candidates:
        if candidate.name != codec.name or candidate.clock_rate != codec.clock_rate:
            continue
        if codec.name != H264:
            return candidate
        if str(candidate.parameters.get("packetization-mode", "0")) != str(
            codec.parameters.get("packetization-mode", "0")
        ):
            continue
        if (
            str(candidate.parameters.get("profile-level-id", "")).lower()
            == str(codec.parameters.get("profile-level-id", "")).lower()
        ):
            return candidate
        if fallback is None:
            fallback = candidate
    return fallback


def vp8_is_keyframe(payload: bytes) -> bool:
    """True if this VP8 RTP payload starts a keyframe (RFC 7741 §4.2, §4.3).

    The packet must carry the start of partition 0 (S=1, PID=0) and the VP8 frame tag's P bit
    (inverse keyframe flag) must be 0.
    """
    size = len(payload)
    if size < 2:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # S bit clear, or not partition 0
        return False
    pos = 1
    if first & 0x80:  # X: extension byte follows
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: PictureID, one or two bytes (M bit)
            if pos >= size:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX byte
            pos += 1
    if pos >= size:
        return False
    return not payload[pos] & 0x01


def h264_is_keyframe(payload: bytes) -> bool:
    """True if this H.264 RTP payload starts an IDR picture or carries an SPS (RFC 6184).

    Handles single NAL unit packets, STAP-A aggregates and the first fragment of an FU-A.
    """
    size = len(payload)
    if size < 1:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in _H264_KEY_NALS:
        return True
    if nal_type == _H264_STAP_A:
        pos = 1
        while pos + 2 < size:
            nalu_size = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if nalu_size == 0 or pos + nalu_size > size:
                return False
            if payload[pos] & 0x1F in _H264_KEY_NALS:
                return True
            pos += nalu_size
        return False
    if nal_type == _H264_FU_A:
        if size < 2:
            return False
        fu_header = payload[1]
        return bool(fu_header & 0x80) and (fu_header & 0x1F) in _H264_KEY_NALS
    return False


def is_keyframe(mime_type: str, payload: bytes) -> bool:
    """True if the payload starts a point where a decoder can join this stream.

    Every audio packet is such a point; unknown video formats never are.
    """
    name = mime_type.lower()
    if name == VP8:
        return vp8_is_keyframe(payload)
    if name == H264:
        return h264_is_keyframe(payload)
    return name.startswith("audio/")
