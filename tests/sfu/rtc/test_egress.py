"""The aiortc sender internals `sfu.rtc.egress` relies on, and its hooks, asserted one by one.

If aiortc or aioice is upgraded, these tests say exactly which private name, signature or call
moved; then port `sfu/rtc/egress.py` (and only `sfu/rtc/`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtcpRtpfbPacket, RtcpSenderInfo, RtcpSrPacket, RtpPacket

from sfu.rtc.egress import ParkedTrack, RtpEgress
from sfu.rtc.ice import use_host_addresses
from sfu.rtc.ingest import RtpIngest
from tests.sfu.rtc.introspect import negotiated_pair, parameters, source_of


async def test_sender_private_state(pc: RTCPeerConnection) -> None:
    sender = pc.addTransceiver("video").sender
    state = vars(sender)
    for name in (
        "_ssrc",
        "_rtx_ssrc",
        "_RTCRtpSender__started",
        "_RTCRtpSender__packet_count",
        "_RTCRtpSender__octet_count",
    ):
        assert name in state, name
    assert inspect.iscoroutinefunction(RTCRtpSender._handle_rtcp_packet)
    assert parameters(RTCRtpSender._handle_rtcp_packet) == ["packet"]
    assert inspect.iscoroutinefunction(RTCRtpSender._send_rtcp)
    assert parameters(RTCRtpSender._send_rtcp) == ["packets"]
    # the SR/SDES/BYE loop goes through self._send_rtcp (the egress rewrites the SR there)
    run_rtcp = source_of(RTCRtpSender._run_rtcp)
    assert "await self._send_rtcp(packets)" in run_rtcp and "RtcpSrPacket(" in run_rtcp
    # the RTP loop awaits track.recv() (a parked track keeps it asleep) and sleeps without one
    assert "await self._next_encoded_frame(codec)" in source_of(RTCRtpSender._run_rtp)
    assert "await self.__track.recv()" in source_of(RTCRtpSender._next_encoded_frame)
    assert "self.__started = True" in source_of(RTCRtpSender.send)
    assert [f.name for f in dataclasses.fields(RtcpSenderInfo)] == [
        "ntp_timestamp",
        "rtp_timestamp",
        "packet_count",
        "octet_count",
    ]
    assert "sender_info" in {f.name for f in dataclasses.fields(RtcpSrPacket)}
    assert "lost" in {f.name for f in dataclasses.fields(RtcpRtpfbPacket)}


async def test_parked_track_sleeps_until_stopped() -> None:
    track = ParkedTrack("video")
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiting
    assert track.readyState == "ended"


@pytest.mark.integration
async def test_hooks_are_per_instance_and_undone(pc: RTCPeerConnection) -> None:
    use_host_addresses(["127.0.0.1"])
    client, server = await negotiated_pair()
    bystander = pc.addTransceiver("video")
    try:
        transceiver = server.getTransceivers()[0]
        ingest = RtpIngest(transceiver, lambda packet: None)
        egress = RtpEgress(transceiver)
        assert "_handle_rtp_packet" in vars(transceiver.receiver)
        assert {"_handle_rtcp_packet", "_send_rtcp"} <= set(vars(transceiver.sender))
        assert isinstance(transceiver.sender.track, ParkedTrack)
        assert transceiver.direction == "sendonly"
        assert "_handle_rtp_packet" not in vars(bystander.receiver)
        assert "_handle_rtcp_packet" not in vars(bystander.sender)
        assert egress.ready is False  # not connected
        ingest.close()
        egress.close()
        # a closed ingest discards (never falls back to decoding); the egress is undone
        discard = vars(transceiver.receiver)["_handle_rtp_packet"]
        assert await discard(RtpPacket(), arrival_time_ms=0) is None
        assert not {"_handle_rtcp_packet", "_send_rtcp"} & set(vars(transceiver.sender))
        assert egress.send(bytes(12), b"x", 1, 0, 0.0) is False and not egress.ready
        assert transceiver.sender.track is None or transceiver.sender.track.readyState == "ended"
    finally:
        await client.close()
        await server.close()
        use_host_addresses(None)
