"""RTP payload → codec frame bytes for the recorder (`sfu.recording`), with aiortc's parsers.

`aiortc.codecs.vpx.vp8_depayload` strips the VP8 payload descriptor (RFC 7741 §4.2);
`aiortc.codecs.h264.h264_depayload` turns single NAL units, STAP-A and FU-A fragments into an
Annex B byte stream (RFC 6184). Both are module functions of aiortc 1.16.0, not public API.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc.codecs.h264 import h264_depayload
from aiortc.codecs.vpx import vp8_depayload

from sfu.codecs import H264, OPUS, VP8


def _identity(payload: bytes) -> bytes:
    return payload


def depayloader(mime_type: str) -> Callable[[bytes], bytes]:
    """The function that turns one RTP payload of `mime_type` into its part of a frame."""
    name = mime_type.lower()
    if name == VP8:
        return vp8_depayload
    if name == H264:
        return h264_depayload
    if name == OPUS:
        return _identity
    raise ValueError(f"no depayloader for {mime_type}")
