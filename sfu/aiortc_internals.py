"""Every use of aiortc, aioice and pylibsrtp internals in the SFU lives here, and nowhere else.

aiortc is built to decode what it receives and encode what it sends; an SFU must do neither.
This module bends aiortc 1.16.0 into a packet forwarder, per object and never per class, so
ordinary aiortc peers in the same process keep their stock behaviour:

- `RtpIngest` replaces one receiver's RTP handler: statistics for RTCP RR, RTX unwrapping and
  NACK generation stay, depayloading, the jitter buffer and the decoder are skipped; each parsed
  `RtpPacket` goes to a callback. It can also send PLI to the publisher.
- `RtpEgress` sends already-serialized RTP for one sender synchronously (SRTP protect into a
  reused libsrtp buffer, then `sendto` on the nominated ICE pair), answers NACK from a bounded
  history, reports PLI/FIR, and reads RR; `ParkedTrack` keeps the stock send loop asleep while
  SR/SDES still go out.
- `use_host_candidates` chooses the addresses aioice gathers host candidates on, the UDP port
  range and the address announced for them (`use_host_addresses`: addresses only).
- `set_consent_timing` sets how soon a silent peer's ICE consent expires, and lets consent
  checks be answered late without expiring (process-wide, like `accept_rsa_dtls_peers`).
- `begin_ice_restart` / `complete_ice_restart` restart ICE of a connected, bundled peer
  connection in place (new credentials, new checks) while DTLS and SRTP carry on, which aiortc
  does not offer.
- `negotiated_rtp` reads what a transceiver negotiated (payload types, RTX, header extensions);
  `offered_direction` and `restrict_codecs` help answer an offer.
- `accept_rsa_dtls_peers` adds ECDHE-RSA suites to aiortc's DTLS cipher list, so peers with an
  RSA certificate can connect; unlike the rest it applies process-wide (ECDSA peers are unaffected).
- `set_receive_filter`, `observe_rtp` and `nominated_datagram_transport` serve fault injection
  and observation in tests and benchmarks.

Each access below carries a comment naming what it touches and why. `tests/sfu/
test_aiortc_internals.py` asserts every name and signature relied upon, so an upgrade fails there
first. The import fails with a clear message on any other aiortc version.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from struct import pack, unpack_from
from typing import Any

import aioice
import aioice.ice
import aioice.stun
import aioice.utils
import aiortc
import pylibsrtp
from aiortc import RTCIceCandidate, RTCPeerConnection, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsTransport,
    SRTPProtectionProfile,
    State,
)
from aiortc.rtcicetransport import RTCIceTransport, candidate_from_aioice, candidate_to_aioice
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
)
from aiortc.sdp import candidate_to_sdp
from OpenSSL import SSL

from sfu.codecs import RtpCodec

AIORTC_VERSION = "1.16.0"
AIOICE_MINOR_VERSION = "0.13."

if aiortc.__version__ != AIORTC_VERSION:
    raise ImportError(
        f"sfu.aiortc_internals is written against aiortc {AIORTC_VERSION} internals and "
        f"aiortc {aiortc.__version__} is installed; pin aiortc=={AIORTC_VERSION} or port "
        "this module (tests/sfu/test_aiortc_internals.py lists what it relies on)"
    )
if not aioice.__version__.startswith(AIOICE_MINOR_VERSION):
    raise ImportError(
        f"sfu.aiortc_internals is written against aioice {AIOICE_MINOR_VERSION}x internals and "
        f"aioice {aioice.__version__} is installed"
    )

log = logging.getLogger(__name__)

EGRESS_HISTORY_SIZE = 512
"""Packets kept per video slot to answer NACK (a power of two); about 4 s at 1 Mbit/s."""
EGRESS_MAX_WRITE_BUFFER_BYTES = 256 * 1024
"""Above this many bytes queued in a viewer's socket transport, new packets are dropped."""
INGEST_SOCKET_BUFFER_BYTES = 262144
"""SO_RCVBUF of host sockets gathered here (as aioice's own): bursts queue in the kernel while
the event loop is busy."""
RTT_SMOOTHING = 0.85
"""Weight of the previous round-trip time in the running average (as aiortc's sender)."""

_ICE_COMPONENT_RTP = 1
_SRTP_BUFFER_BYTES = 2048  # plain packet + SRTP trailer; UDP payloads stay under the MTU
_SRTP_MAX_TRAILER_BYTES = 16 + 128  # SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN (as pylibsrtp)
_NTP_EPOCH_OFFSET_S = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)

RtpCallback = Callable[[RtpPacket], None]


# --------------------------------------------------------------------------------------------
# ICE host candidates


_stock_get_host_addresses = aioice.ice.get_host_addresses
_stock_get_component_candidates = aioice.ice.Connection.get_component_candidates


class NoMediaPort(OSError):
    """Every UDP port of the configured media range is taken."""


def use_host_addresses(addresses: Sequence[str] | None) -> None:
    """Make aioice gather host candidates on exactly these addresses (None: back to stock).

    Applies process-wide to connections gathered afterwards. aioice leaves 127.0.0.1 out of its
    own list, so tests pass ["127.0.0.1"]; a worker uses `use_host_candidates`.
    """
    use_host_candidates(addresses)


def use_host_candidates(
    addresses: Sequence[str] | None,
    *,
    announced_address: str | None = None,
    port_range: tuple[int, int] | None = None,
) -> None:
    """Gather host candidates on `addresses`, on a port of `port_range`, announcing
    `announced_address` instead of the bound one (a 1:1 NAT). None everywhere: stock aioice.

    Applies process-wide (the worker is one process). A gathering that finds every port of the
    range taken raises `NoMediaPort` from `setLocalDescription`.
    """
    if addresses is None:
        # touches aioice.ice.get_host_addresses and Connection.get_component_candidates to
        # restore stock gathering
        aioice.ice.get_host_addresses = _stock_get_host_addresses
        aioice.ice.Connection.get_component_candidates = _stock_get_component_candidates  # type: ignore[method-assign]
        return
    chosen = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            address
            for address in chosen
            if (":" in address and use_ipv6) or (":" not in address and use_ipv4)
        ]

    # touches aioice.ice.get_host_addresses, the module-level function that
    # Connection.gather_candidates calls, because aioice has no option for it
    aioice.ice.get_host_addresses = get_host_addresses
    if announced_address is None and port_range is None:
        aioice.ice.Connection.get_component_candidates = _stock_get_component_candidates  # type: ignore[method-assign]
        return

    async def get_component_candidates(
        self: aioice.Connection, component: int, addresses: list[str], timeout: int = 5
    ) -> list[aioice.Candidate]:
        # aioice binds host sockets on port 0 and announces what it bound; it has no option for
        # either, so host candidates are made here the way aioice makes them.
        candidates = []
        for address in addresses:
            protocol = await _bind_host_protocol(self, address, port_range)
            host, port = protocol.transport.get_extra_info("sockname")[:2]
            host = announced_address or host
            protocol.local_candidate = aioice.Candidate(
                foundation=aioice.candidate.candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=aioice.candidate.candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            # touches Connection._protocols, the list aioice reads and closes its sockets from
            self._protocols.append(protocol)
            candidates.append(protocol.local_candidate)
        # STUN and TURN candidates (if any server is configured) as stock aioice makes them
        return candidates + await _stock_get_component_candidates(self, component, [], timeout)

    # touches aioice.ice.Connection.get_component_candidates (called by gather_candidates)
    aioice.ice.Connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


async def _bind_host_protocol(
    connection: aioice.Connection, address: str, port_range: tuple[int, int] | None
) -> aioice.ice.StunProtocol:
    loop = asyncio.get_running_loop()
    if port_range is None:
        ports = [0]
    else:
        low, high = port_range
        start = random.randint(low, high)
        ports = [*range(start, high + 1), *range(low, start)]
    for port in ports:
        try:
            # touches aioice.ice.StunProtocol, the protocol aioice's sockets speak through
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: aioice.ice.StunProtocol(connection), local_addr=(address, port)
            )
        except OSError:
            if port_range is None:
                raise
            continue
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, INGEST_SOCKET_BUFFER_BYTES)
        return protocol
    raise NoMediaPort(f"no free UDP port in {port_range[0]}-{port_range[1]} on {address}")


CONSENT_RETRANSMISSIONS = 2
"""A consent check is sent again after 0.5 and 1.5 s before it counts as unanswered (3.5 s)."""


def set_consent_timing(interval_s: float, failures: int) -> None:
    """ICE consent checks every `interval_s` (×0.8–1.2); a connection that has had no answer
    for `interval_s × failures` (RFC 7675's 30 s by default) is closed. Process-wide (the
    worker is one process).

    aioice sends each check once and counts it unanswered after 0.5 s, so a peer whose answers
    are late while either event loop is busy (a burst of joins: each DTLS handshake holds the
    loop for milliseconds) loses consent though it never went away. Here each check is
    retransmitted like any STUN request, and what expires consent is the time since the last
    answer, as RFC 7675 §5.1 says.
    """
    # touches aioice.ice.CONSENT_INTERVAL and CONSENT_FAILURES, module constants that
    # Connection.query_consent reads at every round, because aioice has no option for them;
    # and Connection.query_consent itself, the coroutine connect() starts as
    # self._query_consent_task, replaced on the class (the worker's process only)
    aioice.ice.CONSENT_INTERVAL = interval_s  # type: ignore[assignment]
    aioice.ice.CONSENT_FAILURES = failures
    aioice.Connection.query_consent = _query_consent  # type: ignore[method-assign]


async def _query_consent(self: aioice.Connection) -> None:
    """aioice's Connection.query_consent with retransmitted checks and expiry by time."""
    assert self.remote_password is not None
    loop = asyncio.get_running_loop()
    answered_at = loop.time()
    while True:
        interval_s = aioice.ice.CONSENT_INTERVAL
        await asyncio.sleep(interval_s * (0.8 + 0.4 * random.random()))
        # touches Connection._nominated (component → CandidatePair), build_request and
        # CandidatePair.protocol.request, as the stock loop does
        for pair in list(self._nominated.values()):
            request = self.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request,
                    pair.remote_addr,
                    integrity_key=self.remote_password.encode("utf8"),
                    retransmissions=CONSENT_RETRANSMISSIONS,
                )
                answered_at = loop.time()
            except aioice.stun.TransactionError:
                pass
        if loop.time() - answered_at >= interval_s * aioice.ice.CONSENT_FAILURES:
            log.info("ICE consent expired: no answer for %.0f s", loop.time() - answered_at)
            self._query_consent_task = None
            await self.close()
            return


# --------------------------------------------------------------------------------------------
# ICE restart


class IceRestartError(ValueError):
    """The peer connection cannot restart ICE (not connected, or not bundled)."""


@dataclass(frozen=True, eq=False)
class IceCredentials:
    """The local side of a restarted ICE session."""

    ufrag: str
    pwd: str
    mid: str | None
    candidates: list[str]
    """Local candidates as SDP attribute values (what follows `a=candidate:`)."""


def _bundled_ice_transport(pc: RTCPeerConnection) -> RTCIceTransport:
    transports = {t.sender.transport for t in pc.getTransceivers() if t.sender.transport}
    if len(transports) != 1:
        raise IceRestartError("an ICE restart needs one bundled transport")
    (dtls,) = transports
    if dtls.state != "connected":
        raise IceRestartError("an ICE restart needs a connected session")
    return dtls.transport


def begin_ice_restart(pc: RTCPeerConnection) -> IceCredentials:
    """Restart ICE in place (RFC 8445 section 2.4) under a connected DTLS transport: new local
    credentials, checks set back; `complete_ice_restart` then runs them with the remote side's.

    The current pair keeps carrying media until the new checks select another (aioice replaces
    the selected pair on nomination), so DTLS and SRTP never notice.
    """
    ice = _bundled_ice_transport(pc)
    # touches RTCIceTransport._connection (aioice Connection) and the Connection's check state:
    # aioice has no restart, so the state connect() starts from is set back, keeping the
    # gathered local candidates (their sockets) and the selected pair (_nominated), whose
    # absence would make recv() fail and close DTLS
    connection = ice._connection
    if connection._query_consent_task is not None:
        connection._query_consent_task.cancel()
        connection._query_consent_task = None
    for pair in connection._check_list:
        if pair.task is not None:
            pair.task.cancel()
    connection._check_list = []
    connection._check_list_done = False
    connection._check_list_state = asyncio.Queue()
    connection._nominating = set()
    connection._remote_candidates = []
    connection._remote_candidates_end = False
    connection._early_checks.clear()
    connection._early_checks_done = False
    connection._local_username = aioice.utils.random_string(4)
    connection._local_password = aioice.utils.random_string(22)
    local = [c for c in connection.local_candidates if c.component == _ICE_COMPONENT_RTP]
    mids = [t.mid for t in pc.getTransceivers()]
    return IceCredentials(
        ufrag=connection.local_username,
        pwd=connection.local_password,
        mid=mids[0] if mids else None,
        candidates=[candidate_to_sdp(candidate_from_aioice(c)) for c in local],
    )


async def complete_ice_restart(
    pc: RTCPeerConnection,
    *,
    remote_ufrag: str,
    remote_pwd: str,
    remote_candidates: Sequence[RTCIceCandidate],
    end_of_candidates: bool,
) -> asyncio.Task[None]:
    """Give the restarted session the remote credentials and candidates and start its checks.

    Returns the task running them: it ends once a new pair is selected, and raises
    ConnectionError if none can be.
    """
    ice = _bundled_ice_transport(pc)
    connection = ice._connection
    connection.remote_username = remote_ufrag
    connection.remote_password = remote_pwd
    # touches RTCIceGatherer._remote_candidates_end, which makes addRemoteCandidate a no-op
    # after end-of-candidates; later trickled candidates belong to the new session
    ice.iceGatherer._remote_candidates_end = end_of_candidates
    for candidate in remote_candidates:
        await connection.add_remote_candidate(candidate_to_aioice(candidate))
    if end_of_candidates:
        await connection.add_remote_candidate(None)
    dtls = pc.getTransceivers()[0].sender.transport

    async def checks() -> None:
        await connection.connect()
        # a "statechange" of the DTLS transport makes every _DatagramPath on it unbind, so
        # the SFU's synchronous sends bind to the newly selected pair at their next packet
        dtls.emit("statechange")

    return asyncio.get_running_loop().create_task(checks(), name="ice-restart")


# --------------------------------------------------------------------------------------------
# negotiated parameters


@dataclass(frozen=True, eq=False)
class NegotiatedRtp:
    """What one transceiver negotiated: its formats, header extensions and MID."""

    kind: str
    mid: str | None
    codecs: tuple[RtpCodec, ...]
    """Media formats (RTX excluded), in the negotiated order of preference."""
    header_extensions: Mapping[str, int] = field(default_factory=dict)
    """Header extension URI → negotiated id."""

    def codec_for(self, payload_type: int) -> RtpCodec | None:
        """The media format with this payload type, if any."""
        for codec in self.codecs:
            if codec.payload_type == payload_type:
                return codec
        return None


def _is_rtx(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower().endswith("/rtx")


def _rtp_codecs(codecs: Sequence[RTCRtpCodecParameters]) -> tuple[RtpCodec, ...]:
    rtx_for: dict[int, int] = {}
    for codec in codecs:
        apt = codec.parameters.get("apt")
        if _is_rtx(codec) and isinstance(apt, int):
            rtx_for[apt] = codec.payloadType
    return tuple(
        RtpCodec(
            mime_type=codec.mimeType,
            clock_rate=codec.clockRate,
            payload_type=codec.payloadType,
            channels=codec.channels,
            parameters=dict(codec.parameters),
            rtx_payload_type=rtx_for.get(codec.payloadType),
            nack=any(fb.type == "nack" and not fb.parameter for fb in codec.rtcpFeedback),
        )
        for codec in codecs
        if not _is_rtx(codec)
    )


def negotiated_rtp(transceiver: RTCRtpTransceiver) -> NegotiatedRtp:
    """Read the payload types, RTX payload types and header extension ids of a transceiver.

    Valid once the remote description has been applied (aiortc fills these then); raises
    ValueError before.
    """
    # touches RTCRtpTransceiver._codecs / ._headerExtensions, which RTCPeerConnection fills on
    # setRemoteDescription and which aiortc exposes nowhere else before the sender starts
    codecs = transceiver._codecs
    extensions = transceiver._headerExtensions
    if not codecs:
        raise ValueError("the transceiver has not negotiated yet (apply the remote description)")
    return NegotiatedRtp(
        kind=transceiver.kind,
        mid=transceiver.mid,
        codecs=_rtp_codecs(codecs),
        header_extensions={ext.uri: ext.id for ext in extensions},
    )


# --------------------------------------------------------------------------------------------
# the datagram path under one DTLS transport


def nominated_datagram_transport(
    dtls: RTCDtlsTransport,
) -> tuple[asyncio.DatagramTransport, tuple[str, int]] | None:
    """The asyncio transport and remote address ICE selected for this DTLS transport, if any."""
    # touches RTCIceTransport._connection (the aioice Connection) and aioice
    # Connection._nominated (component → CandidatePair), because neither exposes the selected
    # pair; CandidatePair.protocol.transport and .remote_addr are what Connection.sendto uses
    pair = dtls.transport._connection._nominated.get(_ICE_COMPONENT_RTP)
    if pair is None:
        return None
    return pair.protocol.transport, pair.remote_addr


RtpProtect = Callable[[bytes, bytes], "bytes | None"]
"""(header, payload) → the SRTP packet, or None if libsrtp refused it."""


class _RtpProtector:
    """SRTP-protect `header + payload` for one session without per-packet allocations.

    `Session.protect` allocates a C int and copies the packet twice per call, a large share of
    the per-viewer cost; this writes header and payload straight into one reusable buffer and
    calls libsrtp once.
    """

    __slots__ = ("_buffer", "_cdata", "_handle", "_length", "_limit", "_ok", "_protect", "session")

    def __init__(self, session: pylibsrtp.Session) -> None:
        # touches pylibsrtp._binding (its cffi module) and Session._srtp (the srtp_t handle);
        # holding `session` keeps the handle alive
        from pylibsrtp._binding import ffi, lib

        self.session = session
        self._handle = session._srtp[0]
        self._protect = lib.srtp_protect
        self._ok = lib.srtp_err_status_ok
        self._cdata = ffi.new("char[]", _SRTP_BUFFER_BYTES)
        self._buffer = ffi.buffer(self._cdata)
        self._length = ffi.new("int *")
        self._limit = _SRTP_BUFFER_BYTES - _SRTP_MAX_TRAILER_BYTES

    def __call__(self, header: bytes, payload: bytes) -> bytes | None:
        split = len(header)
        size = split + len(payload)
        if size > self._limit:
            return None
        buffer = self._buffer
        buffer[0:split] = header
        buffer[split:size] = payload
        length = self._length
        length[0] = size
        if self._protect(self._handle, self._cdata, length) != self._ok:
            return None
        return buffer[0 : length[0]]


class _DatagramPath:
    """Synchronous SRTP send on one DTLS transport, skipping aiortc's coroutine chain.

    `resolve()` binds the SRTP session and the nominated socket once the transport is connected;
    any DTLS state change unbinds them (and calls `on_unbind`).
    """

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self.transport: asyncio.DatagramTransport | None = None
        self.addr: tuple[str, int] = ("", 0)
        self.protect: RtpProtect | None = None
        self.on_unbind: Callable[[], None] | None = None
        self._session: pylibsrtp.Session | None = None
        self._listening = False

    def resolve(self) -> bool:
        """Bind to the connected transport; False while it is not connected."""
        dtls = self.dtls
        if not self._listening:
            dtls.on("statechange", self.unbind)
            self._listening = True
        # touches RTCDtlsTransport._state and ._tx_srtp (the outbound pylibsrtp.Session),
        # because RTCDtlsTransport._send_rtp is a coroutine and we want a synchronous send
        session = dtls._tx_srtp
        if dtls._state is not State.CONNECTED or session is None:
            self.unbind()
            return False
        selected = nominated_datagram_transport(dtls)
        if selected is None or selected[0].is_closing():
            self.unbind()
            return False
        self.transport, self.addr = selected
        if session is not self._session or self.protect is None:
            self._session = session
            self.protect = _RtpProtector(session)
        return True

    def unbind(self) -> None:
        """Forget the bound socket (the next send resolves again)."""
        self.transport = None
        if self.on_unbind is not None:
            self.on_unbind()

    def send_rtcp(self, data: bytes) -> bool:
        """Protect and send one compound RTCP packet; False if not connected or refused."""
        if (self.transport is None and not self.resolve()) or self._session is None:
            return False
        try:
            protected = self._session.protect_rtcp(data)
        except (pylibsrtp.Error, ValueError):
            return False
        assert self.transport is not None
        self.transport.sendto(protected, self.addr)
        return True

    def close(self) -> None:
        """Stop listening to the DTLS transport."""
        if self._listening:
            self.dtls.remove_listener("statechange", self.unbind)
            self._listening = False
        self.on_unbind = None
        self.unbind()
        self.protect = None
        self._session = None


# --------------------------------------------------------------------------------------------
# ingest: one publisher's receiver


@dataclass(frozen=True)
class IngestStats:
    """Reception statistics of one publisher track (the media SSRC, RTX excluded)."""

    packets_received: int
    packets_lost: int
    jitter_s: float
    nacks_sent: int
    plis_sent: int
    rembs_sent: int


class RtpIngest:
    """Turn one `RTCRtpReceiver` into a packet source: parsed RTP to a callback, no decoding.

    Installed on the receiver instance (its `_handle_rtp_packet` is replaced), so other
    receivers in the process are untouched. Keeps what aiortc's RTCP needs (per-SSRC statistics
    for receiver reports), unwraps RTX and sends NACK for lost video packets, so each hop repairs
    its own losses. After `close()` the receiver discards packets.
    """

    def __init__(self, transceiver: RTCRtpTransceiver, on_rtp: RtpCallback) -> None:
        receiver = transceiver.receiver
        self.kind = transceiver.kind
        self._receiver = receiver
        self._on_rtp = on_rtp
        self._path: _DatagramPath | None = None
        # touches RTCRtpReceiver private state (name-mangled `__x` attributes): the payload type
        # → codec map and RTX SSRC map that receive() fills, the per-SSRC StreamStatistics its
        # RTCP loop turns into receiver reports, the video NACK generator and the RTCP SSRC;
        # the containers are created in __init__ and filled in place, so references stay valid
        self._codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs
        self._rtx_ssrc: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc
        self._streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams
        self._nack_generator = receiver._RTCRtpReceiver__nack_generator
        # the receiver's remote bitrate estimator (video only): publishers learn from our REMB
        # how much the path takes, since aiortc offers no transport-cc
        self._estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
        self._apt: dict[int, int | None] = {}  # payload type → RTX apt (None: not RTX)
        self.media_ssrc: int | None = None
        self.nacks_sent = 0
        self.plis_sent = 0
        self.rembs_sent = 0
        # touches RTCRtpReceiver._handle_rtp_packet, the coroutine RTCDtlsTransport awaits for
        # every routed RTP packet; an instance attribute shadows the method for this one only
        receiver._handle_rtp_packet = self._handle_rtp_packet

    def close(self) -> None:
        """Stop handing packets on; the receiver discards them from now on.

        The stock handler is not put back: it would start decoding whatever still arrives
        before the peer connection closes.
        """
        self._receiver._handle_rtp_packet = _discard_rtp_packet
        self._on_rtp = _ignore_rtp
        if self._path is not None:
            self._path.close()
            self._path = None

    def stats(self) -> IngestStats:
        """Statistics of the media SSRC received so far."""
        stream = self._streams.get(self.media_ssrc) if self.media_ssrc is not None else None
        clock_rate = stream._clockrate if stream is not None else 0
        return IngestStats(
            packets_received=stream.packets_received if stream else 0,
            packets_lost=max(stream.packets_lost, 0) if stream else 0,
            jitter_s=(stream.jitter / clock_rate) if stream and clock_rate else 0.0,
            nacks_sent=self.nacks_sent,
            plis_sent=self.plis_sent,
            rembs_sent=self.rembs_sent,
        )

    def send_pli(self) -> bool:
        """Ask the publisher for a keyframe (RFC 4585 §6.3.1); False if it cannot be sent yet."""
        media_ssrc = self.media_ssrc
        rtcp_ssrc = self._rtcp_ssrc()
        if media_ssrc is None or rtcp_ssrc is None:
            return False
        packet = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=rtcp_ssrc, media_ssrc=media_ssrc)
        if self._send_rtcp(bytes(packet)):
            self.plis_sent += 1
            return True
        return False

    # the per-packet path

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        # same signature as RTCRtpReceiver._handle_rtp_packet; the await is aiortc's, the work
        # below is synchronous
        self.handle(packet, arrival_time_ms)

    def handle(self, packet: RtpPacket, arrival_time_ms: int | None = None) -> None:
        """Process one parsed RTP packet as the replaced handler does (public for benchmarks)."""
        # touches RTCRtpReceiver._enabled, which the transceiver direction sets
        if not self._receiver._enabled:
            return
        pt = packet.payload_type
        try:
            apt = self._apt[pt]
        except KeyError:
            apt = self._learn_payload_type(pt)
            if apt == -1:
                return
        stream = self._streams.get(packet.ssrc)
        if stream is None:
            codec = self._codecs[pt]
            stream = self._streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if self._estimator is not None and arrival_time_ms is not None:
            self._estimate_bandwidth(packet, arrival_time_ms)
        if apt is not None:
            original_ssrc = self._rtx_ssrc.get(packet.ssrc)
            if original_ssrc is None or len(packet.payload) < 2:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
        else:
            self.media_ssrc = packet.ssrc
        generator = self._nack_generator
        if generator is not None and generator.add(packet):
            self._send_nack(packet.ssrc, sorted(generator.missing))
        self._on_rtp(packet)

    def _estimate_bandwidth(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        abs_send_time = packet.extensions.abs_send_time
        if abs_send_time is None:
            return
        remb = self._estimator.add(
            abs_send_time=abs_send_time,
            arrival_time_ms=arrival_time_ms,
            payload_size=len(packet.payload) + packet.padding_size,
            ssrc=packet.ssrc,
        )
        rtcp_ssrc = self._rtcp_ssrc()
        if remb is None or rtcp_ssrc is None:
            return
        feedback = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb)
        )
        if self._send_rtcp(bytes(feedback)):
            self.rembs_sent += 1

    def _learn_payload_type(self, pt: int) -> int | None:
        codec = self._codecs.get(pt)
        if codec is None:
            return -1  # unknown payload type: dropped, as aiortc does
        apt: int | None = None
        if _is_rtx(codec):
            candidate = codec.parameters.get("apt")
            if not isinstance(candidate, int) or candidate not in self._codecs:
                return -1
            apt = candidate
        self._apt[pt] = apt
        return apt

    def _rtcp_ssrc(self) -> int | None:
        # touches RTCRtpReceiver.__rtcp_ssrc, the sender SSRC aiortc puts in its own RTCP
        return self._receiver._RTCRtpReceiver__rtcp_ssrc

    def _send_nack(self, media_ssrc: int, lost: list[int]) -> None:
        rtcp_ssrc = self._rtcp_ssrc()
        if rtcp_ssrc is None or not lost:
            return
        packet = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=rtcp_ssrc, media_ssrc=media_ssrc)
        packet.lost = lost
        if self._send_rtcp(bytes(packet)):
            self.nacks_sent += 1

    def _send_rtcp(self, data: bytes) -> bool:
        if self._path is None:
            self._path = _DatagramPath(self._receiver.transport)
        return self._path.send_rtcp(data)


async def _discard_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
    pass


def _ignore_rtp(packet: RtpPacket) -> None:
    pass


# --------------------------------------------------------------------------------------------
# egress: one viewer's sender


class ParkedTrack(MediaStreamTrack):
    """A track whose `recv()` waits until the track stops: it keeps aiortc's send loop asleep.

    `RTCRtpSender._run_rtp` awaits `track.recv()` forever instead of polling, so a sender fed by
    `RtpEgress` costs nothing there, while its RTCP loop still sends SR and SDES.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._stopped: asyncio.Future[None] | None = None

    async def recv(self) -> Any:
        """Wait until the track is stopped, then raise `MediaStreamError` (never a frame)."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._stopped is None:
            self._stopped = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._stopped)
        raise MediaStreamError

    def stop(self) -> None:
        """End the track and wake the parked `recv()`."""
        super().stop()
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)


@dataclass(frozen=True)
class EgressStats:
    """Counters of one viewer's outgoing track and what the viewer reported back."""

    packets_sent: int
    bytes_sent: int
    packets_dropped: int
    packets_retransmitted: int
    nacks_received: int
    keyframe_requests_received: int
    rtt_s: float | None
    fraction_lost: float | None
    packets_lost: int | None
    jitter_s: float | None
    remb_bps: int | None


class RtpEgress:
    """Send already-serialized RTP for one viewer's `RTCRtpSender`, synchronously.

    `send()` stores the packet in a bounded history, SRTP-protects it and hands it to the socket
    of the nominated ICE pair; if more than `max_write_buffer_bytes` wait in that socket's
    transport (a slow or vanished viewer), the packet is dropped rather than queued. RTCP for the
    sender is taken over: NACK is answered from the history (as RTX when negotiated), PLI/FIR
    call `on_keyframe_request`, RR feeds RTT, loss and jitter. The sender gets a `ParkedTrack`
    and its direction is made to send. `close()` undoes the hooks.
    """

    __slots__ = (
        "_addr",
        "_closed",
        "_fraction_lost",
        "_history_headers",
        "_history_payloads",
        "_jitter_s",
        "_mask",
        "_max_write_buffer_bytes",
        "_packets_lost",
        "_path",
        "_protect",
        "_remb_bps",
        "_rtt_s",
        "_rtx_pt",
        "_rtx_seq",
        "_sender",
        "_sr_lsr",
        "_sr_sent_at",
        "_stock_handle_rtcp",
        "_transport",
        "bytes_sent",
        "clock_rate",
        "keyframe_requests_received",
        "kind",
        "last_rtp_ts",
        "last_sent_at",
        "nacks_received",
        "on_keyframe_request",
        "packets_dropped",
        "packets_retransmitted",
        "packets_sent",
        "params",
        "rtx_ssrc",
        "ssrc",
    )

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        *,
        history_size: int = EGRESS_HISTORY_SIZE,
        max_write_buffer_bytes: int = EGRESS_MAX_WRITE_BUFFER_BYTES,
    ) -> None:
        if history_size & (history_size - 1):
            raise ValueError("history_size must be a power of two")
        sender = transceiver.sender
        self.kind = transceiver.kind
        self.params = negotiated_rtp(transceiver)
        self.on_keyframe_request: Callable[[], None] = _no_keyframe_request
        self.clock_rate = self.params.codecs[0].clock_rate if self.params.codecs else 90000
        # touches RTCRtpSender._ssrc / ._rtx_ssrc, the SSRCs aiortc announced in the SDP
        self.ssrc: int = sender._ssrc
        self.rtx_ssrc: int = sender._rtx_ssrc
        self._sender = sender
        self._max_write_buffer_bytes = max_write_buffer_bytes
        uses_nack = any(codec.nack for codec in self.params.codecs)
        size = history_size if uses_nack else 0
        self._mask = size - 1 if size else 0
        self._history_headers: list[bytes | None] = [None] * size
        self._history_payloads: list[bytes] = [b""] * size
        self._rtx_pt = {
            c.payload_type: c.rtx_payload_type
            for c in self.params.codecs
            if c.rtx_payload_type is not None
        }
        self._rtx_seq = random.randint(0, 0x7FFF)
        self._path: _DatagramPath | None = None
        # bound by _bind() from the path, cleared when the DTLS transport changes state
        self._transport: asyncio.DatagramTransport | None = None
        self._addr: tuple[str, int] = ("", 0)
        self._protect: RtpProtect | None = None
        self._closed = False
        # what the viewer sees and reports
        self.packets_sent = 0
        self.bytes_sent = 0
        self.packets_dropped = 0
        self.packets_retransmitted = 0
        self.nacks_received = 0
        self.keyframe_requests_received = 0
        self.last_rtp_ts = 0
        self.last_sent_at: float | None = None  # time.monotonic() of the last sent packet
        self._rtt_s: float | None = None
        self._fraction_lost: float | None = None
        self._packets_lost: int | None = None
        self._jitter_s: float | None = None
        self._remb_bps: int | None = None
        self._sr_lsr: int | None = None
        self._sr_sent_at = 0.0

        if not isinstance(sender.track, ParkedTrack):
            # this sender is fed by send() from now on: nothing for the stock loop to encode
            sender.replaceTrack(ParkedTrack(self.kind))
        if transceiver.direction in ("recvonly", "inactive"):
            transceiver.direction = "sendonly"
        # touches RTCRtpSender._handle_rtcp_packet (awaited by RTCDtlsTransport for RTCP routed
        # to this SSRC) and RTCRtpSender._send_rtcp (used by its SR/SDES/BYE loop); instance
        # attributes shadow both methods for this sender only
        self._stock_handle_rtcp = sender._handle_rtcp_packet
        sender._handle_rtcp_packet = self._handle_rtcp_packet
        sender._send_rtcp = self._send_sender_rtcp

    # the per-packet path

    def send(self, header: bytes, payload: bytes, seq: int, rtp_ts: int, now: float) -> bool:
        """Send one RTP packet (`header` + `payload`, sequence number `seq`).

        `now` is `time.monotonic()` at the packet's arrival; it dates `rtp_ts` for the sender
        report. Returns False when the packet was dropped (not connected yet, socket backlog
        above the bound, or SRTP refused it); it is still kept for retransmission.
        """
        mask = self._mask
        if mask:
            self._history_headers[seq & mask] = header
            self._history_payloads[seq & mask] = payload
        self.last_rtp_ts = rtp_ts
        self.last_sent_at = now
        transport = self._transport
        if transport is None:
            if not self._bind():
                self.packets_dropped += 1
                return False
            transport = self._transport
            assert transport is not None
        if transport.get_write_buffer_size() > self._max_write_buffer_bytes:
            self.packets_dropped += 1
            return False
        data = self._protect(header, payload)  # type: ignore[misc]
        if data is None:
            self.packets_dropped += 1
            return False
        transport.sendto(data, self._addr)
        self.packets_sent += 1
        self.bytes_sent += len(payload)
        return True

    @property
    def ready(self) -> bool:
        """True once the viewer's transport is connected and the sender has started."""
        if self._closed:
            return False
        return self._transport is not None or self._bind()

    def stats(self) -> EgressStats:
        """A snapshot of the counters and of the viewer's last receiver report."""
        return EgressStats(
            packets_sent=self.packets_sent,
            bytes_sent=self.bytes_sent,
            packets_dropped=self.packets_dropped,
            packets_retransmitted=self.packets_retransmitted,
            nacks_received=self.nacks_received,
            keyframe_requests_received=self.keyframe_requests_received,
            rtt_s=self._rtt_s,
            fraction_lost=self._fraction_lost,
            packets_lost=self._packets_lost,
            jitter_s=self._jitter_s,
            remb_bps=self._remb_bps,
        )

    def close(self) -> None:
        """Stop sending and give the sender back its stock RTCP handling."""
        if self._closed:
            return
        self._closed = True
        sender = self._sender
        for name in ("_handle_rtcp_packet", "_send_rtcp"):
            if name in vars(sender):
                delattr(sender, name)
        if self._path is not None:
            self._path.close()
        self._transport = None
        self._protect = None
        self._mask = 0
        self._history_headers = []
        self._history_payloads = []
        track = sender.track
        if isinstance(track, ParkedTrack):
            track.stop()

    # binding to the transport

    def _bind(self) -> bool:
        if self._closed:
            return False
        # touches RTCRtpSender.__started, set once send() has registered the sender with its
        # DTLS transport (after the handshake), so the viewer's side is about to accept media
        if not self._sender._RTCRtpSender__started:
            return False
        path = self._path
        if path is None or path.dtls is not self._sender.transport:
            if path is not None:
                path.close()
            path = self._path = _DatagramPath(self._sender.transport)
            path.on_unbind = self._unbind
        if not path.resolve():
            return False
        self._transport, self._addr, self._protect = path.transport, path.addr, path.protect
        return True

    def _unbind(self) -> None:
        self._transport = None

    # RTCP

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpRtpfbPacket):
            if packet.fmt == RTCP_RTPFB_NACK:
                self.nacks_received += 1
                for seq in packet.lost:
                    self.retransmit(seq)
        elif isinstance(packet, RtcpPsfbPacket):
            if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                self.keyframe_requests_received += 1
                self.on_keyframe_request()
            elif packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    return
                if self.ssrc in ssrcs:
                    self._remb_bps = bitrate
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            self._handle_reports(packet)
            # aiortc's own handler keeps getStats() of the sender meaningful
            await self._stock_handle_rtcp(packet)

    def _handle_reports(self, packet: RtcpRrPacket | RtcpSrPacket) -> None:
        for report in packet.reports:
            if report.ssrc != self.ssrc:
                continue
            self._fraction_lost = report.fraction_lost / 256
            self._packets_lost = report.packets_lost
            self._jitter_s = report.jitter / self.clock_rate if self.clock_rate else None
            if report.lsr and report.lsr == self._sr_lsr:
                rtt = time.monotonic() - self._sr_sent_at - report.dlsr / 65536
                if rtt >= 0:
                    previous = self._rtt_s
                    self._rtt_s = (
                        rtt
                        if previous is None
                        else RTT_SMOOTHING * previous + (1 - RTT_SMOOTHING) * rtt
                    )

    def retransmit(self, seq: int) -> bool:
        """Resend packet `seq` from the history (as RTX when negotiated); False if not held."""
        mask = self._mask
        if not mask:
            return False
        header = self._history_headers[seq & mask]
        if header is None or unpack_from("!H", header, 2)[0] != seq:
            return False
        payload = self._history_payloads[seq & mask]
        rtx_pt = self._rtx_pt.get(header[1] & 0x7F)
        if rtx_pt is not None:
            rtx_header = (
                bytes((header[0] & 0xDF, (header[1] & 0x80) | rtx_pt))
                + pack("!H", self._rtx_seq)
                + header[4:8]
                + pack("!I", self.rtx_ssrc)
                + header[12:]
            )
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            header, payload = rtx_header, header[2:4] + payload
        transport = self._transport
        if transport is None:
            return False
        data = self._protect(header, payload)  # type: ignore[misc]
        if data is None:
            return False
        transport.sendto(data, self._addr)
        self.packets_retransmitted += 1
        return True

    async def _send_sender_rtcp(self, packets: list[AnyRtcpPacket]) -> None:
        # replaces RTCRtpSender._send_rtcp: the stock SR carries counters of the stock send
        # loop, which never runs here, so each SR is rewritten from this egress's counters
        # rebinding here once per report also follows a change of the nominated pair
        if not self._bind():
            return
        path = self._path
        assert path is not None
        now_wall = time.time()
        now = time.monotonic()
        ntp = int((now_wall + _NTP_EPOCH_OFFSET_S) * (1 << 32))
        data = b""
        for packet in packets:
            if isinstance(packet, RtcpSrPacket) and packet.ssrc == self.ssrc:
                rtp_ts = self.last_rtp_ts
                if self.last_sent_at is not None:
                    elapsed = max(now - self.last_sent_at, 0.0)
                    rtp_ts = (rtp_ts + int(elapsed * self.clock_rate)) & 0xFFFFFFFF
                packet.sender_info = RtcpSenderInfo(
                    ntp_timestamp=ntp,
                    rtp_timestamp=rtp_ts,
                    packet_count=self.packets_sent & 0xFFFFFFFF,
                    octet_count=self.bytes_sent & 0xFFFFFFFF,
                )
                self._sr_lsr = (ntp >> 16) & 0xFFFFFFFF
                self._sr_sent_at = now
                # touches RTCRtpSender.__packet_count / __octet_count so getStats() agrees
                self._sender._RTCRtpSender__packet_count = self.packets_sent
                self._sender._RTCRtpSender__octet_count = self.bytes_sent
            data += bytes(packet)
        if data:
            path.send_rtcp(data)


def _no_keyframe_request() -> None:
    pass


# --------------------------------------------------------------------------------------------
# observation and fault injection (tests, benchmarks)


def set_receive_filter(dtls: RTCDtlsTransport, drop: Callable[[bytes], bool] | None) -> None:
    """Drop incoming datagrams of this transport for which `drop(datagram)` is true.

    The datagram is as received (SRTP): its 12-byte RTP header is in clear, so a filter can
    match sequence number, SSRC and payload type. None removes the filter. For loss injection.
    """
    # touches RTCIceTransport._connection (aioice Connection) and its data_received(data,
    # component) method, which StunProtocol calls for every non-STUN datagram; an instance
    # attribute shadows it for this connection only
    connection = dtls.transport._connection
    if "data_received" in vars(connection):
        del connection.data_received
    if drop is None:
        return
    stock = connection.data_received

    def data_received(data: bytes, component: int) -> None:
        if not drop(data):
            stock(data, component)

    connection.data_received = data_received


def observe_rtp(transceiver: RTCRtpTransceiver, observer: RtpCallback) -> Callable[[], None]:
    """Call `observer(packet)` for every RTP packet the receiver gets, before stock handling.

    The receiver still depayloads and decodes as usual. Returns a function that removes the
    observer. RTX packets are seen as received (wrapped).
    """
    receiver = transceiver.receiver
    # touches RTCRtpReceiver._handle_rtp_packet (see RtpIngest), wrapping instead of replacing
    stock = receiver._handle_rtp_packet

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        observer(packet)
        await stock(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = handle

    def remove() -> None:
        if vars(receiver).get("_handle_rtp_packet") is handle:
            del receiver._handle_rtp_packet

    return remove


# --------------------------------------------------------------------------------------------
# answering offers


def offered_direction(transceiver: RTCRtpTransceiver) -> str:
    """The direction the remote offer gave this m-line, as the offerer wrote it."""
    # touches RTCRtpTransceiver._offerDirection, set by setRemoteDescription (already reversed
    # to the answerer's point of view) and not exposed otherwise
    local = transceiver._offerDirection or "inactive"
    return {"sendonly": "recvonly", "recvonly": "sendonly"}.get(local, local)


def restrict_codecs(transceiver: RTCRtpTransceiver, mime_types: Sequence[str]) -> bool:
    """Keep only `mime_types` (and their RTX) among the codecs negotiated from an offer.

    Every publisher and viewer of a room must share one format, since packets are forwarded
    as they are. Call it between setRemoteDescription and createAnswer; returns False when the
    offer has none of them.
    """
    wanted = {m.lower() for m in mime_types}
    # touches RTCRtpTransceiver._codecs, which createAnswer turns into the answer's formats
    codecs = transceiver._codecs
    kept = [c for c in codecs if c.mimeType.lower() in wanted]
    if not kept:
        return False
    kept_pts = {c.payloadType for c in kept}
    rtx = [c for c in codecs if _is_rtx(c) and c.parameters.get("apt") in kept_pts]
    transceiver._codecs = kept + rtx
    return True


# --------------------------------------------------------------------------------------------
# DTLS cipher suites: peers with an RSA certificate

AIORTC_DTLS_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
)
"""The cipher list aiortc 1.16.0 sets on every DTLS context: ECDSA-authenticated suites only."""
RSA_DTLS_CIPHERS = (
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
)
"""Suites offered as well, so that a DTLS server holding an RSA certificate finds one it can use."""

_stock_create_ssl_context = RTCCertificate._create_ssl_context


def _create_ssl_context_accepting_rsa(
    self: RTCCertificate, srtp_profiles: list[SRTPProtectionProfile]
) -> SSL.Context:
    ctx = _stock_create_ssl_context(self, srtp_profiles)
    ctx.set_cipher_list(f"{AIORTC_DTLS_CIPHERS}:{RSA_DTLS_CIPHERS}".encode("ascii"))
    return ctx


def accept_rsa_dtls_peers(enabled: bool = True) -> None:
    """Let DTLS complete with peers whose certificate is RSA (False: back to stock). Idempotent.

    aiortc offers ECDHE-ECDSA suites only. When the SFU answers an offer it is the DTLS client
    (`a=setup:active`), and the peer, as DTLS server, must pick a suite its own certificate can
    sign: a peer holding an RSA certificate (GStreamer webrtcbin 1.22, for one) then fails with
    "no shared cipher". This adds the ECDHE-RSA suites after aiortc's own. The SFU's certificate
    stays aiortc's ECDSA one, SRTP profiles and verification are unchanged, and between two
    ECDSA peers the suite chosen is the same as before. Applies process-wide to DTLS transports
    started afterwards (a worker calls it once at start).
    """
    # touches RTCCertificate._create_ssl_context(srtp_profiles), the method
    # RTCDtlsTransport.start calls to build each transport's pyOpenSSL context, because aiortc
    # hard-codes the cipher list there and offers no option for it; the stock method still
    # builds the context (certificate, key, set_verify, SRTP profiles), only the list is reset
    if enabled:
        RTCCertificate._create_ssl_context = _create_ssl_context_accepting_rsa  # type: ignore[method-assign]
    else:
        RTCCertificate._create_ssl_context = _stock_create_ssl_context  # type: ignore[method-assign]
