"""ICE-lite (RFC 8445 §2.5) for the connections on the worker's shared port.

The worker has one host candidate per session, on a public (or announced) address: it needs no
checks of its own to find a path, as mediasoup's WebRtcServer does not. `make_lite` turns one
aiortc peer connection's ICE into a lite agent, per object (aiortc peers of the same process,
and the worker's own cascade sessions, keep full ICE):

- its answer says `a=ice-lite` (aiortc writes it when an ICE gatherer's parameters say so), so
  the peer (a browser, an aiortc agent) stays controlling and nominates by regular nomination;
- it sends no connectivity checks: `connect()` answers the peer's checks (aioice's own
  `request_received` does that, with integrity checked) and completes when the peer nominates a
  pair (USE-CANDIDATE); a later nomination of another pair moves the session to it;
- signalled remote candidates are not needed (the peer's checks tell its addresses): those of
  the offer are dropped, trickled ones ignored (their mDNS names not resolved);
- it sends no consent checks either: consent (RFC 7675) is kept by the peer's checks on the
  selected pair, and a peer whose checks stop for the consent window is closed.

ICE restart (`sfu.rtc.ice.begin_ice_restart`) works unchanged: it resets the state that
`connect()` starts from, and the lite `connect()` then waits for the peer's new nomination.

Each access to an aioice or aiortc internal carries a comment naming what it touches and why.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Callable

import aioice
import aioice.candidate
import aioice.ice
import aioice.stun
import aioice.utils
from aiortc import RTCPeerConnection
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceParameters, RTCIceTransport

log = logging.getLogger(__name__)

LITE_CONSENT_MIN_S = 15.0
"""A lite session is closed after this long without a check from the peer at the least,
whatever the consent settings: RFC 7675 peers check every 4–6 s (aiortc sends each check once,
so one lost check leaves a 12 s gap), Chromium every 2.5 s."""


def consent_window_s() -> float:
    """How long a lite session's peer may send no check on the selected pair."""
    # reads aioice.ice.CONSENT_INTERVAL and CONSENT_FAILURES, the process-wide consent timing
    # (`sfu.rtc.ice.set_consent_timing`): the same window a full agent's unanswered checks have
    return max(aioice.ice.CONSENT_INTERVAL * aioice.ice.CONSENT_FAILURES, LITE_CONSENT_MIN_S)


class LiteIce:
    """The lite side of one aioice Connection, installed on it by `make_lite`."""

    def __init__(
        self, connection: aioice.Connection, on_switch: Callable[[], None] | None = None
    ) -> None:
        self.connection = connection
        self.on_switch = on_switch
        self.heard_at = 0.0  # last check from the peer on the selected pair (loop time)

    async def connect(self) -> None:
        """`Connection.connect` of a lite agent: wait for the peer to nominate a pair."""
        connection = self.connection
        # touches Connection._local_candidates_end, the flag stock connect() checks first
        if not connection._local_candidates_end:
            raise ConnectionError("Local candidates gathering was not performed")
        if connection.remote_username is None or connection.remote_password is None:
            raise ConnectionError("Remote username or password is missing")
        # touches Connection._early_checks(_done): checks answered before the remote
        # credentials were known are taken now, as stock connect() takes them
        for early_check in list(connection._early_checks):
            self.check_incoming(*early_check)
        connection._early_checks.clear()
        connection._early_checks_done = True
        # touches Connection._check_list_state (the queue stock connect() waits on, which
        # close() fails) and _check_list_done: a nomination completes it (check_incoming)
        try:
            result = await asyncio.wait_for(
                connection._check_list_state.get(), timeout=consent_window_s()
            )
        except TimeoutError:
            result = aioice.ice.ICE_FAILED
            connection._check_list_done = True
        if result != aioice.ice.ICE_COMPLETED:
            raise ConnectionError("ICE negotiation failed: the peer nominated no pair")
        # touches Connection._query_consent_task, which close() and an ICE restart cancel
        connection._query_consent_task = asyncio.create_task(self._keep_consent())

    def check_incoming(
        self, message: aioice.stun.Message, addr: tuple[str, int], protocol: aioice.ice.StunProtocol
    ) -> None:
        """An authenticated check the connection has answered: its pair is valid at once (a
        lite agent checks nothing itself); with USE-CANDIDATE, it is the selected pair."""
        connection = self.connection
        pair = self._pair(addr, protocol)
        pair.state = aioice.ice.CandidatePair.State.SUCCEEDED
        component = pair.component
        # touches Connection._nominated (component → CandidatePair), what sendto, recv and
        # `sfu.rtc.ice.nominated_datagram_transport` read as the selected pair
        selected = connection._nominated.get(component)
        if "USE-CANDIDATE" in message.attributes:
            pair.remote_nominated = pair.nominated = True
            connection._nominated[component] = pair
            if not connection._check_list_done:
                connection._check_list_done = True
                connection._check_list_state.put_nowait(aioice.ice.ICE_COMPLETED)
            elif selected is not pair and self.on_switch is not None:
                log.info("ICE-lite: the peer nominated another pair, %s", pair)
                self.on_switch()
            selected = pair
        if pair is selected:
            self.heard_at = asyncio.get_running_loop().time()

    def _pair(
        self, addr: tuple[str, int], protocol: aioice.ice.StunProtocol
    ) -> aioice.ice.CandidatePair:
        """The pair of `protocol` with the peer's address `addr` (a peer-reflexive remote
        candidate when first seen: remote candidates are learned from checks alone)."""
        connection = self.connection
        component = protocol.local_candidate.component
        # touches Connection._remote_candidates, _check_list and _find_pair (the pairs and
        # remote candidates getRemoteCandidates and an ICE restart read and reset)
        remote = next(
            (
                c
                for c in connection._remote_candidates
                if (c._network_host, c.port) == addr and c.component == component
            ),
            None,
        )
        if remote is None:
            remote = aioice.Candidate(
                foundation=aioice.utils.random_string(10),
                component=component,
                transport="udp",
                priority=aioice.candidate.candidate_priority(component, "prflx"),
                host=addr[0],
                port=addr[1],
                type="prflx",
            )
            connection._remote_candidates.append(remote)
        pair = connection._find_pair(protocol, remote)
        if pair is None:
            pair = aioice.ice.CandidatePair(protocol, remote)
            connection._check_list.append(pair)
        return pair

    async def add_remote_candidate(self, remote_candidate: aioice.Candidate | None) -> None:
        """`Connection.add_remote_candidate` of a lite agent: only end-of-candidates is kept."""
        if remote_candidate is None:
            # touches Connection._remote_candidates_end, as stock end-of-candidates sets it
            self.connection._remote_candidates_end = True

    async def _keep_consent(self) -> None:
        """Close the connection once the peer has sent no check on the selected pair for the
        consent window (RFC 7675 §5.1, seen from the side that sends no checks)."""
        loop = asyncio.get_running_loop()
        self.heard_at = loop.time()
        connection = self.connection
        while True:
            window_s = consent_window_s()
            await asyncio.sleep(min(window_s / 4, aioice.ice.CONSENT_INTERVAL))
            silent_s = loop.time() - self.heard_at
            if silent_s >= window_s:
                log.info("ICE consent expired: no check from the peer for %.0f s", silent_s)
                connection._query_consent_task = None
                await connection.close()
                return


def _lite_parameters(gatherer: RTCIceGatherer) -> RTCIceParameters:
    # aiortc's own getLocalParameters, saying ice-lite (createAnswer writes `a=ice-lite`)
    return RTCIceParameters(
        usernameFragment=gatherer._connection.local_username,
        password=gatherer._connection.local_password,
        iceLite=True,
    )


def ice_transports(pc: RTCPeerConnection) -> list[RTCIceTransport]:
    """The ICE transports under `pc`'s DTLS transports (media and data channels), once each."""
    dtls = {t.sender.transport for t in pc.getTransceivers() if t.sender.transport}
    if pc.sctp is not None:
        dtls.add(pc.sctp.transport)
    return list({id(d.transport): d.transport for d in dtls}.values())


def _dtls_switcher(pc: RTCPeerConnection, connection: aioice.Connection) -> Callable[[], None]:
    """What tells the senders on `connection` that ICE selected another pair."""

    def switch() -> None:
        # a "statechange" of the DTLS transport makes every DatagramPath on it unbind, so the
        # SFU's synchronous sends bind to the newly selected pair at their next packet (as
        # `sfu.rtc.ice.complete_ice_restart` does)
        dtls = {t.sender.transport for t in pc.getTransceivers() if t.sender.transport}
        for transport in dtls:
            if transport.transport._connection is connection:
                transport.emit("statechange")

    return switch


def make_lite(pc: RTCPeerConnection) -> int:
    """Make `pc`'s ICE transports lite agents; returns how many. Call it after the remote
    offer is applied and before `createAnswer`. A transport already controlling (the offer
    said ice-lite itself) keeps full ICE: two lite agents cannot connect."""
    made = 0
    for transport in ice_transports(pc):
        # touches RTCIceTransport._connection (the aioice Connection) and
        # RTCIceGatherer.getLocalParameters, shadowed on this gatherer only
        connection = transport._connection
        if connection.ice_controlling or is_lite(connection):
            continue
        lite = LiteIce(connection, on_switch=_dtls_switcher(pc, connection))
        # touches Connection._remote_candidates and _check_list: the offer's candidates and
        # their pairs (never checked here), dropped so that pairs come from checks alone
        connection._remote_candidates = []
        connection._check_list = []
        # shadows, on this connection only, what aiortc and aioice call on it: connect()
        # (RTCIceTransport.start, an ICE restart), check_incoming() (request_received, for
        # each authenticated check) and add_remote_candidate() (setRemoteDescription, trickle)
        connection.connect = lite.connect  # type: ignore[method-assign]
        connection.check_incoming = lite.check_incoming  # type: ignore[method-assign]
        connection.add_remote_candidate = lite.add_remote_candidate  # type: ignore[method-assign]
        gatherer = transport.iceGatherer
        gatherer.getLocalParameters = types.MethodType(_lite_parameters, gatherer)  # type: ignore[method-assign]
        made += 1
    return made


def is_lite(connection: aioice.Connection) -> bool:
    """Whether `make_lite` made this connection a lite agent."""
    method = connection.__dict__.get("connect")
    return isinstance(getattr(method, "__self__", None), LiteIce)
