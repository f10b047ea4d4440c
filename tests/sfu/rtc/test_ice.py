"""The aioice/aiortc ICE internals `sfu.rtc.ice` relies on, asserted one by one.

If aiortc or aioice is upgraded, these tests say exactly which private name, signature or call
moved; then port `sfu/rtc/ice.py` (and only `sfu/rtc/`).
"""

from __future__ import annotations

import asyncio
import inspect
import socket

import aioice
import aioice.ice
import aioice.stun
import aiortc
import pytest
from aiortc import RTCPeerConnection

import sfu.rtc.ice as ice
from sfu.rtc.ice import NoMediaPort, use_host_addresses, use_host_candidates
from tests.sfu.rtc.introspect import LOOPBACK_ONLY, negotiated_pair, parameters, source_of


def test_aioice_names() -> None:
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
async def test_use_host_addresses_gathers_only_those() -> None:
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
    assert aioice.ice.get_host_addresses is ice._stock_get_host_addresses


def test_host_candidate_hooks_exist() -> None:
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


def test_shared_port_hooks_exist() -> None:
    # sfu.rtc.udpmux subclasses StunProtocol and shadows get_component_candidates per connection
    assert parameters(aioice.ice.StunProtocol.request) == [
        "request",
        "addr",
        "integrity_key",
        "retransmissions",
    ]
    assert "self.transactions: dict[bytes, stun.Transaction] = {}" in source_of(
        aioice.ice.StunProtocol.__init__
    )
    assert "self.transport = cast(asyncio.DatagramTransport, transport)" in source_of(
        aioice.ice.StunProtocol.connection_made
    )
    assert "self.__closed.set_result(True)" in source_of(aioice.ice.StunProtocol.connection_lost)
    assert "self.transport.sendto(bytes(message), addr)" in source_of(
        aioice.ice.StunProtocol.send_stun
    )
    assert "self.get_component_candidates(component=component, addresses=addresses)" in (
        source_of(aioice.Connection.gather_candidates)
    )
    assert "self._local_candidates_start = True" in source_of(aioice.Connection.gather_candidates)
    assert "for protocol in self._protocols:\n            await protocol.close()" in source_of(
        aioice.Connection.close
    )
    assert "usernameFragment=self._connection.local_username" in source_of(
        aiortc.RTCIceGatherer.getLocalParameters
    )


def test_ice_restart_hooks_exist() -> None:
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


def test_ice_watch_hooks_exist() -> None:
    # aiortc's watch stops only at ConnectionClosed; aioice answers None once closed
    monitor = source_of(aiortc.RTCIceTransport._monitor)
    assert "event = await self._connection.get_event()" in monitor
    assert "if isinstance(event, ConnectionClosed):" in monitor
    get_event = source_of(aioice.Connection.get_event)
    assert "if self._closed:\n            return None" in get_event
    assert "self._closed = True" in source_of(aioice.Connection.close)


async def test_a_closed_connection_ends_the_ice_watch() -> None:
    """Closed before aiortc's watch first waited, the connection still tells it: closed."""
    client, server = await negotiated_pair()
    try:
        ice.end_ice_watch_on_close(server)
        (transport,) = ice.ice_transports(server)
        connection = transport._connection
        await connection.close()
        event = await asyncio.wait_for(connection.get_event(), 1)
        assert isinstance(event, aioice.ConnectionClosed)
        # the watch itself returns at once (it would spin without ever yielding otherwise)
        await asyncio.wait_for(transport._monitor(), 1)
    finally:
        await client.close()
        await server.close()


# aioice's own consent loop, as imported (a worker started in this process replaces it)
STOCK_QUERY_CONSENT = aioice.Connection.query_consent


def test_consent_loop_is_the_one_replaced() -> None:
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
async def test_host_candidates_announce_an_address_in_a_port_range() -> None:
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
    assert aioice.Connection.get_component_candidates is ice._stock_get_component_candidates


@pytest.mark.integration
async def test_host_candidates_port_range_connects_and_runs_out() -> None:
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


async def test_consent_expires_by_the_time_since_the_last_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.05)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 4)  # 0.2 s without an answer
    answers = iter([False, False, True])  # then never again
    loop = asyncio.get_running_loop()
    answered_at: list[float] = []

    class Protocol:
        async def request(self, *_args: object, **kwargs: object) -> None:
            assert kwargs["retransmissions"] == ice.CONSENT_RETRANSMISSIONS
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
    await asyncio.wait_for(ice._query_consent(connection), timeout=5)  # type: ignore[arg-type]
    # two unanswered checks did not expire it (0.1 s < 0.2 s); silence after the answer did
    assert connection.closed_at is not None and len(answered_at) == 1
    assert connection.closed_at - answered_at[0] >= 0.2
    assert connection._query_consent_task is None
