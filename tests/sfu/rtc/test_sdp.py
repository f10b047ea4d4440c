"""The aiortc transceiver internals `sfu.rtc.sdp` relies on, asserted one by one.

If aiortc or aioice is upgraded, these tests say exactly which private name, signature or call
moved; then port `sfu/rtc/sdp.py` (and only `sfu/rtc/`).
"""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection

from sfu.codecs import EXT_ABS_SEND_TIME, EXT_MID
from sfu.rtc.ice import use_host_addresses
from sfu.rtc.sdp import negotiated_rtp
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
