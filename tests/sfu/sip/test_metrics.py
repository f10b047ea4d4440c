"""The SIP legs' metrics on a real worker: a room system's RTCP receiver reports (sent by a
real RTP transport over loopback) show as loss, its codecs and the call's end as counts."""

from __future__ import annotations

import struct

from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from confbridge_kernel.sip_legs import SipLegOpen
from sfu.sip.metrics import end_reason
from sfu.sip.sdp import parse_sdp
from sfu.sip.transport import RtpTransport
from sfu.worker import Worker
from tests.support.polling import until


def scrape(worker: Worker) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the worker's /metrics text, by name and sorted labels."""
    text = generate_latest(worker.metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def offer(audio_port: int, video_port: int) -> str:
    return (
        "v=0\r\no=polycom 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {audio_port} RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        "a=rtcp-mux\r\n"
        f"m=video {video_port} RTP/AVP 109\r\na=rtpmap:109 H264/90000\r\n"
        "a=fmtp:109 profile-level-id=42801f;packetization-mode=1\r\n"
    )


async def test_metrics_receiver_reports_of_a_room_system_show_its_loss(worker: Worker) -> None:
    """The far end reports a quarter of our audio lost (40 packets): the loss histogram and
    the lost packets count it; the call counts as open, then as ended by the far end."""
    far = RtpTransport(on_rtp=lambda _d, _n: None, on_rtcp=lambda _d: None, clock_rate=8000)
    await far.bind("127.0.0.1", None, mux=True)
    try:
        opened = await worker.sip_legs.open(
            SipLegOpen(
                call_id="c1@polycom",
                remote_uri="sip:phonghop@127.0.0.1",
                offer=offer(far.local_port, far.local_port + 2),
                lobby=True,
            )
        )
        answer = parse_sdp(opened.sdp).media[0]
        assert answer.rtcp_mux
        far.connect(("127.0.0.1", answer.port), ("127.0.0.1", answer.port), None)
        leg = worker.sip_legs.find(opened.leg_id)
        before = scrape(worker)
        assert before[("confbridge_sfu_sip_legs", (("direction", "in"),))] == 1
        assert before[("confbridge_sfu_sip_legs_opened_total", (("direction", "in"),))] == 1
        audio = ("confbridge_sfu_sip_leg_codecs", (("codec", "PCMA/8000"), ("media", "audio")))
        video = ("confbridge_sfu_sip_leg_codecs", (("codec", "H264/90000"), ("media", "video")))
        assert before[audio] == 1 and before[video] == 1
        count = ("confbridge_sfu_sip_loss_ratio_count", (("media", "audio"),))
        assert count not in before  # no report yet
        # the far end's first packet latches the leg's RTP; then its receiver report
        far.send_rtp(struct.pack("!BBHII", 0x80, 8, 1, 160, far.ssrc) + bytes(160), 160)
        report = RtcpReceiverInfo(
            ssrc=leg.transport.ssrc,
            fraction_lost=64,
            packets_lost=40,
            highest_sequence=160,
            jitter=80,
            lsr=0,
            dlsr=0,
        )
        far.send_rtcp(bytes(RtcpRrPacket(ssrc=far.ssrc, reports=[report])))
        await until(lambda: scrape(worker).get(count) == 1, timeout_s=5)
        after = scrape(worker)
        assert after[("confbridge_sfu_sip_loss_ratio_sum", (("media", "audio"),))] == 0.25
        bucket = ("confbridge_sfu_sip_loss_ratio_bucket", (("le", "0.2"), ("media", "audio")))
        assert after[bucket] == 0  # 25 % is above the 20 % bucket
        lost = ("confbridge_sfu_sip_packets_lost_total", (("media", "audio"),))
        assert after[lost] == 40
        info = worker.sip_legs.list_().legs[0]
        assert info.loss_sent_ratio == 0.25 and info.video_codec == "H264/90000"
        worker.sip_legs.close_leg(opened.leg_id, "the room system hung up")
        ended = scrape(worker)
        reason = (("direction", "in"), ("reason", "far_end_hung_up"))
        assert ended[("confbridge_sfu_sip_legs_ended_total", reason)] == 1
        assert ended[("confbridge_sfu_sip_legs", (("direction", "in"),))] == 0
        assert ended[lost] == 40  # what a closed call counted stays counted
        assert audio not in ended
    finally:
        far.close()


def test_metrics_end_reasons_are_a_bounded_set() -> None:
    assert end_reason("could not join the meeting: the room is full") == "admission_failed"
    assert end_reason("Wrong PIN") == "wrong_pin"
    assert end_reason("no media") == "no_media"
    assert end_reason("something nobody planned for 12345") == "other"
