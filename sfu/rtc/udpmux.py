"""One UDP socket for every ICE connection of a worker (single-port mode).

`SharedUdpPort` binds one socket; each aioice `Connection` that gathers on it gets a
`SharedPortProtocol` (aioice's `StunProtocol` whose transport sends through the shared socket)
and one host candidate on the shared port. Incoming datagrams are routed as mediasoup's
WebRtcServer and LiveKit's UDP mux route them:

- a STUN binding request by its USERNAME (`local ufrag:remote ufrag`) to the connection whose
  local ufrag it names; once MESSAGE-INTEGRITY checks out with that connection's password,
  the source address is bound to it (a forged request cannot steal another peer's address);
- a STUN response by its transaction id, to the connection that sent the request (an answer to
  the worker's own check can come before the peer's first request);
- anything else (DTLS, SRTP, SRTCP) by its source address; from an unknown address it is dropped.

What reaches no connection is counted by reason (`DROP_REASONS`, the worker's /metrics).

A remote address belongs to one connection at a time (the latest whose check authenticated
from it): a peer must not run several sessions with the worker from one socket, which browsers
and aiortc never do (and the worker's own cascade sessions to other nodes use sockets of their
own). A connection's ufrag and addresses are forgotten when it closes; an ICE restart renames its
ufrag (`rename`). The socket is read in a loop until it is empty (one wake-up for a burst, into
a reused buffer), and sends can be batched with sendmmsg(2) (`sfu.rtc.sendmmsg`).

Each access to an aioice internal carries a comment naming what it touches and why.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

import aioice
import aioice.candidate
import aioice.ice
import aioice.stun
import aioice.utils

from sfu.rtc.sendmmsg import BatchSender

log = logging.getLogger(__name__)

SHARED_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
"""SO_RCVBUF and SO_SNDBUF of the shared socket (the kernel caps them at rmem_max/wmem_max):
every peer's bursts queue in this one socket."""
RECEIVE_BUFFER_BYTES = 65536  # the largest UDP payload
MAX_READS_PER_WAKEUP = 256  # then the event loop gets its turn again
UFRAG_LENGTH = 8
"""Local ufrags made here are longer than aioice's 4 characters: they must be unique among all
the worker's connections, and a clash is then vanishingly rare (it is checked anyway)."""

_STUN_HEADER = 20
_STUN_COOKIE = b"\x21\x12\xa4\x42"
_USERNAME = 0x0006


DROP_REASONS = ("unknown_address", "unknown_ufrag", "integrity")
"""Why a datagram reached no connection: DTLS, SRTP or a STUN response from an address no
check bound; a binding request naming no session's ufrag (no answer at all); a binding request
whose MESSAGE-INTEGRITY fails with the session's password (answered 401 by the session, and its
address not bound)."""


def host_candidate(host: str, port: int, component: int) -> aioice.Candidate:
    """A UDP host candidate for `host:port`, made the way aioice makes its own."""
    return aioice.Candidate(
        foundation=aioice.candidate.candidate_foundation("host", "udp", host),
        component=component,
        transport="udp",
        priority=aioice.candidate.candidate_priority(component, "host"),
        host=host,
        port=port,
        type="host",
    )


class UfragInUse(OSError):
    """Another connection on the shared port already has this local ufrag."""


def _binding_username(data: bytes) -> str | None:
    """The USERNAME of a STUN binding request, or None if `data` is not one."""
    if len(data) < _STUN_HEADER or data[0] != 0 or data[1] != 1 or data[4:8] != _STUN_COOKIE:
        return None
    end = min(len(data), _STUN_HEADER + int.from_bytes(data[2:4], "big"))
    offset = _STUN_HEADER
    while offset + 4 <= end:
        kind, length = struct.unpack_from("!HH", data, offset)
        if kind == _USERNAME:
            return data[offset + 4 : offset + 4 + length].decode("utf8", "replace")
        offset += 4 + length + (-length % 4)
    return None


def _is_stun_response(data: bytes) -> bool:
    # success (0x01 0x01) or error (0x01 0x11) response, with the magic cookie
    return len(data) >= _STUN_HEADER and data[0] == 1 and data[4:8] == _STUN_COOKIE


def _drop(data: bytes, addr: tuple[str, int]) -> None:
    """What a closed connection's transport sends with: nothing."""


class SharedPortTransport(asyncio.DatagramTransport):
    """The transport a connection's protocol sends through: the shared socket.

    `sendto` is the shared port's own send (no extra call per packet); after `close()` it drops.
    `batch` is the port's `BatchSender` while sends are batched and the transport is open
    (None otherwise): the forwarding path queues SRTP packets there directly.
    """

    def __init__(self, port: SharedUdpPort, protocol: SharedPortProtocol) -> None:
        super().__init__()
        self._port = port
        self._protocol = protocol
        self._closing = False
        self.sendto: Callable[[bytes, tuple[str, int]], None] = port.sendto  # type: ignore[method-assign,assignment]
        # the egress reads it before every packet: the socket's backlog, without a call more
        self.get_write_buffer_size: Callable[[], int] = port.write_buffer_size  # type: ignore[method-assign]
        self.batch: BatchSender | None = port.batch
        # what get_write_buffer_size() reads, for the forwarding path to read without a call
        self.socket_sender: SocketSender = port.socket_sender

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.sendto = _drop  # type: ignore[method-assign]
        self.batch = None
        self._port.detach(self._protocol)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closing or self._port.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self._port.sockname
        return default


# touches aioice.ice.StunProtocol: a subclass, so that aioice's STUN handling (requests,
# transactions, data to the connection) is unchanged and only the socket is shared
class SharedPortProtocol(aioice.ice.StunProtocol):
    """One connection's view of the shared port."""

    def __init__(self, connection: aioice.Connection, port: SharedUdpPort) -> None:
        super().__init__(connection)
        self.shared_port = port
        self.ufrag = ""
        self.addresses: set[tuple[str, int]] = set()
        self.connection_made(SharedPortTransport(port, self))

    async def request(
        self,
        request: aioice.stun.Message,
        addr: tuple[str, int],
        integrity_key: bytes | None = None,
        retransmissions: int | None = None,
    ) -> tuple[aioice.stun.Message, tuple[str, int]]:
        """aioice's STUN transaction; its response is routed here by transaction id."""
        transactions = self.shared_port.transactions
        transactions[request.transaction_id] = self
        try:
            return await super().request(request, addr, integrity_key, retransmissions)
        finally:
            transactions.pop(request.transaction_id, None)


class SocketSender:
    """`sendto` on the shared socket; what the socket refuses (EAGAIN) waits here, in order,
    and leaves when it is writable (as in asyncio's datagram transport)."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self._sock = sock
        self._loop = loop
        self._queue: collections.deque[tuple[bytes, tuple[str, int]]] = collections.deque()
        self.queued_bytes = 0
        self._closed = False

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._queue:
            self._enqueue(data, addr)
            return
        try:
            self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._enqueue(data, addr)
            self._loop.add_writer(self._sock.fileno(), self._write_ready)
        except OSError as exc:  # e.g. an unreachable address: this datagram is lost
            log.debug("shared media socket: cannot send to %s: %s", addr, exc)

    def _enqueue(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._closed:
            return
        self._queue.append((data, addr))
        self.queued_bytes += len(data)

    def _write_ready(self) -> None:
        while self._queue:
            data, addr = self._queue[0]
            try:
                self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("shared media socket: cannot send to %s: %s", addr, exc)
            self._queue.popleft()
            self.queued_bytes -= len(data)
        self._loop.remove_writer(self._sock.fileno())

    def get_write_buffer_size(self) -> int:
        """Bytes the socket refused for now, waiting to be sent (a batch about to leave at the
        next turn of the event loop is not a backlog)."""
        return self.queued_bytes

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._queue:
                self._loop.remove_writer(self._sock.fileno())
            self._queue.clear()
            self.queued_bytes = 0


class SharedUdpPort:
    """The worker's one media socket and the ICE connections demultiplexed on it."""

    def __init__(
        self,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        *,
        announced_address: str | None,
        announced_port: int | None,
        batch: bool,
    ) -> None:
        self.sock = sock
        self.sockname: tuple[str, int] = sock.getsockname()[:2]
        self.announced_address = announced_address
        self.announced_port = announced_port
        self.closed = False
        self.by_ufrag: dict[str, SharedPortProtocol] = {}
        self.by_address: dict[tuple[str, int], SharedPortProtocol] = {}
        self.transactions: dict[bytes, SharedPortProtocol] = {}
        # datagrams not delivered, by reason (DROP_REASONS); a worker's /metrics shows them
        self.drops: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        # connections attached from now on answer as ICE-lite agents (`sfu.rtc.icelite`)
        self.ice_lite = False
        self._loop = loop
        self._buffer = bytearray(RECEIVE_BUFFER_BYTES)
        self._view = memoryview(self._buffer)
        self.socket_sender = SocketSender(sock, loop)
        self.batch = BatchSender.create(sock, self.socket_sender, loop) if batch else None
        self.sendto: Callable[[bytes, tuple[str, int]], None] = (
            self.batch.add if self.batch is not None else self.socket_sender.sendto
        )
        self.write_buffer_size: Callable[[], int] = self.socket_sender.get_write_buffer_size
        # datagrams are read in a loop until the socket is empty, into one reused buffer,
        # rather than one per event-loop turn into a fresh 256 KiB one (asyncio's reader)
        loop.add_reader(sock.fileno(), self._read_ready)

    @classmethod
    async def open(
        cls,
        address: str,
        port: int,
        *,
        announced_address: str | None = None,
        announced_port: int | None = None,
        batch: bool = True,
    ) -> SharedUdpPort:
        """Bind `address:port` (port 0: one the system picks); OSError if it is taken."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, option, SHARED_SOCKET_BUFFER_BYTES)
            sock.bind((address, port))
        except OSError:
            sock.close()
            raise
        shared = cls(
            sock,
            asyncio.get_running_loop(),
            announced_address=announced_address,
            announced_port=announced_port,
            batch=batch,
        )
        log.info(
            "media of every peer on UDP %s:%d%s",
            *shared.sockname,
            " (sends batched with sendmmsg)" if shared.batch is not None else "",
        )
        return shared

    def _read_ready(self) -> None:
        sock = self.sock
        buffer, view = self._buffer, self._view
        route = self.route
        for _ in range(MAX_READS_PER_WAKEUP):
            try:
                size, addr = sock.recvfrom_into(buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. an ICMP error reported on the socket
                log.debug("shared media socket: %s", exc)
                continue
            route(bytes(view[:size]), (addr[0], addr[1]))

    # routing

    def route(self, data: bytes, addr: tuple[str, int]) -> None:
        """Hand one datagram to the connection it belongs to (or drop it)."""
        first = data[0] if data else 255
        if first < 2:  # STUN (RFC 7983)
            self._route_stun(data, addr)
            return
        protocol = self.by_address.get(addr)
        if protocol is None:
            self.drops["unknown_address"] += 1
            return
        protocol.datagram_received(data, addr)

    @property
    def dropped(self) -> int:
        """Datagrams not delivered, whatever the reason."""
        return sum(self.drops.values())

    def _route_stun(self, data: bytes, addr: tuple[str, int]) -> None:
        if _is_stun_response(data):
            protocol = self.transactions.get(data[8:20]) or self.by_address.get(addr)
            if protocol is None:
                self.drops["unknown_address"] += 1
                return
        else:
            protocol = self._binding_request_target(data, addr)
            if protocol is None:
                return  # counted where the reason is known
        protocol.datagram_received(data, addr)

    def _binding_request_target(
        self, data: bytes, addr: tuple[str, int]
    ) -> SharedPortProtocol | None:
        username = _binding_username(data)
        if username is None:
            protocol = self.by_address.get(addr)
            if protocol is None:
                self.drops["unknown_address"] += 1
            return protocol
        protocol = self.by_ufrag.get(username.partition(":")[0])
        if protocol is None:
            self.drops["unknown_ufrag"] += 1
            return None  # not a peer of this worker: no answer at all
        if self.by_address.get(addr) is not protocol:
            if self._authentic(data, protocol):
                self._bind_address(protocol, addr)
            else:
                self.drops["integrity"] += 1  # the session answers 401; the address stays free
        return protocol

    @staticmethod
    def _authentic(data: bytes, protocol: SharedPortProtocol) -> bool:
        try:
            message = aioice.stun.parse_message(data)
        except ValueError:
            return False
        # touches Connection.local_password (public) through StunProtocol.receiver
        password = protocol.receiver.local_password.encode("utf8")
        return message.check_message_integrity(password)

    def _bind_address(self, protocol: SharedPortProtocol, addr: tuple[str, int]) -> None:
        previous = self.by_address.get(addr)
        if previous is not None:
            previous.addresses.discard(addr)
        self.by_address[addr] = protocol
        protocol.addresses.add(addr)

    # connections

    def attach(self, connection: aioice.Connection, component: int) -> SharedPortProtocol:
        """A protocol (with its host candidate) for `connection` on this port, routed by the
        connection's current local ufrag; UfragInUse if another connection has it."""
        if self.closed:
            raise OSError("the shared media port is closed")
        ufrag = connection.local_username
        if ufrag in self.by_ufrag:
            raise UfragInUse(f"ICE ufrag {ufrag!r} is already in use on the shared port")
        protocol = SharedPortProtocol(connection, self)
        host = self.announced_address or self.sockname[0]
        port = self.announced_port or self.sockname[1]
        protocol.local_candidate = host_candidate(host, port, component)
        protocol.ufrag = ufrag
        self.by_ufrag[ufrag] = protocol
        return protocol

    def detach(self, protocol: SharedPortProtocol) -> None:
        """Forget `protocol`'s ufrag, addresses and transactions; it sees its connection lost."""
        if self.by_ufrag.get(protocol.ufrag) is protocol:
            del self.by_ufrag[protocol.ufrag]
        for addr in protocol.addresses:
            if self.by_address.get(addr) is protocol:
                del self.by_address[addr]
        protocol.addresses.clear()
        for transaction_id in list(protocol.transactions):
            self.transactions.pop(transaction_id, None)
        protocol.connection_lost(None)

    def unused_ufrag(self) -> str:
        """A local ufrag no connection on this port has."""
        while True:
            ufrag = aioice.utils.random_string(UFRAG_LENGTH)
            if ufrag not in self.by_ufrag:
                return ufrag

    def rename(self, protocol: SharedPortProtocol, ufrag: str) -> None:
        """Route requests naming `ufrag` to `protocol` from now on (an ICE restart)."""
        if self.by_ufrag.get(ufrag, protocol) is not protocol:
            raise UfragInUse(f"ICE ufrag {ufrag!r} is already in use on the shared port")
        if self.by_ufrag.get(protocol.ufrag) is protocol:
            del self.by_ufrag[protocol.ufrag]
        protocol.ufrag = ufrag
        self.by_ufrag[ufrag] = protocol

    # sending

    def close(self) -> None:
        """Close the socket; every connection on it is detached."""
        if self.closed:
            return
        for protocol in list(self.by_ufrag.values()):
            protocol.transport.close()
        if self.batch is not None:
            self.batch.flush()
        self.closed = True
        self.socket_sender.close()
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


def shared_port_candidates(
    port: SharedUdpPort,
) -> Callable[..., Any]:
    """A `get_component_candidates` for one aioice Connection: its one host candidate is on
    the shared port (no socket of its own, no STUN or TURN candidates: the worker's media
    address is configured, not discovered)."""

    async def get_component_candidates(
        self: aioice.Connection, component: int, addresses: list[str], timeout: int = 5
    ) -> list[aioice.Candidate]:
        protocol = port.attach(self, component)
        # touches Connection._protocols, the list aioice pairs, sends and closes through
        self._protocols.append(protocol)
        return [protocol.local_candidate]

    return get_component_candidates
