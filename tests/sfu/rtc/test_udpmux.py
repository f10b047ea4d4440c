"""Single-port mode: peer connections of one process on one UDP socket (`sfu.rtc.udpmux`),
routed by the STUN USERNAME's local ufrag, then by the remote address."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import aioice.stun
import pytest
from aiortc.sdp import candidate_from_sdp

from sfu.rtc.ice import (
    begin_ice_restart,
    close_shared_port,
    complete_ice_restart,
    open_shared_port,
    use_host_addresses,
)
from sfu.rtc.sendmmsg import BatchSender
from sfu.rtc.udpmux import SharedUdpPort, _binding_username
from tests.sfu.rtc.shared_pairs import Pair, binding_request

pytestmark = pytest.mark.integration

REPLY_WAIT_S = 0.5


@pytest.fixture(params=[True, False], ids=["lite", "full"])
async def shared(request: pytest.FixtureRequest) -> AsyncIterator[SharedUdpPort]:
    """The shared port, its connections ICE-lite agents (the worker's default) or full ones."""
    use_host_addresses(["127.0.0.1"])
    port = await open_shared_port("127.0.0.1", 0, ice_lite=request.param)
    yield port
    close_shared_port()
    use_host_addresses(None)


@pytest.fixture
def raw() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(REPLY_WAIT_S)
    yield sock
    sock.close()


async def reply(sock: socket.socket) -> bytes | None:
    try:
        return await asyncio.to_thread(sock.recv, 2048)
    except TimeoutError:
        return None


async def test_udpmux_peers_share_one_port_and_each_gets_its_own_data(
    shared: SharedUdpPort, pairs: list[Pair]
) -> None:
    for _ in range(3):
        pairs.append(Pair())
        await pairs[-1].connect()
    assert {port for pair in pairs for port in pair.server_candidate_ports()} == {
        shared.sockname[1]
    }
    assert len({pair.server_ufrag() for pair in pairs}) == 3
    for index, pair in enumerate(pairs):
        await pair.roundtrip(f"to server {index}")
    # each client's address is bound to its own connection
    assert {pair.client_address() for pair in pairs} <= set(shared.by_address)
    assert len(shared.by_ufrag) == 3


async def test_udpmux_request_with_unknown_ufrag_is_ignored(
    shared: SharedUdpPort, pairs: list[Pair], raw: socket.socket
) -> None:
    pairs.append(Pair())
    await pairs[0].connect()
    drops = dict(shared.drops)
    raw.sendto(binding_request("nobody12:abcd", "x" * 22), shared.sockname)
    assert await reply(raw) is None  # no answer at all, not even an error
    raw.sendto(b"\x80\x60" + bytes(30), shared.sockname)  # RTP from an unknown address
    await asyncio.sleep(0.1)
    assert shared.drops == {
        **drops,
        "unknown_ufrag": drops["unknown_ufrag"] + 1,
        "unknown_address": drops["unknown_address"] + 1,
    }
    assert raw.getsockname() not in shared.by_address
    await pairs[0].roundtrip("still served")


async def test_udpmux_forged_request_does_not_bind_its_address(
    shared: SharedUdpPort, pairs: list[Pair], raw: socket.socket
) -> None:
    pairs.append(Pair())
    await pairs[0].connect()
    # the right ufrag, the wrong password: the connection answers 401, the address stays free
    raw.sendto(binding_request(f"{pairs[0].server_ufrag()}:abcd", "y" * 22), shared.sockname)
    answer = await reply(raw)
    assert answer is not None
    assert aioice.stun.parse_message(answer).error_code == 401
    assert raw.getsockname() not in shared.by_address
    assert shared.drops["integrity"] == 1


async def test_udpmux_closed_peer_is_unregistered(
    shared: SharedUdpPort, pairs: list[Pair], raw: socket.socket
) -> None:
    for _ in range(2):
        pairs.append(Pair())
        await pairs[-1].connect()
    gone, staying = pairs
    ufrag, address = gone.server_ufrag(), gone.client_address()
    assert shared.by_address[address].ufrag == ufrag
    await gone.server.close()
    assert ufrag not in shared.by_ufrag
    assert address not in shared.by_address
    raw.sendto(binding_request(f"{ufrag}:abcd", "x" * 22), shared.sockname)
    assert await reply(raw) is None
    await staying.roundtrip("the other peer goes on")


async def test_udpmux_ice_restart_routes_the_new_ufrag(
    shared: SharedUdpPort, pairs: list[Pair]
) -> None:
    pairs.append(Pair())
    pair = pairs[0]
    await pair.connect()
    old_ufrag = pair.server_ufrag()
    server = begin_ice_restart(pair.server)
    client = begin_ice_restart(pair.client)
    assert server.ufrag != old_ufrag
    assert server.ufrag in shared.by_ufrag and old_ufrag not in shared.by_ufrag
    checks = [
        await complete_ice_restart(
            pc,
            remote_ufrag=remote.ufrag,
            remote_pwd=remote.pwd,
            remote_candidates=[candidate_from_sdp(c) for c in remote.candidates],
            end_of_candidates=True,
        )
        for pc, remote in ((pair.server, client), (pair.client, server))
    ]
    await asyncio.wait_for(asyncio.gather(*checks), 10)
    await pair.roundtrip("after the restart")


def test_udpmux_reads_the_username_of_binding_requests_only() -> None:
    assert _binding_username(binding_request("abcd1234:wxyz", "p" * 22)) == "abcd1234:wxyz"
    response = aioice.stun.Message(
        message_method=aioice.stun.Method.BINDING, message_class=aioice.stun.Class.RESPONSE
    )
    assert _binding_username(bytes(response)) is None
    assert _binding_username(b"\x00\x01" + bytes(10)) is None  # too short
    assert _binding_username(b"\x80\x60" + bytes(30)) is None  # RTP


class _Fallback:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent: list[bytes] = []
        self.buffered = 0

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append(data)
        self.sock.sendto(data, addr)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return False


async def test_sendmmsg_batches_keep_order_per_receiver() -> None:
    loop = asyncio.get_running_loop()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receivers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        sender.bind(("127.0.0.1", 0))
        sender.setblocking(False)
        for receiver in receivers:
            receiver.bind(("127.0.0.1", 0))
            receiver.settimeout(2)
        fallback = _Fallback(sender)
        batch = BatchSender.create(sender, fallback, loop)
        if batch is None:
            pytest.skip("no sendmmsg on this platform")
        count = 150  # more than one full batch
        for index in range(count):
            for receiver in receivers:
                batch.add(index.to_bytes(2, "big") * (1 + index % 50), receiver.getsockname())
        batch.add(b"j" * 3000, receivers[0].getsockname())  # too large for a slot: sendto
        await asyncio.sleep(0)  # the loop turns: the last batch leaves
        for receiver in receivers:
            got = [receiver.recv(4096) for _ in range(count)]
            assert [int.from_bytes(g[:2], "big") for g in got] == list(range(count))
        assert receivers[0].recv(4096) == b"j" * 3000
        assert fallback.sent == [b"j" * 3000]
        assert batch.datagrams == 2 * count and batch.batches <= 2 * count // 64 + 2
        # behind datagrams asyncio holds, a batch goes through the fallback, in order
        fallback.buffered = 1
        batch.add(b"late", receivers[1].getsockname())
        batch.flush()
        assert fallback.sent[-1] == b"late"
        assert receivers[1].recv(4096) == b"late"
    finally:
        for sock in (sender, *receivers):
            sock.close()


def _srtp_sessions() -> tuple[object, object]:
    """Two sending sessions with one key: one for the batch, one for reference."""
    from pylibsrtp import Policy, Session

    def session(kind: int) -> Session:
        policy = Policy(
            key=bytes(range(28)), ssrc_type=kind, srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM
        )
        return Session(policy)

    return session(Policy.SSRC_ANY_OUTBOUND), session(Policy.SSRC_ANY_OUTBOUND)


async def test_sendmmsg_protects_in_place_what_srtp_would_send() -> None:
    """`add_srtp` queues exactly what `Session.protect` makes of header + payload, to the
    right receiver also when slots change hands between viewers; what it refuses is not
    queued."""
    loop = asyncio.get_running_loop()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receivers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        sender.bind(("127.0.0.1", 0))
        sender.setblocking(False)
        for receiver in receivers:
            receiver.bind(("127.0.0.1", 0))
            receiver.settimeout(2)
        batch = BatchSender.create(sender, _Fallback(sender), loop)
        if batch is None:
            pytest.skip("no sendmmsg on this platform")
        fast, reference = _srtp_sessions()
        srtp = fast._srtp[0]  # type: ignore[attr-defined]
        addrs = [r.getsockname() for r in receivers]
        names = [batch.sockaddr_for(addr) for addr in addrs]
        assert batch.sockaddr_for(("not an address", 1)) is None
        expected: list[list[bytes]] = [[], [], []]
        for seq in range(100):
            # a varying number of viewers per fan-out: slot i serves different receivers
            for viewer in range(1 + seq % 3):
                header = bytes((0x80, 96)) + seq.to_bytes(2, "big") + bytes(4)
                header += (viewer + 1).to_bytes(4, "big")
                payload = bytes((seq + viewer) % 256 for _ in range(100 + seq))
                name = names[viewer]
                assert name is not None
                assert batch.add_srtp(header, payload, srtp, name, addrs[viewer])
                expected[viewer].append(reference.protect(header + payload))  # type: ignore[attr-defined]
            if seq % 7 == 0:
                await asyncio.sleep(0)  # the loop turns: a partial batch leaves
        await asyncio.sleep(0)
        queued = batch.datagrams
        name = names[0]
        assert name is not None
        assert not batch.add_srtp(bytes(12), bytes(1900), srtp, name, addrs[0])  # too large
        await asyncio.sleep(0)
        assert batch.datagrams == queued == sum(len(e) for e in expected)
        for receiver, sent in zip(receivers, expected, strict=True):
            got = [receiver.recv(4096) for _ in sent]
            assert got == sent
    finally:
        for sock in (sender, *receivers):
            sock.close()


async def test_udpmux_port_taken_is_an_os_error(shared: SharedUdpPort) -> None:
    with pytest.raises(OSError):
        await SharedUdpPort.open("127.0.0.1", shared.sockname[1])
