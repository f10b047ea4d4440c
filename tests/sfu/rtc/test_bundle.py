"""A hall's offer as Chromium makes it (audio, camera, thumbnail; the thumbnail's m-line lists
no SSRC): every m-line on the BUNDLE group's transport, and packets routed by MID."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtp import RtpPacket

from sfu.rtc.ingest import route_by_mid
from sfu.rtc.sdp import bundle_transports
from tests.sfu.rtc.introspect import LOOPBACK_ONLY


class Receiver:
    """Stands for an `RTCRtpReceiver` in the router's tables."""


def _packet(ssrc: int, mid: str | None) -> RtpPacket:
    packet = RtpPacket(payload_type=96, sequence_number=1, ssrc=ssrc)
    packet.extensions.mid = mid
    return packet


def _router() -> tuple[RtpRouter, Receiver, Receiver]:
    router = RtpRouter()
    camera, thumbnail = Receiver(), Receiver()
    router.register_receiver(camera, ssrcs=[1111], payload_types=[96], mid="1")  # type: ignore[arg-type]
    router.register_receiver(thumbnail, ssrcs=[], payload_types=[96], mid="2")  # type: ignore[arg-type]
    return router, camera, thumbnail


def test_route_by_mid_finds_the_track_without_a_listed_ssrc() -> None:
    router, camera, thumbnail = _router()
    assert router.route_rtp(_packet(2222, "2")) is None  # aiortc alone drops it
    route_by_mid(router)
    route_by_mid(router)  # once is enough; twice changes nothing
    assert router.route_rtp(_packet(2222, "2")) is thumbnail
    assert router.route_rtp(_packet(2222, None)) is thumbnail  # the SSRC is learnt
    assert router.route_rtp(_packet(1111, "1")) is camera
    assert router.route_rtp(_packet(1111, "2")) is camera  # a listed SSRC wins
    assert router.route_rtp(_packet(3333, "9")) is None  # an unknown MID: aiortc's rule


async def test_bundle_transports_puts_a_second_video_on_the_groups_transport() -> None:
    client = RTCPeerConnection(LOOPBACK_ONLY)
    for kind in ("audio", "video", "video"):  # Chromium's order: audio first
        client.addTransceiver(kind, direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    offer = client.localDescription.sdp
    assert "a=group:BUNDLE 0 1 2" in offer
    server = RTCPeerConnection(LOOPBACK_ONLY)
    try:
        await server.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        audio, camera, thumbnail = server.getTransceivers()
        assert camera.receiver.transport is audio.receiver.transport
        assert thumbnail.receiver.transport is not audio.receiver.transport  # aiortc alone
        assert bundle_transports(server, offer) == 1
        assert thumbnail.receiver.transport is audio.receiver.transport
        assert thumbnail.sender.transport is audio.receiver.transport
        assert bundle_transports(server, offer) == 0
    finally:
        await client.close()
        await server.close()
