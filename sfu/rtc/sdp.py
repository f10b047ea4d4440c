"""What an offer/answer negotiated, read from aiortc's transceivers, and the helpers that
shape an answer.

- `negotiated_rtp` reads what a transceiver negotiated (payload types, RTX, header extensions).
- `offered_direction` and `restrict_codecs` help answer an offer: every publisher and viewer
  of a room must share one format, since packets are forwarded as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.codecs import H264, RtpCodec


@dataclass(frozen=True, eq=False)
class NegotiatedRtp:
    """What one transceiver negotiated: its formats, header extensions and MID."""

    kind: str
    mid: str | None
    codecs: tuple[RtpCodec, ...]
    """Media formats (RTX excluded), in the negotiated order of preference."""
    header_extensions: Mapping[str, int] = field(default_factory=dict)
    """Header extension URI → negotiated id."""

    def codec_for(self, payload_type: int) -> RtpCodec | None:
        """The media format with this payload type, if any."""
        for codec in self.codecs:
            if codec.payload_type == payload_type:
                return codec
        return None


def is_rtx(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower().endswith("/rtx")


def _rtp_codecs(codecs: Sequence[RTCRtpCodecParameters]) -> tuple[RtpCodec, ...]:
    rtx_for: dict[int, int] = {}
    for codec in codecs:
        apt = codec.parameters.get("apt")
        if is_rtx(codec) and isinstance(apt, int):
            rtx_for[apt] = codec.payloadType
    return tuple(
        RtpCodec(
            mime_type=codec.mimeType,
            clock_rate=codec.clockRate,
            payload_type=codec.payloadType,
            channels=codec.channels,
            parameters=dict(codec.parameters),
            rtx_payload_type=rtx_for.get(codec.payloadType),
            nack=any(fb.type == "nack" and not fb.parameter for fb in codec.rtcpFeedback),
        )
        for codec in codecs
        if not is_rtx(codec)
    )


def negotiated_rtp(transceiver: RTCRtpTransceiver) -> NegotiatedRtp:
    """Read the payload types, RTX payload types and header extension ids of a transceiver.

    Valid once the remote description has been applied (aiortc fills these then); raises
    ValueError before.
    """
    # touches RTCRtpTransceiver._codecs / ._headerExtensions, which RTCPeerConnection fills on
    # setRemoteDescription and which aiortc exposes nowhere else before the sender starts
    codecs = transceiver._codecs
    extensions = transceiver._headerExtensions
    if not codecs:
        raise ValueError("the transceiver has not negotiated yet (apply the remote description)")
    return NegotiatedRtp(
        kind=transceiver.kind,
        mid=transceiver.mid,
        codecs=_rtp_codecs(codecs),
        header_extensions={ext.uri: ext.id for ext in extensions},
    )


# --------------------------------------------------------------------------------------------
# answering offers


def offered_direction(transceiver: RTCRtpTransceiver) -> str:
    """The direction the remote offer gave this m-line, as the offerer wrote it."""
    # touches RTCRtpTransceiver._offerDirection, set by setRemoteDescription (already reversed
    # to the answerer's point of view) and not exposed otherwise
    local = transceiver._offerDirection or "inactive"
    return {"sendonly": "recvonly", "recvonly": "sendonly"}.get(local, local)


def _preference(codec: RTCRtpCodecParameters, wanted: list[str]) -> tuple[int, int]:
    # the order of `wanted`, then, for H.264, WebRTC's own constrained baseline first
    plid = str(codec.parameters.get("profile-level-id", "")).lower()
    return wanted.index(codec.mimeType.lower()), 0 if plid in ("", "42e01f") else 1


def _forwardable(codec: RTCRtpCodecParameters) -> bool:
    # H.264 only in packetization mode 1 (non-interleaved), the one the SFU forwards
    if codec.mimeType.lower() != H264:
        return True
    return str(codec.parameters.get("packetization-mode", "0")) == "1"


def restrict_codecs(transceiver: RTCRtpTransceiver, mime_types: Sequence[str]) -> bool:
    """Keep only `mime_types` (and their RTX) among the codecs negotiated from an offer, in
    the order of `mime_types` (the answer's order of preference, which the peer sends with).

    Every publisher and viewer of a room must share one format, since packets are forwarded
    as they are. H.264 is kept only in packetization mode 1, 42e01f before other profiles.
    Call it between setRemoteDescription and createAnswer; returns False when the offer has
    none of them.
    """
    wanted = [m.lower() for m in mime_types]
    # touches RTCRtpTransceiver._codecs, which createAnswer turns into the answer's formats
    codecs = transceiver._codecs
    kept = [c for c in codecs if c.mimeType.lower() in wanted and _forwardable(c)]
    if not kept:
        return False
    kept.sort(key=lambda c: _preference(c, wanted))  # stable: the offer's order otherwise
    kept_pts = {c.payloadType for c in kept}
    rtx = [c for c in codecs if is_rtx(c) and c.parameters.get("apt") in kept_pts]
    transceiver._codecs = kept + rtx
    return True


def bundle_transports(pc: RTCPeerConnection, offer: str) -> int:
    """Put every m-line of the offer's BUNDLE group on the group's transport, as RFC 8843
    says; returns how many transceivers were moved.

    Call it right after `setRemoteDescription(offer)`. aiortc 1.16 (default "balanced"
    policy) gives a new transceiver the transport of the first one of its kind and marks it
    bundled; when that first one is moved onto the group's transport (the audio's, in
    Chromium's offer audio, camera, thumbnail), the later one stays behind on a transport
    that was just stopped, and its packets, which arrive on the group's, reach nobody.
    """
    group = next(
        (
            line.split(":", 1)[1].split()[1:]
            for line in offer.splitlines()
            if line.startswith("a=group:BUNDLE ")
        ),
        [],
    )
    if len(group) < 2:
        return 0
    transceivers = pc.getTransceivers()
    primary = next((t.receiver.transport for t in transceivers if t.mid == group[0]), None)
    if primary is None:
        return 0
    moved = 0
    for transceiver in transceivers:
        if transceiver.mid in group and transceiver.receiver.transport is not primary:
            # touches RTCRtpReceiver/RTCRtpSender.setTransport, as aiortc's own bundling does
            transceiver.receiver.setTransport(primary)
            transceiver.sender.setTransport(primary)
            moved += 1
    return moved
