"""A leg's video path: `SipVideo` (H.264 forwarded without decoding; a source in another codec
transcoded for this leg, `sfu.sip.video_transcode`) on the leg's own video sockets, its source
and slot carried by the leg's peers in the room (one site, one pair of peers, as a hall's WHIP
and WHEP sessions)."""

from __future__ import annotations

from aiortc.rtp import RtcpPacket, RtpPacket

from sfu.room import Room
from sfu.sip.h264 import WEBRTC_PROFILE_LEVEL_ID
from sfu.sip.leg import SipLeg
from sfu.sip.sdp import VideoPlan
from sfu.sip.transport import RtpTransport
from sfu.sip.video import SipVideo


class LegVideo:
    """`sfu.sip.leg.VideoPath` for a leg whose H.264 was accepted."""

    def __init__(self, leg: SipLeg, plan: VideoPlan, transport: RtpTransport) -> None:
        self.leg = leg
        codec = plan.codec
        self.video = SipVideo(
            send_rtp=lambda data: transport.send_rtp(data, int.from_bytes(data[4:8], "big")),
            send_rtcp=transport.send_rtcp,
            payload_type=codec.payload_type,
            profile_level_id=codec.fmtp.get("profile-level-id", WEBRTC_PROFILE_LEVEL_ID),
            sprop_parameter_sets=codec.fmtp.get("sprop-parameter-sets"),
            ssrc=transport.ssrc,  # the SSRC its sender reports describe
            label=f"SIP {leg.id[:6]}",
        )

    def attach(self, room: Room, site_id: int) -> None:
        member = self.leg.member
        if member is None:
            return
        room.prefer_h264()
        if "audio" in member.ingest.sources:  # it publishes (a viewer grant only listens)
            member.ingest.sources["video"] = self.video.source
        member.egress.video_slots = [self.video.slot]

    def on_rtp(self, packet: bytes) -> None:
        try:
            parsed = RtpPacket.parse(packet)
        except ValueError:
            return
        self.video.on_rtp(parsed)

    def on_rtcp(self, packet: bytes) -> None:
        try:
            parsed = RtcpPacket.parse(packet)
        except ValueError:
            return
        self.video.on_rtcp(parsed)

    def close(self) -> None:
        self.video.close()
