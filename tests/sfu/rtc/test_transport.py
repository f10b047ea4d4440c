"""The aiortc DTLS and pylibsrtp internals `sfu.rtc.transport` relies on, asserted one by one.

If aiortc or aioice is upgraded, these tests say exactly which private name, signature or call
moved; then port `sfu/rtc/transport.py` (and only `sfu/rtc/`).
"""

from __future__ import annotations

import aioice
import aioice.ice
import aioice.stun
import pylibsrtp
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport, State

import sfu.rtc.transport as transport
from tests.sfu.rtc.introspect import parameters, source_of


async def test_transceiver_and_dtls_state(pc: RTCPeerConnection) -> None:
    transceiver = pc.addTransceiver("video")
    assert transceiver._codecs == [] and transceiver._headerExtensions == []
    dtls = transceiver.sender.transport
    assert isinstance(dtls, RTCDtlsTransport)
    assert dtls._state is State.NEW and State.CONNECTED.name == "CONNECTED"
    assert "_tx_srtp" in vars(dtls)
    assert 'self.emit("statechange")' in source_of(RTCDtlsTransport._set_state)
    # routed packets reach these two methods, looked up on the instance
    assert "await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)" in (
        source_of(RTCDtlsTransport._handle_rtp_data)
    )
    assert "await recipient._handle_rtcp_packet(packet)" in source_of(
        RTCDtlsTransport._handle_rtcp_data
    )
    # retransmission without RTX re-protects a sequence number: libsrtp must allow it
    assert "tx_policy.allow_repeat_tx = True" in source_of(RTCDtlsTransport._setup_srtp)
    assert callable(pylibsrtp.Session.protect) and callable(pylibsrtp.Session.protect_rtcp)
    connection = dtls.transport._connection
    assert isinstance(connection, aioice.Connection)
    assert connection._nominated == {}
    assert parameters(aioice.Connection.data_received) == ["data", "component"]


def test_protector_matches_pylibsrtp() -> None:
    """The buffer-reusing SRTP path gives the same bytes as `Session.protect`."""
    from pylibsrtp import Policy, Session
    from pylibsrtp._binding import lib

    assert callable(lib.srtp_protect) and isinstance(lib.srtp_err_status_ok, int)
    key = bytes(range(28))

    def session() -> Session:
        policy = Policy(
            key=key,
            ssrc_type=Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
        )
        policy.allow_repeat_tx = True
        return Session(policy)

    reference, fast = session(), session()
    assert "_srtp" in vars(fast)
    protect = transport._RtpProtector(fast)
    for seq in (1, 2, 2, 3):  # a repeat, as a retransmission without RTX
        header = bytes((0x80, 97)) + seq.to_bytes(2, "big") + bytes(8)
        payload = bytes(range(200)) * 5
        assert protect(header, payload) == reference.protect(header + payload)
    assert protect(bytes(12), bytes(3000)) is None  # larger than any datagram


def test_dtls_context_and_rsa_suites() -> None:
    from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCCertificate
    from cryptography.hazmat.primitives.asymmetric import ec
    from OpenSSL import SSL

    # RTCDtlsTransport.start builds each context from its certificate through this method,
    # which hard-codes aiortc's ECDSA-only cipher list; a peer connection's certificate is ECDSA
    assert parameters(RTCCertificate._create_ssl_context) == ["srtp_profiles"]
    assert "self.__local_certificate._create_ssl_context(" in source_of(RTCDtlsTransport.start)
    create = source_of(transport._stock_create_ssl_context)
    assert "ctx.set_cipher_list(" in create and "ctx.set_tlsext_use_srtp(" in create
    assert f'b"{transport.AIORTC_DTLS_CIPHERS}"' in create
    assert "RTCCertificate.generateCertificate()" in source_of(RTCPeerConnection.__init__)
    assert "ec.generate_private_key(" in source_of(RTCCertificate.generateCertificate)

    certificate = RTCCertificate.generateCertificate()

    def offered() -> list[str]:
        ctx = RTCCertificate._create_ssl_context(certificate, SRTP_PROFILES)
        return [n for n in SSL.Connection(ctx).get_cipher_list() if not n.startswith("TLS_")]

    stock = transport.AIORTC_DTLS_CIPHERS.split(":")
    rsa = transport.RSA_DTLS_CIPHERS.split(":")
    try:
        assert offered() == stock
        transport.accept_rsa_dtls_peers()
        transport.accept_rsa_dtls_peers()  # idempotent
        assert offered() == stock + rsa
        assert isinstance(certificate._key, ec.EllipticCurvePrivateKey)  # own key unchanged
    finally:
        transport.accept_rsa_dtls_peers(False)
    assert RTCCertificate._create_ssl_context is transport._stock_create_ssl_context
    assert offered() == stock
