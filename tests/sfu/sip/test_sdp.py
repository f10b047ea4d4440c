"""SDP of SIP calls: what room systems offer, what the worker answers and offers, and hostile
SDP refused with a clear reason."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.sip.sdp import (
    LocalPorts,
    SdpError,
    accept_answer,
    answer_offer,
    answer_video,
    parse_sdp,
    render_answer,
    render_offer,
)

KEY = base64.b64encode(bytes(range(30))).decode()

# shaped after what a Polycom Group series offers (audio and H.264 video, RTP/AVP)
POLYCOM_OFFER = "\r\n".join(
    [
        "v=0",
        "o=GroupSeries 1 1 IN IP4 192.0.2.10",
        "s=-",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "m=audio 49170 RTP/AVP 9 0 8 101",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=sendrecv",
        "m=video 49172 RTP/AVP 109 96",
        "a=rtpmap:109 H264/90000",
        "a=fmtp:109 profile-level-id=42e01f;packetization-mode=1",
        "a=rtpmap:96 H263-1998/90000",
        "m=application 49174 UDP/BFCP *",
        "",
    ]
)


def _answer_lines(answer: str) -> list[str]:
    return answer.strip().split("\r\n")


def test_sdp_parse_reads_streams_codecs_and_addresses() -> None:
    parsed = parse_sdp(POLYCOM_OFFER)
    audio = parsed.first("audio")
    assert audio is not None and audio.port == 49170 and audio.address is None
    assert parsed.address == "192.0.2.10"
    assert [c.name for c in audio.codecs] == ["G722", "PCMU", "PCMA", "telephone-event"]
    video = parsed.first("video")
    assert video is not None and video.codecs[0].fmtp["packetization-mode"] == "1"
    assert [m.kind for m in parsed.media] == ["audio", "video", "application"]


def test_sdp_answer_prefers_g722_keeps_dtmf_and_refuses_video_without_a_path() -> None:
    plan = answer_offer(POLYCOM_OFFER)
    assert plan.audio is not None
    assert plan.audio.codec.name == "G722" and plan.audio.telephone_event is not None
    assert plan.audio.remote == ("192.0.2.10", 49170)
    assert plan.audio.remote_rtcp == ("192.0.2.10", 49171)  # RTCP on port + 1
    assert plan.video is None
    answer = render_answer(plan, address="198.51.100.7", audio=LocalPorts(30000, 30001))
    lines = _answer_lines(answer)
    media = [line for line in lines if line.startswith("m=")]
    # every offered stream answered in order; the refused ones with port 0 (RFC 3264 §6)
    assert media == [
        "m=audio 30000 RTP/AVP 9 101",
        "m=video 0 RTP/AVP 109",
        "m=application 0 UDP/BFCP *",
    ]
    assert "c=IN IP4 198.51.100.7" in lines and "a=rtcp:30001" in lines
    assert "a=rtpmap:101 telephone-event/8000" in lines and "a=sendrecv" in lines
    parse_sdp(answer)  # the answer reads back


def test_sdp_answer_prefers_opus_and_muxes_rtcp_when_offered() -> None:
    offer = POLYCOM_OFFER.replace("RTP/AVP 9 0 8 101", "RTP/AVP 0 111 101").replace(
        "a=sendrecv", "a=rtpmap:111 opus/48000/2\r\na=rtcp-mux\r\na=sendonly"
    )
    plan = answer_offer(offer)
    assert plan.audio is not None and plan.audio.codec.name == "opus"
    assert plan.audio.rtcp_mux and plan.audio.direction == "recvonly"
    lines = _answer_lines(render_answer(plan, address="10.0.0.1", audio=LocalPorts(30002, None)))
    assert "a=rtcp-mux" in lines and "a=recvonly" in lines
    assert "a=rtpmap:111 opus/48000/2" in lines


def test_sdp_answer_video_accepts_forwardable_h264_with_its_profile() -> None:
    video = parse_sdp(POLYCOM_OFFER).first("video")
    assert video is not None
    plan = answer_video(video, "192.0.2.10", can_forward=True)
    assert plan is not None and plan.codec.payload_type == 109
    assert dict(plan.codec.fmtp) == {"packetization-mode": "1", "profile-level-id": "42e01f"}
    assert answer_video(video, "192.0.2.10", can_forward=False) is None


@pytest.mark.parametrize("suite", ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"])
def test_sdp_answer_srtp_gives_our_own_key(suite: str) -> None:
    offer = POLYCOM_OFFER.replace("RTP/AVP 9 0 8 101", "RTP/SAVP 0 101").replace(
        "a=sendrecv", f"a=crypto:3 {suite} inline:{KEY}|2^31\r\na=sendrecv"
    )
    plan = answer_offer(offer)
    assert plan.audio is not None and plan.audio.srtp_suite == suite
    assert plan.audio.remote_key == bytes(range(30)) and plan.audio.crypto_tag == 3
    answer = render_answer(plan, address="10.0.0.1", audio=LocalPorts(30004, 30005))
    crypto = parse_sdp(answer).media[0].cryptos[0]
    assert answer.count("m=audio 30004 RTP/SAVP 0 101") == 1
    assert crypto.tag == 3 and crypto.suite == suite and crypto.key_salt == plan.audio.local_key
    assert crypto.key_salt != plan.audio.remote_key


@pytest.mark.parametrize(
    ("sdp", "reason"),
    [
        ("", "v=0"),
        ("v=0\r\nc=IN IP4 192.0.2.1\r\n", "no media"),
        ("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", "connection address"),
        ("v=0\r\nc=IN IP4 example.org\r\nm=audio 4000 RTP/AVP 0\r\n", "not an IP address"),
        ("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 99999 RTP/AVP 0\r\n", "not a port"),
        ("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 18\r\n", "no common audio codec"),
        ("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/SAVP 0\r\n", "a=crypto"),
        ("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:x\r\n", "rtpmap"),
        ("v=0\r\nc=IN IP4 192.0.2.1\r\nm=video 4000 RTP/AVP 96\r\n", "no audio"),
        ("v=0\r\n" + "a=x\r\n" * 400, "lines"),
        ("v=0\r\nc=IN IP6 ::1\r\nm=audio 4000 RTP/AVP 0\r\n", "IPv4"),
    ],
)
def test_sdp_refuses_what_it_cannot_answer_with_a_reason(sdp: str, reason: str) -> None:
    with pytest.raises(SdpError, match=reason):
        answer_offer(sdp)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_sdp_hostile_text_gives_only_the_clear_error(text: str) -> None:
    try:
        answer_offer(text)
    except SdpError as exc:
        assert str(exc)


_LINE = st.one_of(
    st.sampled_from(
        [
            "c=IN IP4 192.0.2.1",
            "m=audio 4000 RTP/AVP 0 8 101",
            "m=audio 0 RTP/AVP 0",
            "m=video 4002 RTP/AVP 96",
            "m=audio 4000 RTP/SAVP 0",
            "a=rtpmap:101 telephone-event/8000",
            "a=rtcp-mux",
            "a=inactive",
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
        ]
    ),
    st.builds(
        lambda kind, text: f"{kind}={text}",
        st.sampled_from("acmotbsv"),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=60),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=30))
def test_sdp_hostile_lines_give_only_the_clear_error(lines: list[str]) -> None:
    text = "\r\n".join(["v=0", *lines]) + "\r\n"
    try:
        plan = answer_offer(text)
    except SdpError as exc:
        assert str(exc)
        return
    assert plan.audio is not None
    render_answer(plan, address="10.0.0.1", audio=LocalPorts(30000, None))


def test_sdp_offer_and_answer_of_a_call_out() -> None:
    offer = render_offer(address="10.0.0.1", audio=LocalPorts(30010, 30011))
    parsed = parse_sdp(offer.sdp)
    audio = parsed.media[0]
    assert [c.name for c in audio.codecs] == ["opus", "G722", "PCMU", "PCMA", "telephone-event"]
    assert audio.rtcp_port == 30011 and len(parsed.media) == 1  # no video path yet
    with_video = parse_sdp(
        render_offer(
            address="10.0.0.1", audio=LocalPorts(30010, 30011), video=LocalPorts(30012, 30013)
        ).sdp
    )
    h264 = with_video.media[1].codecs[0]
    assert h264.fmtp == {"packetization-mode": "1", "profile-level-id": "42e01f"}
    answer = (
        "v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n"
        "m=audio 5004 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    plan = accept_answer(offer, answer, can_forward_video=False)
    assert plan.audio is not None and plan.audio.codec.name == "PCMU"
    assert plan.audio.remote == ("192.0.2.20", 5004)
    with pytest.raises(SdpError, match="not the one offered"):
        accept_answer(offer, answer.replace("RTP/AVP", "RTP/SAVP"), can_forward_video=False)
    with pytest.raises(SdpError, match="no audio format"):
        accept_answer(offer, answer.replace("AVP 0 101", "AVP 18"), can_forward_video=False)
