"""SIP over UDP, TCP and TLS (RFC 3261 §18) on asyncio, with a rate limit per source address.

A datagram is one message; over TCP/TLS messages are framed by Content-Length. Responses go
back the way the request came: over the same connection, or over UDP to the address the
request came from (RFC 3581 `rport`, which room systems behind NAT rely on).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from confbridge.sip.message import (
    MAX_BODY_BYTES,
    MAX_MESSAGE_BYTES,
    SipMessage,
    SipParseError,
    parse,
)
from confbridge.sip.metrics import GatewayMetrics

log = logging.getLogger(__name__)

STREAM_IDLE_TIMEOUT_S = 300.0
MAX_STREAM_CONNECTIONS = 200
CONNECT_TIMEOUT_S = 5.0
EPHEMERAL_ATTEMPTS = 10


@dataclass(frozen=True)
class Remote:
    """Where a message came from, and how to answer it."""

    transport: str  # "UDP", "TCP" or "TLS"
    host: str
    port: int
    writer: asyncio.StreamWriter | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.transport, self.host, self.port)


MessageHandler = Callable[[SipMessage, Remote], None]
BadMessageHandler = Callable[[bytes, SipParseError, Remote], None]


class RateLimiter:
    """A token bucket per source host: `rate` messages a second, bursts of twice that."""

    def __init__(self, rate: int, *, max_sources: int = 10_000) -> None:
        self.rate = float(rate)
        self.burst = float(rate * 2)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max_sources = max_sources
        self.dropped = 0

    def allow(self, host: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(host, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[host] = (tokens, now)
            self.dropped += 1
            return False
        if host not in self._buckets and len(self._buckets) >= self._max_sources:
            # a flood from many addresses: forget the fullest buckets (they were idle)
            self._buckets = {h: b for h, b in self._buckets.items() if b[0] < self.burst}
        self._buckets[host] = (tokens - 1.0, now)
        return True


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        remote = Remote("UDP", str(addr[0]), int(addr[1]))
        self.owner.received(data, remote)


class SipTransport:
    """The listening sockets; hands each well-formed message to `on_message`."""

    def __init__(
        self,
        on_message: MessageHandler,
        on_bad_message: BadMessageHandler,
        *,
        rate_per_source: int,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.on_message = on_message
        self.on_bad_message = on_bad_message
        self.limiter = RateLimiter(rate_per_source)
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self._udp: _Datagrams | None = None
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.StreamWriter] = set()
        self._outgoing: dict[tuple[str, str, int], Remote] = {}
        self._readers: set[asyncio.Task[None]] = set()
        self.udp_address: tuple[str, int] | None = None
        self.tcp_address: tuple[str, int] | None = None
        self.tls_address: tuple[str, int] | None = None

    async def start(
        self,
        host: str,
        port: int,
        *,
        tls: tuple[str, int, ssl.SSLContext] | None = None,
    ) -> None:
        # An ephemeral UDP port may already be taken for TCP (an outgoing connection's local
        # port): with port 0, pick another one instead of failing.
        attempts = EPHEMERAL_ATTEMPTS if port == 0 else 1
        for attempt in range(attempts):
            udp = await self._bind_udp(host, port)
            try:
                # TCP on the same port as UDP (the port a room system is given)
                tcp = await asyncio.start_server(self._serve_stream("TCP"), host, udp[1])
                break
            except OSError as error:
                self._udp.transport.close()  # type: ignore[union-attr]
                if error.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
        self._servers.append(tcp)
        self.tcp_address = tcp.sockets[0].getsockname()[:2]
        if tls is not None:
            tls_host, tls_port, context = tls
            server = await asyncio.start_server(
                self._serve_stream("TLS"), tls_host, tls_port, ssl=context
            )
            self._servers.append(server)
            self.tls_address = server.sockets[0].getsockname()[:2]

    async def _bind_udp(self, host: str, port: int) -> tuple[str, int]:
        transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Datagrams(self), local_addr=(host, port)
        )
        self._udp = protocol
        self.udp_address = transport.get_extra_info("sockname")[:2]
        return self.udp_address

    async def close(self) -> None:
        if self._udp and self._udp.transport:
            self._udp.transport.close()
        for server in self._servers:
            server.close()
        for writer in list(self._connections):
            writer.close()
        for reader in self._readers:
            reader.cancel()
        for server in self._servers:
            await server.wait_closed()

    async def connect(self, transport: str, host: str, port: int) -> Remote:
        """Where to send a request of ours: UDP from the listening socket (so answers come
        back to it), or a TCP/TLS connection we open and read like an accepted one."""
        transport = transport.upper()
        if transport == "UDP":
            return Remote("UDP", host, port)
        key = (transport, host, port)
        known = self._outgoing.get(key)
        if known is not None and known.writer is not None and not known.writer.is_closing():
            return known
        context = ssl.create_default_context() if transport == "TLS" else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), timeout=CONNECT_TIMEOUT_S
        )
        remote = Remote(transport, host, port, writer)
        self._outgoing[key] = remote
        self._connections.add(writer)

        read = self._read_connection(reader, remote, forget=key)
        self._readers.add(asyncio.get_running_loop().create_task(read))
        return remote

    def received(self, data: bytes, remote: Remote, *, stream: bool = False) -> None:
        if not self.limiter.allow(remote.host):
            self.metrics.drop("rate_limited")
            return
        if not data.strip():
            return  # keep-alive (RFC 5626 CRLF)
        try:
            message = parse(data, stream=stream)
        except SipParseError as exc:
            self.metrics.drop("malformed")
            self.on_bad_message(data, exc, remote)
            return
        self.metrics.message(message, "in")
        self.on_message(message, remote)

    def send(self, message: SipMessage, remote: Remote) -> None:
        self.metrics.message(message, "out")
        data = message.encode()
        if remote.writer is not None:
            if not remote.writer.is_closing():
                remote.writer.write(data)
            return
        if self._udp and self._udp.transport:
            self._udp.transport.sendto(data, (remote.host, remote.port))

    def _serve_stream(
        self, kind: str
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if len(self._connections) >= MAX_STREAM_CONNECTIONS:
                writer.close()
                return
            peer = writer.get_extra_info("peername")
            self._connections.add(writer)
            await self._read_connection(reader, Remote(kind, str(peer[0]), int(peer[1]), writer))

        return serve

    async def _read_connection(
        self,
        reader: asyncio.StreamReader,
        remote: Remote,
        *,
        forget: tuple[str, str, int] | None = None,
    ) -> None:
        """Read messages until the connection ends (or breaks the limits), then close it."""
        assert remote.writer is not None
        try:
            await self._read_stream(reader, remote)
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ssl.SSLError,
            TimeoutError,
        ):
            pass
        finally:
            self._connections.discard(remote.writer)
            if forget is not None:
                self._outgoing.pop(forget, None)
            remote.writer.close()

    async def _read_stream(self, reader: asyncio.StreamReader, remote: Remote) -> None:
        while True:
            head = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), timeout=STREAM_IDLE_TIMEOUT_S
            )
            if len(head) > MAX_MESSAGE_BYTES:
                return
            if not head.strip():
                continue
            length = _content_length(head)
            if length is None or length > MAX_BODY_BYTES:
                self.received(head, remote, stream=True)  # answered 400, then closed
                return
            body = await reader.readexactly(length) if length else b""
            self.received(head + body, remote, stream=True)


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            text = value.strip()
            return int(text) if text.isdigit() and len(text) <= 6 else None
    return None
