"""ICE under aiortc: where host candidates are gathered, how consent expires, and an
ICE restart in place under a connected DTLS transport.

- `use_host_candidates` chooses the addresses aioice gathers host candidates on, the UDP port
  range and the address announced for them (`use_host_addresses`: addresses only).
- `open_shared_port` / `share_port` put the worker's peer connections on one UDP socket
  (single-port mode, `sfu.rtc.udpmux`); `close_shared_port` ends it.
- `set_consent_timing` sets how soon a silent peer's ICE consent expires, and lets consent
  checks be answered late without expiring (process-wide, like `accept_rsa_dtls_peers`).
- `begin_ice_restart` / `complete_ice_restart` restart ICE of a connected, bundled peer
  connection in place (new credentials, new checks) while DTLS and SRTP carry on, which aiortc
  does not offer.
- `nominated_datagram_transport` is the socket and address ICE selected under a DTLS transport.

Each access to an aioice or aiortc internal carries a comment naming what it touches and why.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import types
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aioice
import aioice.ice
import aioice.stun
import aioice.utils
from aiortc import RTCIceCandidate, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport, candidate_from_aioice, candidate_to_aioice
from aiortc.sdp import candidate_to_sdp

from sfu.rtc.icelite import ice_transports, make_lite
from sfu.rtc.udpmux import (
    SharedPortProtocol,
    SharedUdpPort,
    host_candidate,
    shared_port_candidates,
)

log = logging.getLogger(__name__)

HOST_SOCKET_BUFFER_BYTES = 262144
"""SO_RCVBUF of host sockets gathered here (as aioice's own): bursts queue in the kernel while
the event loop is busy."""

_ICE_COMPONENT_RTP = 1


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
            protocol.local_candidate = host_candidate(host, port, component)
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
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, HOST_SOCKET_BUFFER_BYTES)
        return protocol
    raise NoMediaPort(f"no free UDP port in {port_range[0]}-{port_range[1]} on {address}")


# --------------------------------------------------------------------------------------------
# single-port mode

_shared_port: SharedUdpPort | None = None


async def open_shared_port(
    address: str,
    port: int,
    *,
    announced_address: str | None = None,
    announced_port: int | None = None,
    batch: bool = True,
    ice_lite: bool = True,
) -> SharedUdpPort:
    """Bind the worker's one media socket on `address:port` (0: a port the system picks);
    the peer connections given to `share_port` afterwards gather on it, as ICE-lite agents
    with `ice_lite` (`sfu.rtc.icelite`). Process-wide (the worker is one process); OSError if
    the port is taken."""
    global _shared_port
    close_shared_port()
    _shared_port = await SharedUdpPort.open(
        address,
        port,
        announced_address=announced_address,
        announced_port=announced_port,
        batch=batch,
    )
    _shared_port.ice_lite = ice_lite
    return _shared_port


def close_shared_port() -> None:
    """Close the shared media socket, if one is open (its connections lose their socket)."""
    global _shared_port
    if _shared_port is not None:
        _shared_port.close()
        _shared_port = None


def shared_port() -> SharedUdpPort | None:
    """The shared media socket of this process, if single-port mode is on."""
    return _shared_port


def _ice_connections(pc: RTCPeerConnection) -> list[aioice.Connection]:
    # touches RTCIceTransport._connection, the aioice Connection under each ICE transport
    return [transport._connection for transport in ice_transports(pc)]


def share_port(pc: RTCPeerConnection) -> None:
    """Make `pc` gather on the shared media socket, if one is open (else nothing changes).

    Call it before the description that gathers (`createAnswer`/`createOffer`, then
    `setLocalDescription`): each of its ICE transports gets a local ufrag unique on the port,
    by which the port routes the peer's first checks to it. On a port opened with `ice_lite`,
    call it after the remote offer is applied: the transports become ICE-lite agents.
    """
    port = _shared_port
    if port is None:
        return
    shared_gather = shared_port_candidates(port)

    async def gather(
        self: aioice.Connection, component: int, addresses: list[str], timeout: int = 5
    ) -> list[aioice.Candidate]:
        try:
            return await shared_gather(self, component, addresses, timeout)
        except OSError as exc:  # the port closed meanwhile, or a ufrag clash
            raise NoMediaPort(str(exc)) from None

    for connection in _ice_connections(pc):
        # touches Connection._local_candidates_start (set once gathering began) and
        # _local_username (what getLocalParameters puts in the SDP), before the description
        # is made; and shadows get_component_candidates, which gather_candidates calls, on
        # this connection only (the peers of a test in the same process keep stock gathering)
        if connection._local_candidates_start:
            continue
        connection._local_username = port.unused_ufrag()
        connection.get_component_candidates = types.MethodType(gather, connection)  # type: ignore[method-assign]
    if port.ice_lite:
        make_lite(pc)


def end_ice_watch_on_close(pc: RTCPeerConnection) -> None:
    """Make a closed ICE connection of `pc` say so to aiortc's watch of it.

    aiortc's `RTCIceTransport._monitor` asks `get_event()` in a loop and stops only at
    `ConnectionClosed`; once a connection is closed, aioice's `get_event()` returns None at
    once, without waiting. A connection closed before the watch first waited (a session
    replaced or ended during its handshake: `close()` can finish without yielding) lost its
    `ConnectionClosed`, and the watch then spun without yielding, holding the worker's event
    loop for good. Call it once the remote offer is applied (the transports exist).
    """
    for connection in _ice_connections(pc):
        stock = connection.get_event

        async def get_event(
            connection: aioice.Connection = connection,
            stock: Callable[[], Awaitable[aioice.ice.ConnectionEvent | None]] = stock,
        ) -> aioice.ice.ConnectionEvent | None:
            # touches Connection._closed, set by close() as it emits ConnectionClosed
            if connection._closed:
                return aioice.ConnectionClosed()
            return await stock()

        # shadows Connection.get_event on this connection only, which the watch calls
        connection.get_event = get_event  # type: ignore[method-assign]


def _shared_port_protocols(connection: aioice.Connection) -> list[SharedPortProtocol]:
    # touches Connection._protocols (the local candidates' protocols)
    return [p for p in connection._protocols if isinstance(p, SharedPortProtocol)]


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
    shared = _shared_port_protocols(connection)
    if shared:
        # on a shared port the new ufrag must be unique there, and requests naming it are
        # routed to this connection from now on
        ufrag = shared[0].shared_port.unused_ufrag()
        for protocol in shared:
            protocol.shared_port.rename(protocol, ufrag)
    else:
        ufrag = aioice.utils.random_string(4)
    connection._local_username = ufrag
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
        # a "statechange" of the DTLS transport makes every DatagramPath on it unbind, so
        # the SFU's synchronous sends bind to the newly selected pair at their next packet
        dtls.emit("statechange")

    return asyncio.get_running_loop().create_task(checks(), name="ice-restart")


# --------------------------------------------------------------------------------------------
# the pair ICE selected


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
