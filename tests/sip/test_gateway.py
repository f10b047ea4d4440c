"""The gateway's SIP behaviour over real sockets: OPTIONS, refusals, retransmissions, TCP,
hostile and malformed input (no room system here: a raw socket speaks SIP)."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from confbridge.db import Database
from confbridge.signing import signer_for
from confbridge.sip.gateway import SipGateway
from confbridge.sip.message import SipMessage, parse
from tests.support.factories import make_settings

INVITES = Path(__file__).parent / "invites"


@pytest.fixture
async def gateway(database: Database, tmp_path: Path) -> AsyncIterator[SipGateway]:
    configured = make_settings(
        database.settings.database_url or "", tmp_path, sip={"rate_limit_per_source": 50}
    )
    running = SipGateway(configured, database, signer_for(configured.grant_key_path))
    await running.start("127.0.0.1", 0)
    yield running
    await running.close()


class Client:
    """A UDP socket that sends SIP text and reads what comes back."""

    def __init__(self, gateway: SipGateway) -> None:
        assert gateway.transport.udp_address is not None
        self.target = gateway.transport.udp_address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    async def responses(self, wait_s: float = 1.0) -> list[SipMessage]:
        loop = asyncio.get_running_loop()
        received: list[SipMessage] = []
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                await asyncio.sleep(0.02)
                continue
            received.append(parse(data))
        return received

    async def response(self, *, method: str | None = None, wait_s: float = 3.0) -> SipMessage:
        """The next final response (to `method`, if given)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            for message in await self.responses(0.1):
                if (message.status or 0) >= 200 and method in (None, message.cseq[1]):
                    return message
        raise AssertionError("no final response")


def request(
    method: str,
    port: int,
    *,
    uri: str = "sip:4412345@127.0.0.1",
    branch: str | None = None,
    call_id: str | None = None,
    extra: str = "",
    body: bytes = b"",
) -> bytes:
    branch = branch or f"z9hG4bK{random.getrandbits(48):x}"
    call_id = call_id or f"{random.getrandbits(64):x}"
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:probe@127.0.0.1>;tag=abc\r\nTo: <sip:4412345@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def test_options_is_answered_with_what_the_bridge_takes(gateway: SipGateway) -> None:
    client = Client(gateway)
    client.send(request("OPTIONS", client.port))
    answer = await client.response()
    assert answer.status == 200
    assert "INVITE" in (answer.get("Allow") or "")
    # RFC 3581: the response says where the request came from
    assert f"rport={client.port}" in answer.top_via
    assert "received=127.0.0.1" in answer.top_via


async def test_a_retransmission_gets_the_same_answer_and_is_handled_once(
    gateway: SipGateway,
) -> None:
    client = Client(gateway)
    data = request("OPTIONS", client.port, branch="z9hG4bKsame")
    client.send(data)
    first = await client.response()
    client.send(data)
    second = await client.response()
    assert first.get("To") == second.get("To")  # the same response, not a new one


@pytest.mark.parametrize(
    ("method", "extra", "status"),
    [
        ("REGISTER", "", 405),
        ("SUBSCRIBE", "", 405),
        ("FROBNICATE", "", 501),
        ("OPTIONS", "Max-Forwards: 0\r\n", 483),
        ("BYE", "", 481),
        ("INFO", "", 481),
    ],
)
async def test_requests_the_bridge_does_not_take_get_their_refusal(
    gateway: SipGateway, method: str, extra: str, status: int
) -> None:
    client = Client(gateway)
    data = request(method, client.port, extra=extra)
    if extra:  # the header replaces the default one
        data = data.replace(b"Max-Forwards: 70\r\n", b"", 1)
    client.send(data)
    answer = await client.response()
    assert answer.status == status, answer.reason


async def test_an_invite_to_no_meeting_is_refused_with_a_reason(gateway: SipGateway) -> None:
    client = Client(gateway)
    client.send(request("INVITE", client.port, uri="sip:7654321@127.0.0.1"))
    answer = await client.response()
    assert answer.status == 404
    assert "no meeting" in (answer.get("Warning") or "").lower()
    client.send(request("INVITE", client.port, uri="sip:reception@127.0.0.1"))
    assert (await client.response()).status == 404


async def test_malformed_datagrams_are_dropped_and_the_gateway_goes_on(
    gateway: SipGateway,
) -> None:
    client = Client(gateway)
    for junk in (b"\x00" * 100, b"INVITE sip:1@x SIP/2.0\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"):
        client.send(junk)
    assert await client.responses(0.3) == []
    assert gateway.malformed == 3
    client.send(request("OPTIONS", client.port))
    assert (await client.response(method="OPTIONS", wait_s=5)).status == 200


async def test_a_flood_from_one_address_is_cut_to_the_rate_limit(gateway: SipGateway) -> None:
    client = Client(gateway)
    for _ in range(400):
        client.send(request("OPTIONS", client.port))
    answered = [m for m in await client.responses(1.5) if m.status == 200]
    # 50 a second with bursts of 100: far fewer than 400 within a second and a half
    assert 50 <= len(answered) <= 200
    assert gateway.transport.limiter.dropped >= 50  # (the rest may not even reach the socket)


async def test_options_over_tcp_is_answered_on_the_same_connection(gateway: SipGateway) -> None:
    assert gateway.transport.tcp_address is not None
    reader, writer = await asyncio.open_connection(*gateway.transport.tcp_address)
    port = writer.get_extra_info("sockname")[1]
    writer.write(request("OPTIONS", port).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert head.startswith(b"SIP/2.0 200 OK")
    writer.close()


async def test_an_oversized_tcp_message_closes_the_connection(gateway: SipGateway) -> None:
    assert gateway.transport.tcp_address is not None
    reader, writer = await asyncio.open_connection(*gateway.transport.tcp_address)
    writer.write(b"OPTIONS sip:x SIP/2.0\r\nX: " + b"a" * 100_000)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
