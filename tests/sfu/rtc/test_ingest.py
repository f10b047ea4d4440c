"""The aiortc receiver internals `sfu.rtc.ingest` relies on, asserted one by one.

If aiortc or aioice is upgraded, these tests say exactly which private name, signature or call
moved; then port `sfu/rtc/ingest.py` (and only `sfu/rtc/`).
"""

from __future__ import annotations

import inspect

from aiortc import RTCPeerConnection
from aiortc.rtcrtpreceiver import NackGenerator, RTCRtpReceiver, StreamStatistics
from aiortc.rtp import RtpPacket, unwrap_rtx

from tests.sfu.rtc.introspect import parameters, source_of


async def test_receiver_private_state(pc: RTCPeerConnection) -> None:
    video = pc.addTransceiver("video").receiver
    audio = pc.addTransceiver("audio").receiver
    state = vars(video)
    assert isinstance(state["_RTCRtpReceiver__codecs"], dict)
    assert isinstance(state["_RTCRtpReceiver__rtx_ssrc"], dict)
    assert isinstance(state["_RTCRtpReceiver__remote_streams"], dict)
    assert isinstance(state["_RTCRtpReceiver__nack_generator"], NackGenerator)
    assert vars(audio)["_RTCRtpReceiver__nack_generator"] is None
    assert isinstance(state["_RTCRtpReceiver__rtcp_ssrc"], int)  # set by RTCPeerConnection
    assert state["_enabled"] is True
    assert inspect.iscoroutinefunction(RTCRtpReceiver._handle_rtp_packet)
    assert parameters(RTCRtpReceiver._handle_rtp_packet) == ["packet", "arrival_time_ms"]
    # receive() fills the codec and RTX maps in place (the ingest keeps references to them)
    receive = source_of(RTCRtpReceiver.receive)
    assert "self.__codecs[codec.payloadType] = codec" in receive
    assert "self.__rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc" in receive
    # its RTCP loop turns the per-SSRC statistics into receiver reports
    assert "self.__remote_streams.items()" in source_of(RTCRtpReceiver._run_rtcp)


def test_statistics_and_nack_helpers() -> None:
    assert parameters(StreamStatistics) == ["clockrate"]
    stats = StreamStatistics(90000)
    stats.add(RtpPacket(sequence_number=1, timestamp=0))
    stats.add(RtpPacket(sequence_number=3, timestamp=3000))
    assert (stats.packets_received, stats.packets_lost, stats._clockrate) == (2, 1, 90000)
    assert isinstance(stats.jitter, int)
    generator = NackGenerator()
    generator.add(RtpPacket(sequence_number=10))
    assert generator.add(RtpPacket(sequence_number=13)) is True
    assert generator.missing == {11, 12}
    assert parameters(unwrap_rtx) == ["rtx", "payload_type", "ssrc"]
    rtx = RtpPacket(payload_type=98, sequence_number=5, ssrc=2, payload=b"\x00\x0bXY")
    original = unwrap_rtx(rtx, payload_type=97, ssrc=1)
    assert (original.sequence_number, original.ssrc, original.payload) == (11, 1, b"XY")
