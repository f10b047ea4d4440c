"""The aiortc transceiver internals `sfu.rtc.sdp` relies on, asserted one by one.

If aiortc or aioice is upgraded, these tests say exactly which private name, signature or call
moved; then port `sfu/rtc/sdp.py` (and only `sfu/rtc/`).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.codecs import EXT_ABS_SEND_TIME, EXT_MID
from sfu.rtc.ice import use_host_addresses
from sfu.rtc.sdp import negotiated_rtp, restrict_codecs
from tests.sfu.rtc.introspect import negotiated_pair, source_of


async def test_offer_direction_and_codec_list(pc: RTCPeerConnection) -> None:
    transceiver = pc.addTransceiver("video")
    assert "_offerDirection" in vars(transceiver)
    # setRemoteDescription stores the offer's direction reversed, createAnswer combines it
    set_remote = source_of(RTCPeerConnection.setRemoteDescription)
    assert "transceiver._offerDirection = direction" in set_remote
    assert "transceiver._codecs = common" in set_remote
    assert "transceiver.direction, transceiver._offerDirection" in source_of(
        RTCPeerConnection.createAnswer
    )


@pytest.mark.integration
async def test_negotiated_rtp_reads_payload_types_and_extensions(
    pc: RTCPeerConnection,
) -> None:
    use_host_addresses(["127.0.0.1"])
    client, server = await negotiated_pair()
    try:
        with pytest.raises(ValueError):
            negotiated_rtp(pc.addTransceiver("video"))  # nothing negotiated yet
        params = negotiated_rtp(server.getTransceivers()[0])
        vp8 = params.codecs[0]
        assert (params.kind, params.mid) == ("video", "0")
        assert (vp8.name, vp8.payload_type, vp8.rtx_payload_type, vp8.nack) == (
            "video/vp8",
            97,
            98,
            True,
        )
        assert all(not c.name.endswith("/rtx") for c in params.codecs)
        assert params.header_extensions[EXT_MID] == 1
        assert params.header_extensions[EXT_ABS_SEND_TIME] == 3
        assert params.codec_for(97) is vp8 and params.codec_for(98) is None
    finally:
        await client.close()
        await server.close()
        use_host_addresses(None)


def test_restrict_codecs_orders_by_preference_and_keeps_forwardable_h264() -> None:
    """H.264 ahead of VP8 when asked so; packetization mode 0 is dropped, 42e01f comes first,
    and each kept format keeps its RTX."""

    def codec(pt: int, mime: str, **parameters: object) -> RTCRtpCodecParameters:
        return RTCRtpCodecParameters(
            mimeType=mime, clockRate=90000, payloadType=pt, parameters=dict(parameters)
        )

    offered = [
        codec(96, "video/VP8"),
        codec(97, "video/rtx", apt=96),
        codec(102, "video/H264", **{"packetization-mode": 0, "profile-level-id": "42e01f"}),
        codec(104, "video/H264", **{"packetization-mode": 1, "profile-level-id": "42001f"}),
        codec(106, "video/H264", **{"packetization-mode": 1, "profile-level-id": "42e01f"}),
        codec(107, "video/rtx", apt=106),
        codec(108, "video/VP9"),
    ]
    transceiver = SimpleNamespace(_codecs=list(offered))
    assert restrict_codecs(transceiver, ["video/H264", "video/VP8"])  # type: ignore[arg-type]
    assert [c.payloadType for c in transceiver._codecs] == [106, 104, 96, 97, 107]

    transceiver = SimpleNamespace(_codecs=list(offered))
    assert restrict_codecs(transceiver, ["video/VP8"])  # type: ignore[arg-type]
    assert [c.payloadType for c in transceiver._codecs] == [96, 97]

    only_mode_0 = SimpleNamespace(_codecs=[offered[2]])
    assert not restrict_codecs(only_mode_0, ["video/H264"])  # type: ignore[arg-type]
