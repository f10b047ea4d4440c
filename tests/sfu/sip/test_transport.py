"""The RTP side of a SIP stream on loopback: SDES-SRTP both ways, symmetric RTP, who is heard,
and receiver reports carrying the loss each side saw."""

from __future__ import annotations

import secrets
import struct

import pytest

from sfu.sip.transport import RtpTransport, Srtp
from tests.support.polling import until

SUITES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"]


class End:
    """One side: a transport and what it received."""

    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []
        self.transport = RtpTransport(
            on_rtp=lambda data, _now: self.rtp.append(data),
            on_rtcp=self.rtcp.append,
            clock_rate=8000,
        )

    def packet(self, seq: int) -> tuple[bytes, int]:
        header = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, self.transport.ssrc)
        return header + bytes(160), seq * 160


async def _pair(host_b: str = "127.0.0.1", *, mux: bool = False) -> tuple[End, End]:
    a, b = End(), End()
    await a.transport.bind("127.0.0.1", None, mux=mux)
    await b.transport.bind(host_b, None, mux=mux)
    return a, b


def _rtcp_addr(end: End, host: str) -> tuple[str, int]:
    return (host, end.transport.local_rtcp_port or end.transport.local_port)


@pytest.mark.parametrize("suite", SUITES)
async def test_transport_srtp_both_ways_and_reports(suite: str) -> None:
    a, b = await _pair()
    key_a, key_b = secrets.token_bytes(30), secrets.token_bytes(30)
    try:
        a.transport.connect(
            ("127.0.0.1", b.transport.local_port),
            _rtcp_addr(b, "127.0.0.1"),
            Srtp(suite, key_a, key_b),
        )
        b.transport.connect(
            ("127.0.0.1", a.transport.local_port),
            _rtcp_addr(a, "127.0.0.1"),
            Srtp(suite, key_b, key_a),
        )
        for seq in [*range(1, 5), *range(6, 11)]:  # number 5 is lost on the way
            b.transport.send_rtp(*b.packet(seq))
            a.transport.send_rtp(*a.packet(seq))
        await until(lambda: len(a.rtp) == 9 and len(b.rtp) == 9, timeout_s=5)
        assert a.rtp[0][12:] == bytes(160)  # decrypted, tag removed
        assert a.transport.stats.lost == 1 and b.transport.stats.lost == 1
        a.transport.send_report()
        await until(lambda: b.rtcp, timeout_s=5)
        report = b.transport.remote_report
        assert report.packets_lost == 1 and report.fraction_lost == pytest.approx(1 / 10, abs=0.01)
    finally:
        a.transport.close()
        b.transport.close()


async def test_transport_wrong_key_is_dropped() -> None:
    a, b = await _pair()
    try:
        a.transport.connect(
            ("127.0.0.1", b.transport.local_port), None, Srtp(SUITES[0], bytes(30), bytes(30))
        )
        b.transport.connect(
            ("127.0.0.1", a.transport.local_port),
            None,
            Srtp(SUITES[0], bytes(range(30)), bytes(30)),
        )
        b.transport.send_rtp(*b.packet(1))
        await until(lambda: a.transport.dropped == 1, timeout_s=5)
        assert a.rtp == []
    finally:
        a.transport.close()
        b.transport.close()


async def test_transport_hears_only_the_sdp_host_and_latches_its_port() -> None:
    a, b = await _pair("127.0.0.2", mux=True)
    stranger = End()
    await stranger.transport.bind("127.0.0.1", None, mux=True)
    try:
        # the SDP named port 9 of b's host; b sends from another port (a NAT): latched
        a.transport.connect(("127.0.0.2", 9), ("127.0.0.2", 9), None)
        b.transport.connect(("127.0.0.1", a.transport.local_port), None, None)
        stranger.transport.connect(("127.0.0.1", a.transport.local_port), None, None)
        stranger.transport.send_rtp(*stranger.packet(1))
        b.transport.send_rtp(*b.packet(1))
        await until(lambda: len(a.rtp) == 1 and a.transport.dropped == 1, timeout_s=5)
        assert a.transport.remote == ("127.0.0.2", b.transport.local_port)
        a.transport.send_rtp(*a.packet(1))
        await until(lambda: len(b.rtp) == 1, timeout_s=5)
    finally:
        for end in (a, b, stranger):
            end.transport.close()


async def test_transport_binds_an_even_pair_in_the_range() -> None:
    end = End()
    await end.transport.bind("127.0.0.1", (41000, 41100), mux=False)
    try:
        port = end.transport.local_port
        assert 41000 <= port <= 41100 and port % 2 == 0
        assert end.transport.local_rtcp_port == port + 1
    finally:
        end.transport.close()
