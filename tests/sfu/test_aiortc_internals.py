"""The aiortc/aioice internals `sfu.aiortc_internals` relies on, asserted one by one.

If aiortc or aioice is upgraded, these tests say exactly which private name, signature or call
moved; then port `sfu/aiortc_internals.py` (and only it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import inspect
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aioice
import aioice.ice
import aioice.stun
import aiortc
import pylibsrtp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpreceiver import NackGenerator, RTCRtpReceiver, StreamStatistics
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtcpRtpfbPacket, RtcpSenderInfo, RtcpSrPacket, RtpPacket, unwrap_rtx

import sfu.aiortc_internals as internals
from sfu.aiortc_internals import (
    AIORTC_VERSION,
    NoMediaPort,
    ParkedTrack,
    RtpEgress,
    RtpIngest,
    negotiated_rtp,
    use_host_addresses,
    use_host_candidates,
)
from sfu.codecs import EXT_ABS_SEND_TIME, EXT_MID

LOOPBACK_ONLY = RTCConfiguration(iceServers=[])


def parameters(function: object) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def source_of(function: object) -> str:
    return inspect.getsource(function)


@pytest.fixture
async def pc() -> AsyncIterator[RTCPeerConnection]:
    connection = RTCPeerConnection(LOOPBACK_ONLY)
    yield connection
    await connection.close()
    assert connection.connectionState == "closed"


def test_aiortc_internals_version_is_the_pinned_one() -> None:
    assert aiortc.__version__ == AIORTC_VERSION == "1.16.0"
    assert aioice.__version__.startswith(internals.AIOICE_MINOR_VERSION)


def test_aiortc_internals_import_refuses_another_aiortc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    path = Path(internals.__file__)
    spec = importlib.util.spec_from_file_location("sfu_internals_copy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError, match=r"aiortc 1\.16\.0 internals.*1\.17\.0"):
        spec.loader.exec_module(module)


async def test_aiortc_internals_receiver_private_state(pc: RTCPeerConnection) -> None:
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


def test_aiortc_internals_statistics_and_nack_helpers() -> None:
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


async def test_aiortc_internals_sender_private_state(pc: RTCPeerConnection) -> None:
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


async def test_aiortc_internals_transceiver_and_dtls_state(pc: RTCPeerConnection) -> None:
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


def test_aiortc_internals_protector_matches_pylibsrtp() -> None:
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
    protect = internals._RtpProtector(fast)
    for seq in (1, 2, 2, 3):  # a repeat, as a retransmission without RTX
        header = bytes((0x80, 97)) + seq.to_bytes(2, "big") + bytes(8)
        payload = bytes(range(200)) * 5
        assert protect(header, payload) == reference.protect(header + payload)
    assert protect(bytes(12), bytes(3000)) is None  # larger than any datagram


async def test_aiortc_internals_offer_direction_and_codec_list(pc: RTCPeerConnection) -> None:
    transceiver = pc.addTransceiver("video")
    assert "_offerDirection" in vars(transceiver)
    # setRemoteDescription stores the offer's direction reversed, createAnswer combines it
    set_remote = source_of(RTCPeerConnection.setRemoteDescription)
    assert "transceiver._offerDirection = direction" in set_remote
    assert "transceiver._codecs = common" in set_remote
    assert "transceiver.direction, transceiver._offerDirection" in source_of(
        RTCPeerConnection.createAnswer
    )


def test_aiortc_internals_aioice_names() -> None:
    assert parameters(aioice.ice.get_host_addresses) == ["use_ipv4", "use_ipv6"]
    assert "addresses = get_host_addresses(" in source_of(aioice.Connection.gather_candidates)
    assert "self.receiver.data_received(data, self.local_candidate.component)" in source_of(
        aioice.ice.StunProtocol.datagram_received
    )
    assert "active_pair.protocol.send_data(data, active_pair.remote_addr)" in source_of(
        aioice.Connection.sendto
    )
    assert isinstance(aioice.ice.CandidatePair.remote_addr, property)
    assert "self.protocol = protocol" in source_of(aioice.ice.CandidatePair.__init__)


@pytest.mark.integration
async def test_aiortc_internals_use_host_addresses_gathers_only_those() -> None:
    use_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(LOOPBACK_ONLY)
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        gatherer = pc.getTransceivers()[0].sender.transport.transport.iceGatherer
        addresses = {candidate.ip for candidate in gatherer.getLocalCandidates()}
    finally:
        await pc.close()
        use_host_addresses(None)
    assert addresses == {"127.0.0.1"}
    assert aioice.ice.get_host_addresses is internals._stock_get_host_addresses


def test_aiortc_internals_host_candidate_hooks_exist() -> None:
    assert parameters(aioice.Connection.get_component_candidates) == [
        "component",
        "addresses",
        "timeout",
    ]
    gather = source_of(aioice.Connection.gather_candidates)
    assert "get_host_addresses(" in gather and "self.get_component_candidates(" in gather
    assert "self._protocols: list[StunProtocol] = []" in source_of(aioice.Connection.__init__)
    assert parameters(aioice.ice.StunProtocol.__init__) == ["receiver"]
    assert parameters(aioice.Candidate.__init__)[:8] == [
        "foundation",
        "component",
        "transport",
        "priority",
        "host",
        "port",
        "type",
        "related_address",
    ]


def test_aiortc_internals_ice_restart_hooks_exist() -> None:
    init = source_of(aioice.Connection.__init__)
    for name in (
        "_check_list",
        "_check_list_done",
        "_check_list_state",
        "_early_checks",
        "_early_checks_done",
        "_local_username",
        "_local_password",
        "_nominated",
        "_nominating",
        "_remote_candidates",
        "_remote_candidates_end",
        "_query_consent_task",
    ):
        assert f"self.{name}" in init, name
    connect = source_of(aioice.Connection.connect)
    assert "self._early_checks_done = True" in connect
    assert "await self._check_list_state.get()" in connect
    assert "self._query_consent_task = asyncio.create_task" in connect
    # the selected pair is replaced on nomination, and recv() needs one to be selected
    assert "self._nominated[pair.component] = pair" in source_of(aioice.Connection.check_complete)
    assert "if not len(self._nominated):" in source_of(aioice.Connection.recvfrom)
    assert "self.__iceGatherer._remote_candidates_end" in source_of(
        aiortc.RTCIceTransport.addRemoteCandidate
    )
    assert "self._remote_candidates_end = False" in source_of(aiortc.RTCIceGatherer.__init__)


# aioice's own consent loop, as imported (a worker started in this process replaces it)
STOCK_QUERY_CONSENT = aioice.Connection.query_consent


def test_aiortc_internals_consent_loop_is_the_one_replaced() -> None:
    # what our consent loop mirrors of aioice's own (read before any worker replaced it)
    stock = inspect.getsource(STOCK_QUERY_CONSENT)
    for piece in (
        "for pair in self._nominated.values():",
        "request = self.build_request(pair, nominate=False)",
        "await pair.protocol.request(",
        "retransmissions=0,",
        "self._query_consent_task = None",
        "return await self.close()",
    ):
        assert piece in stock, piece
    assert "self._query_consent_task = asyncio.create_task(self.query_consent())" in source_of(
        aioice.Connection.connect
    )


def free_udp_ports(count: int) -> tuple[int, int]:
    """`count` consecutive UDP ports on 127.0.0.1 that are free now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first, first + count - 1
    raise RuntimeError("no free UDP port run")


def local_candidates(pc: RTCPeerConnection) -> list[tuple[str, int]]:
    return [
        (line.split()[4], int(line.split()[5]))
        for line in pc.localDescription.sdp.splitlines()
        if line.startswith("a=candidate:")
    ]


@pytest.mark.integration
async def test_aiortc_internals_host_candidates_announce_an_address_in_a_port_range() -> None:
    low, high = free_udp_ports(4)
    use_host_candidates(["127.0.0.1"], announced_address="192.0.2.10", port_range=(low, high))
    pc = RTCPeerConnection(LOOPBACK_ONLY)
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        candidates = local_candidates(pc)
        gatherer = pc.getTransceivers()[0].sender.transport.transport.iceGatherer
        bound = [p.transport.get_extra_info("sockname") for p in gatherer._connection._protocols]
    finally:
        await pc.close()
        use_host_candidates(None)
    assert [host for host, _ in candidates] == ["192.0.2.10"]
    assert low <= candidates[0][1] <= high
    assert bound == [("127.0.0.1", candidates[0][1])]  # bound locally, announced as the NAT's
    assert aioice.Connection.get_component_candidates is internals._stock_get_component_candidates


@pytest.mark.integration
async def test_aiortc_internals_host_candidates_port_range_connects_and_runs_out() -> None:
    low, high = free_udp_ports(2)
    client = RTCPeerConnection(LOOPBACK_ONLY)
    server = RTCPeerConnection(LOOPBACK_ONLY)
    third = RTCPeerConnection(LOOPBACK_ONLY)
    connected = asyncio.Event()

    @server.on("connectionstatechange")
    def _state() -> None:
        if server.connectionState == "connected":
            connected.set()

    try:
        use_host_addresses(["127.0.0.1"])
        client.createDataChannel("probe")
        await client.setLocalDescription(await client.createOffer())
        use_host_candidates(["127.0.0.1"], port_range=(low, high))
        await server.setRemoteDescription(client.localDescription)
        await server.setLocalDescription(await server.createAnswer())
        await client.setRemoteDescription(server.localDescription)
        await asyncio.wait_for(connected.wait(), 10)
        server_port = local_candidates(server)[0][1]
        assert low <= server_port <= high
        # the other port of the range is taken too: the next gathering has none left
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
            squatter.bind(("127.0.0.1", high if server_port == low else low))
            third.addTransceiver("audio")
            with pytest.raises(NoMediaPort, match=f"{low}-{high}"):
                await third.setLocalDescription(await third.createOffer())
    finally:
        for pc in (client, server, third):
            await pc.close()
        use_host_candidates(None)
    assert server.connectionState == "closed"


async def test_aiortc_internals_parked_track_sleeps_until_stopped() -> None:
    track = ParkedTrack("video")
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiting
    assert track.readyState == "ended"


async def negotiated_pair() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    client = RTCPeerConnection(LOOPBACK_ONLY)
    client.addTransceiver("video", direction="recvonly")
    await client.setLocalDescription(await client.createOffer())
    server = RTCPeerConnection(LOOPBACK_ONLY)
    await server.setRemoteDescription(client.localDescription)
    return client, server


@pytest.mark.integration
async def test_aiortc_internals_negotiated_rtp_reads_payload_types_and_extensions(
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


@pytest.mark.integration
async def test_aiortc_internals_hooks_are_per_instance_and_undone(pc: RTCPeerConnection) -> None:
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


def test_aiortc_internals_dtls_context_and_rsa_suites() -> None:
    from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCCertificate
    from cryptography.hazmat.primitives.asymmetric import ec
    from OpenSSL import SSL

    # RTCDtlsTransport.start builds each context from its certificate through this method,
    # which hard-codes aiortc's ECDSA-only cipher list; a peer connection's certificate is ECDSA
    assert parameters(RTCCertificate._create_ssl_context) == ["srtp_profiles"]
    assert "self.__local_certificate._create_ssl_context(" in source_of(RTCDtlsTransport.start)
    create = source_of(internals._stock_create_ssl_context)
    assert "ctx.set_cipher_list(" in create and "ctx.set_tlsext_use_srtp(" in create
    assert f'b"{internals.AIORTC_DTLS_CIPHERS}"' in create
    assert "RTCCertificate.generateCertificate()" in source_of(RTCPeerConnection.__init__)
    assert "ec.generate_private_key(" in source_of(RTCCertificate.generateCertificate)

    certificate = RTCCertificate.generateCertificate()

    def offered() -> list[str]:
        ctx = RTCCertificate._create_ssl_context(certificate, SRTP_PROFILES)
        return [n for n in SSL.Connection(ctx).get_cipher_list() if not n.startswith("TLS_")]

    stock = internals.AIORTC_DTLS_CIPHERS.split(":")
    rsa = internals.RSA_DTLS_CIPHERS.split(":")
    try:
        assert offered() == stock
        internals.accept_rsa_dtls_peers()
        internals.accept_rsa_dtls_peers()  # idempotent
        assert offered() == stock + rsa
        assert isinstance(certificate._key, ec.EllipticCurvePrivateKey)  # own key unchanged
    finally:
        internals.accept_rsa_dtls_peers(False)
    assert RTCCertificate._create_ssl_context is internals._stock_create_ssl_context
    assert offered() == stock


async def test_aiortc_internals_consent_expires_by_the_time_since_the_last_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.05)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 4)  # 0.2 s without an answer
    answers = iter([False, False, True])  # then never again
    loop = asyncio.get_running_loop()
    answered_at: list[float] = []

    class Protocol:
        async def request(self, *_args: object, **kwargs: object) -> None:
            assert kwargs["retransmissions"] == internals.CONSENT_RETRANSMISSIONS
            if not next(answers, False):
                raise aioice.stun.TransactionError()
            answered_at.append(loop.time())

    class Pair:
        protocol = Protocol()
        remote_addr = ("127.0.0.1", 9)

    class Connection:
        def __init__(self) -> None:
            self.remote_password = "pw"
            self._nominated = {1: Pair()}
            self._query_consent_task: object = "running"
            self.closed_at: float | None = None

        def build_request(self, pair: Pair, nominate: bool) -> object:
            return object()

        async def close(self) -> None:
            self.closed_at = loop.time()

    connection = Connection()
    await asyncio.wait_for(internals._query_consent(connection), timeout=5)  # type: ignore[arg-type]
    # two unanswered checks did not expire it (0.1 s < 0.2 s); silence after the answer did
    assert connection.closed_at is not None and len(answered_at) == 1
    assert connection.closed_at - answered_at[0] >= 0.2
    assert connection._query_consent_task is None
