"""DTLS with peers whose certificate is RSA (GStreamer webrtcbin 1.22 and the like).

aiortc offers ECDHE-ECDSA suites only; the SFU answers offers, so it is the DTLS client, and a
peer with an RSA certificate, as DTLS server, can only pick an ECDHE-RSA suite. The test peer
below holds an RSA certificate and offers ECDHE-RSA suites only, as webrtcbin 1.22 does. Against
stock aiortc it fails; with `accept_rsa_dtls_peers` (which the worker applies at start) it
connects and media flows, while the SFU keeps its own ECDSA certificate.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport, SRTPProtectionProfile
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL import SSL

from sfu.forwarding import Source
from sfu.rtc.transport import accept_rsa_dtls_peers
from tests.support.peers import LOOPBACK_ONLY, SizedVideoTrack, WhepViewer, WhipPublisher, until
from tests.support.servers import Stack

RSA_ONLY_CIPHERS = b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"


class RsaCertificate(RTCCertificate):
    """An RSA certificate whose DTLS context offers ECDHE-RSA suites only."""

    @classmethod
    def generate(cls) -> RsaCertificate:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "rsa-terminal")])
        now = datetime.datetime.now(tz=datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, cert=cert)  # type: ignore[arg-type]

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        ctx = super()._create_ssl_context(srtp_profiles)
        ctx.set_cipher_list(RSA_ONLY_CIPHERS)
        return ctx


def rsa_peer() -> RTCPeerConnection:
    """An aiortc peer that presents an RSA certificate (set before any transceiver exists)."""
    pc = RTCPeerConnection(LOOPBACK_ONLY)
    # RTCPeerConnection takes no certificate option: replace the generated ECDSA one
    pc._RTCPeerConnection__certificates = [RsaCertificate.generate()]  # type: ignore[attr-defined]
    return pc


def dtls_of(pc: RTCPeerConnection) -> RTCDtlsTransport:
    return pc.getTransceivers()[0].sender.transport


def negotiated_suite(pc: RTCPeerConnection) -> tuple[str | None, object]:
    """The cipher suite of the RSA peer's DTLS session and the public key the SFU presented."""
    ssl = dtls_of(pc)._ssl
    assert ssl is not None
    return ssl.get_cipher_name(), ssl.get_peer_certificate(as_cryptography=True).public_key()


@pytest.fixture
def rsa_patch() -> Iterator[Callable[[bool], None]]:
    """Switch the patch in this process; stock again afterwards."""
    accept_rsa_dtls_peers(False)
    yield accept_rsa_dtls_peers
    accept_rsa_dtls_peers(False)


@pytest.fixture
async def pcs() -> AsyncIterator[list[RTCPeerConnection]]:
    opened: list[RTCPeerConnection] = []
    yield opened
    for pc in opened:
        await pc.close()


async def publish_in_process(pcs: list[RTCPeerConnection]) -> tuple[RTCPeerConnection, Source]:
    """The RSA peer publishes video to an SFU-side peer answered as the worker answers."""
    client = rsa_peer()
    pcs.append(client)
    client.addTransceiver(SizedVideoTrack(160, 120), direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    server = RTCPeerConnection(LOOPBACK_ONLY)
    pcs.append(server)
    await server.setRemoteDescription(client.localDescription)
    transceiver: RTCRtpTransceiver = server.getTransceivers()[0]
    source = Source.attach(transceiver, label="rsa-terminal")
    await server.setLocalDescription(await server.createAnswer())
    assert "a=setup:active" in server.localDescription.sdp  # the SFU is the DTLS client
    await client.setRemoteDescription(server.localDescription)
    return server, source


async def test_dtls_stock_aiortc_refuses_an_rsa_peer(
    loopback: None,
    rsa_patch: Callable[[bool], None],
    pcs: list[RTCPeerConnection],
) -> None:
    server, source = await publish_in_process(pcs)
    client = pcs[0]
    await until(lambda: "failed" == client.connectionState == server.connectionState, 10)
    # ICE got through: it is the DTLS handshake that failed, on both sides
    for pc in (client, server):
        assert dtls_of(pc).transport.state == "completed"
        assert dtls_of(pc).state == "failed"
    assert source.stats().packets_received == 0
    source.close()


async def test_dtls_patched_aiortc_accepts_an_rsa_peer(
    loopback: None, rsa_patch: Callable[[bool], None], pcs: list[RTCPeerConnection]
) -> None:
    rsa_patch(True)
    server, source = await publish_in_process(pcs)
    client = pcs[0]
    await until(lambda: "connected" == client.connectionState == server.connectionState, 10)
    suite, sfu_key = negotiated_suite(client)
    assert suite is not None and suite.startswith("ECDHE-RSA-")
    assert isinstance(sfu_key, ec.EllipticCurvePublicKey)  # the SFU's own certificate
    await until(lambda: source.stats().packets_received > 20, 10)
    source.close()


async def test_dtls_rsa_terminal_publishes_and_views_through_the_worker(
    stack: Stack, peers: list
) -> None:
    chair = await stack.join("hq")
    publisher = WhipPublisher(chair["whip_url"], chair["token"], pc=rsa_peer())
    peers.append(publisher)
    published = await publisher.start()
    assert published.status_code == 201, published.text

    ward = await stack.join("p1")
    viewer = WhepViewer(ward["whep_url"], ward["token"], pc=rsa_peer())
    peers.append(viewer)
    viewed = await viewer.start()
    assert viewed.status_code == 201, viewed.text

    await until(lambda: len(viewer.frames) > 10, timeout_s=10)
    assert viewer.widths_since(0) == {160}
    for pc in (publisher.pc, viewer.pc):
        assert pc.connectionState == "connected"
        suite, sfu_key = negotiated_suite(pc)
        assert suite is not None and suite.startswith("ECDHE-RSA-")
        assert isinstance(sfu_key, ec.EllipticCurvePublicKey)
