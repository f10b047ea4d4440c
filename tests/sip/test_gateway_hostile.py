"""The SIP gateway against hostile callers, over real sockets beside a running stack (a
meeting on now, its SFU worker): mangled INVITEs of real room systems (hypothesis), an INVITE
flood from one address, sipvicious' `svmap` and `svwar`, and a PIN dial-in whose PIN no log
line carries. Nobody reaches the meeting without the PIN, and the gateway never stops
answering."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from confbridge.meetings.models import Occurrence
from confbridge.signing import signer_for
from confbridge.sip.gateway import SipGateway
from confbridge.sip.headers import parse_name_addr
from confbridge.sip.message import SipMessage, SipParseError, parse
from confbridge_kernel.sip_legs import SIP_LEGS_PATH
from tests.support.polling import eventually, until
from tests.support.servers import Stack, free_port
from tests.support.sip_calls import Bridge, sites_in_room

INVITES = sorted((Path(__file__).parent / "invites").glob("*.sip"))
RECORDED_NUMBER = b"4412345"
PROBE_HOST = "127.0.0.2"  # the rate limit counts per address: the probe is another source
MAX_DATAGRAM = 65_000  # what one UDP datagram over loopback can carry, with room to spare
ANSWER_TIMEOUT_S = 20.0  # admission and the worker's leg, on two shared cores
OK_METHODS = {"OPTIONS", "CANCEL", "INVITE"}  # a 2xx to anything else would be a leak


# -- a raw SIP socket ----------------------------------------------------------------------


class SipSocket:
    """A UDP socket on `host` that sends bytes to the gateway and parses what comes back (a
    datagram from the gateway that does not parse fails the test)."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.host, self.port = self.sock.getsockname()[:2]
        self.received: list[SipMessage] = []

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def _read(self) -> list[SipMessage]:
        messages = []
        while True:
            try:
                data = self.sock.recv(65_535)
            except BlockingIOError:
                break
            messages.append(parse(data))
        self.received += messages
        return messages

    async def until(
        self, matches: Callable[[SipMessage], bool], wait_s: float
    ) -> SipMessage | None:
        """The first message that `matches` within `wait_s`, else None."""
        deadline = time.monotonic() + wait_s
        while True:
            for message in self._read():
                if matches(message):
                    return message
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.01)

    async def final(self, cseq_method: str, wait_s: float = ANSWER_TIMEOUT_S) -> SipMessage:
        answer = await self.until(lambda m: _is_final(m, cseq_method), wait_s)
        assert answer is not None, f"no final response to {cseq_method} in {wait_s} s"
        return answer

    def close(self) -> None:
        self.sock.close()


def _is_final(message: SipMessage, cseq_method: str) -> bool:
    return (message.status or 0) >= 200 and message.cseq[1] == cseq_method


def sip_request(
    method: str,
    sock: SipSocket,
    uri: str,
    *,
    call_id: str | None = None,
    cseq: int = 1,
    from_: str = "<sip:scanner@example.org>;tag=x1",
    to: str | None = None,
    extra: str = "",
    body: bytes = b"",
) -> bytes:
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {sock.host}:{sock.port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: {from_}\r\nTo: {to or f'<{uri}>'}\r\n"
        f"Call-ID: {call_id or secrets.token_hex(12)}\r\nCSeq: {cseq} {method}\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def answers_options(target: tuple[str, int], wait_s: float = 15.0) -> bool:
    """An OPTIONS from another address, sent again every half second as RFC 3261 §17.1.2
    has it (a loaded loop may answer late): True once it is answered 200."""
    probe = SipSocket(target, PROBE_HOST)
    try:
        data = sip_request("OPTIONS", probe, f"sip:{target[0]}:{target[1]}")
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            probe.send(data)
            answer = await probe.until(lambda m: _is_final(m, "OPTIONS"), 0.5)
            if answer is not None:
                return answer.status == 200
        return False
    finally:
        probe.close()


async def hang_up(sock: SipSocket, ok: SipMessage) -> None:
    """ACK the 2xx of an INVITE, then BYE: the call ends (its leg too)."""
    number = ok.cseq[0]
    dialog = {"call_id": ok.call_id, "from_": ok.get("From") or "", "to": ok.get("To")}
    target = parse_name_addr(ok.get("Contact") or "").raw_uri
    sock.send(sip_request("ACK", sock, target, cseq=number, **dialog))
    sock.send(sip_request("BYE", sock, target, cseq=number + 1, **dialog))
    assert (await sock.final("BYE")).status == 200


# -- the gateway on a running stack ---------------------------------------------------------


@dataclass
class MeetingGateway:
    """A gateway on this test's loop in front of the stack's meeting, with what went wrong on
    the loop (an exception nobody handled: a crash of one message's handling)."""

    gateway: SipGateway
    stack: Stack
    number: str
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def target(self) -> tuple[str, int]:
        assert self.gateway.transport.udp_address is not None
        return self.gateway.transport.udp_address

    def uri(self, number: str | None = None) -> str:
        return f"sip:{number or self.number}@{self.target[0]}:{self.target[1]}"

    def admitted(self) -> list[str]:
        return [c.call_id for c in self.gateway.calls.values() if c.state != "lobby"]


def meeting_number(stack: Stack) -> str:
    assert stack.database is not None
    with stack.database.session() as session:
        occurrence = session.get(Occurrence, stack.occurrence_id)
        assert occurrence is not None
        return occurrence.series.meeting_number


async def start_gateway(stack: Stack, rate_per_source: int) -> MeetingGateway:
    assert stack.settings is not None and stack.database is not None
    sip = stack.settings.sip.model_copy(update={"rate_limit_per_source": rate_per_source})
    configured = stack.settings.model_copy(update={"sip": sip})
    gateway = SipGateway(configured, stack.database, signer_for(configured.grant_key_path))
    running = MeetingGateway(gateway, stack, meeting_number(stack))
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: running.errors.append(context))
    await gateway.start("127.0.0.1", 0)
    return running


@pytest.fixture
async def fuzzed(stack: Stack) -> AsyncIterator[MeetingGateway]:
    """Rate limit out of the way: every mangled INVITE reaches the parser."""
    running = await start_gateway(stack, rate_per_source=10_000)
    yield running
    await running.gateway.close()
    asyncio.get_running_loop().set_exception_handler(None)


@pytest.fixture
async def limited(stack: Stack) -> AsyncIterator[MeetingGateway]:
    """The default rate limit (20 a second, bursts of 40)."""
    running = await start_gateway(stack, rate_per_source=20)
    yield running
    await running.gateway.close()
    asyncio.get_running_loop().set_exception_handler(None)


# -- mangling recorded INVITEs -------------------------------------------------------------


def recorded(path: Path, number: str) -> bytes:
    """A recorded INVITE to `number`, with a Call-ID and branch of its own (the recorded ones
    again would be taken for retransmissions)."""
    unique = secrets.token_hex(8).encode()
    data = path.read_bytes().replace(RECORDED_NUMBER, number.encode())
    data = re.sub(rb"(?mi)^(call-id|i):[^\r\n]*", rb"\1: " + unique, data)
    return re.sub(rb"branch=z9hG4bK[\w.-]*", b"branch=z9hG4bK" + unique, data)


def _split(data: bytes) -> tuple[bytes, bytes, bytes]:
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = data.partition(separator)
        if found:
            return head, found, body
    return data, b"", b""


def cut(data: bytes, *, at: float) -> bytes:
    return data[: int(len(data) * at)]


def flip(data: bytes, *, flips: list[tuple[float, int]]) -> bytes:
    mutable = bytearray(data)
    for where, value in flips:
        if mutable:
            mutable[int(len(mutable) * where) % len(mutable)] = value
    return bytes(mutable)


def insert_headers(data: bytes, *, lines: list[bytes]) -> bytes:
    start, newline, rest = data.partition(b"\n")
    return start + newline + b"".join(line + b"\r\n" for line in lines) + rest


def set_header(data: bytes, *, names: tuple[bytes, ...], value: bytes | None) -> bytes:
    """Every header called one of `names` set to `value`, or dropped (None)."""
    head, separator, body = _split(data)
    newline = b"\r\n" if b"\r\n" in head else b"\n"
    lines = head.split(newline)
    kept = []
    for line in lines[1:]:
        name = line.partition(b":")[0].strip().lower()
        if name in names:
            if value is None:
                continue
            line = name + b": " + value
        kept.append(line)
    return newline.join([lines[0], *kept]) + separator + body


def with_body(data: bytes, *, body: bytes) -> bytes:
    """Another body, with a Content-Length that fits it."""
    head, _separator, _body = _split(data)
    head = set_header(head + b"\r\n\r\n", names=(b"content-length", b"l"), value=None)
    return _split(head)[0] + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def flip_body(data: bytes, *, flips: list[tuple[float, int]]) -> bytes:
    head, separator, body = _split(data)
    return head + separator + flip(body, flips=flips)


def edit_sdp(data: bytes, *, edits: list[tuple[float, str | None]]) -> bytes:
    """Lines of the SDP dropped (None) or others put in."""
    lines = _split(data)[2].split(b"\r\n")
    for where, line in edits:
        index = int(len(lines) * where)
        if line is None:
            del lines[index : index + 1]
        else:
            lines.insert(index, line.encode())
    return with_body(data, body=b"\r\n".join(lines))


def replace_all(_data: bytes, *, junk: bytes) -> bytes:
    return junk


_HEADERS = {
    "Via": (b"via", b"v"),
    "From": (b"from", b"f"),
    "To": (b"to", b"t"),
    "Call-ID": (b"call-id", b"i"),
    "CSeq": (b"cseq",),
    "Content-Length": (b"content-length", b"l"),
    "Content-Type": (b"content-type", b"c"),
    "Contact": (b"contact", b"m"),
    "Max-Forwards": (b"max-forwards",),
}
_VALUES = [
    b"",
    b"-1",
    b"0",
    b"99999999999999999999",
    b"abc",
    b"SIP/2.0/UDP",
    b"SIP/2.0/UDP [::1:5060;branch=z9hG4bKx",
    b"<sip:a@b",
    b"<sip:a@b>;tag=" + b"t" * 300,
    b'"unclosed <sip:x@y>',
    b"1 INVITE",
    b"4294967296 INVITE",
    b"x" * 300,
    b"application/sdp; charset=\xff",
    b"text/plain",
    b"<tel:+84>",
    b"\xc3\x28",
]
_SDP_LINES = [
    "v=0",
    "v=1",
    "o=- 0 0 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "c=IN IP6 ::1",
    "c=IN IP4 999.1.1.1",
    "c=nonsense",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0 8 101",
    "m=audio 0 RTP/AVP 0",
    "m=audio 99999 RTP/AVP 0",
    "m=audio -1 RTP/AVP",
    "m=audio 49170 RTP/AVP",
    "m=audio 4000/2 RTP/AVP 0",
    "m=video 49172 RTP/AVP 96",
    "m=video 49172 RTP/SAVP 97",
    "m=application 5070 TCP/BFCP *",
    "m=",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:96 H264/90000",
    "a=rtpmap:101 telephone-event/8000",
    "a=rtpmap:abc",
    "a=rtpmap:96 H264",
    "a=rtpmap:0 PCMU/0",
    "a=fmtp:96 profile-level-id=zz;packetization-mode=9",
    "a=fmtp:101 0-99999",
    "a=rtcp:0",
    "a=rtcp:abc",
    "a=rtcp-mux",
    "a=sendonly",
    "a=inactive",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
    "b=AS:-5",
    "b=TIAS:99999999999999999999",
    "=",
]
_SDP_LINE = st.sampled_from(_SDP_LINES) | st.text(max_size=40)
_SDP = st.one_of(
    st.lists(_SDP_LINE, max_size=40).map(lambda lines: "\r\n".join(lines).encode()),
    st.binary(max_size=2048),
)
_FLIPS = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8)
_HEAD_MUTATION = st.one_of(
    st.floats(0, 1).map(lambda at: functools.partial(cut, at=at)),
    _FLIPS.map(lambda flips: functools.partial(flip, flips=flips)),
    st.integers(1_000, 60_000).map(
        lambda size: functools.partial(insert_headers, lines=[b"X-Junk: " + b"a" * size])
    ),
    st.integers(50, 150).map(
        lambda count: functools.partial(
            insert_headers, lines=[b"X-H%d: %d" % (i, i) for i in range(count)]
        )
    ),
    st.tuples(st.sampled_from(sorted(_HEADERS)), st.none() | st.sampled_from(_VALUES)).map(
        lambda pair: functools.partial(set_header, names=_HEADERS[pair[0]], value=pair[1])
    ),
    st.binary(max_size=2048).map(lambda junk: functools.partial(replace_all, junk=junk)),
)
# The head left whole, so that the SDP reaches the worker's parser.
_BODY_MUTATION = st.one_of(
    _FLIPS.map(lambda flips: functools.partial(flip_body, flips=flips)),
    st.lists(st.tuples(st.floats(0, 1), st.none() | _SDP_LINE), min_size=1, max_size=6).map(
        lambda edits: functools.partial(edit_sdp, edits=edits)
    ),
    _SDP.map(lambda body: functools.partial(with_body, body=body)),
)


def expected_of(data: bytes) -> tuple[str, SipMessage | None]:
    """What the gateway owes `data`: "drop" (not SIP), "nothing" (a response or an ACK, or a
    keep-alive) or "answer" (a request: one final response)."""
    if not data.strip():
        return "nothing", None
    try:
        message = parse(data)
    except SipParseError:
        return "drop", None
    if not message.is_request or message.method == "ACK":
        return "nothing", message
    return "answer", message


# -- the tests -----------------------------------------------------------------------------


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    invite=st.sampled_from(INVITES),
    mutations=st.lists(_HEAD_MUTATION | _BODY_MUTATION, min_size=1, max_size=2),
)
async def test_mangled_invites_get_an_error_or_nothing_and_no_one_joins(
    fuzzed: MeetingGateway, invite: Path, mutations: list[Callable[[bytes], bytes]]
) -> None:
    """A room system's INVITE cut, flipped, swollen or stripped: an error, a drop or the lobby,
    and an OPTIONS from elsewhere still answered (the worker's /rooms too)."""
    data = recorded(invite, fuzzed.number)
    for mutate in mutations:
        data = mutate(data)
    data = data[:MAX_DATAGRAM]
    expected, request = expected_of(data)
    event(expected)
    malformed = fuzzed.gateway.malformed
    caller = SipSocket(fuzzed.target)
    try:
        caller.send(data)
        assert await answers_options(fuzzed.target), "the gateway stopped answering OPTIONS"
        if expected == "answer":
            assert request is not None
            await _check_answer(fuzzed, caller, request)
        else:
            await caller.until(lambda m: True, 0.05)
            assert [m for m in caller.received if (m.status or 0) >= 200] == []
            assert fuzzed.gateway.malformed == malformed + (expected == "drop")
    finally:
        caller.close()
    assert fuzzed.errors == []
    assert fuzzed.admitted() == []
    assert await sites_in_room(fuzzed.stack) == set()


async def _check_answer(fuzzed: MeetingGateway, caller: SipSocket, request: SipMessage) -> None:
    """One final response, well formed; a 2xx to an INVITE puts the caller in the lobby."""
    method = request.cseq[1]
    answer = await caller.final(method)
    status = answer.status or 0
    event(f"{method} {status}")
    assert answer.call_id == request.call_id
    assert 200 <= status < 300 or 400 <= status < 600, (status, answer.reason)
    if status >= 300:
        return
    assert method in OK_METHODS, (method, status)
    if method != "INVITE":
        return
    call = fuzzed.gateway.calls.get(request.call_id)
    assert call is not None and call.state == "lobby", call and call.state
    assert await sites_in_room(fuzzed.stack) == set()
    await hang_up(caller, answer)
    await until(lambda: request.call_id not in fuzzed.gateway.calls, 10)


async def test_an_invite_flood_from_one_address_is_cut_and_another_caller_is_served(
    limited: MeetingGateway,
) -> None:
    """300 INVITEs to the meeting at once from one address: most are dropped, at most five
    wait in the lobby, the rest are busy; a room system elsewhere still gets through."""
    gateway = limited.gateway
    flooder = SipSocket(limited.target)
    uri = limited.uri()
    for _ in range(300):
        flooder.send(sip_request("INVITE", flooder, uri))
    elsewhere = SipSocket(limited.target, PROBE_HOST)
    assert await answers_options(limited.target)
    elsewhere.send(sip_request("INVITE", elsewhere, uri))
    answer = await elsewhere.final("INVITE")
    assert answer.status == 200  # in the lobby, as any caller without a site
    await hang_up(elsewhere, answer)

    await flooder.until(lambda m: False, 3.0)  # every setup the limit let through ends
    # a 2xx is sent again until its ACK comes: one final status per call
    finals = {m.call_id: m for m in flooder.received if (m.status or 0) >= 200}
    statuses = sorted(m.status or 0 for m in finals.values())
    assert gateway.transport.limiter.dropped >= 50  # (the rest may not reach the socket)
    assert len(finals) <= 60  # a burst of 40, then 20 a second
    assert 1 <= statuses.count(200) <= 5, statuses
    assert set(statuses) <= {200, 486}, statuses
    assert limited.admitted() == [] and limited.errors == []
    assert await sites_in_room(limited.stack) == set()
    for ok in [m for m in finals.values() if m.status == 200]:
        await hang_up(flooder, ok)
    flooder.close()
    elsewhere.close()


async def test_closing_does_not_wait_for_callers_that_are_gone(limited: MeetingGateway) -> None:
    """Three callers wait in the lobby, then vanish: the gateway's close() ends their legs and
    returns without waiting for answers to its BYEs (32 s each, one after the other)."""
    stack, gateway = limited.stack, limited.gateway
    legs = []
    for _ in range(3):
        caller = SipSocket(limited.target)
        caller.send(sip_request("INVITE", caller, limited.uri(), extra=SDP_HEAD, body=SDP_OFFER))
        ok = await caller.final("INVITE")
        assert ok.status == 200, ok.reason
        legs.append(gateway.calls[ok.call_id].leg_id)
        caller.close()  # no ACK, no answer to anything from now on
    started = time.monotonic()
    await asyncio.wait_for(gateway.close(), 15)
    assert time.monotonic() - started < 5
    async with httpx.AsyncClient(base_url=stack.worker, headers=stack.admin()) as http:
        for leg_id in legs:
            assert (await http.delete(f"{SIP_LEGS_PATH}/{leg_id}")).status_code == 404


# -- sipvicious and the PIN ----------------------------------------------------------------


def sipvicious(tool: str) -> str:
    """The path of sipvicious' `tool` (Debian names it `svwar`, pip `sipvicious_svwar`)."""
    for name in (f"sipvicious_{tool}", tool):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"sipvicious ({tool}) is not installed (CI installs the Debian package)")


async def scan(tool: str, bridge: Bridge, *options: str) -> str:
    """What `tool` printed after scanning the bridge's SIP port from 127.0.0.1."""
    command = [
        sipvicious(tool),
        *("-p", str(bridge.sip_port), "-P", str(free_port())),
        *("-b", "127.0.0.1", "-x", "127.0.0.1", "-t", "0.05"),
        *options,
        "127.0.0.1",
    ]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=90
    )
    return done.stdout + done.stderr


def extensions_found(report: str) -> dict[str, str]:
    """svwar's table: extension → what it made of the answer (`noauth`, `reqauth`, `weird`)."""
    return dict(re.findall(r"^\|\s*(\d+)\s*\|\s*(\w+)\s*\|", report, re.MULTILINE))


async def test_svmap_and_svwar_find_no_way_into_the_meeting(bridge: Bridge) -> None:
    """svmap sees a SIP device; svwar's INVITE scan around the meeting number (as it does:
    ACK, then BYE at once) reaches at most the lobby; its REGISTER scan finds nothing."""
    stack, number = bridge.stack, int(bridge.meeting_number)
    mapped = await scan("svmap", bridge)
    assert f"127.0.0.1:{bridge.sip_port}" in mapped and "ConfBridge" in mapped, mapped

    invited = await scan("svwar", bridge, "-m", "INVITE", "-e", f"{number - 5}-{number + 5}")
    found = extensions_found(invited)
    # the meeting number answers (a caller waits there for the PIN); no other number does
    assert set(found) == {bridge.meeting_number}, invited
    registered = await scan("svwar", bridge, "-e", f"{number - 5}-{number + 5}")
    assert extensions_found(registered) == {}, registered

    assert await sites_in_room(stack) == set()
    assert [e for e in await stack.events() if e["type"] == "joined"] == []


async def test_a_caller_keying_the_pin_joins_and_no_log_line_carries_it(
    bridge: Bridge, caplog: pytest.LogCaptureFixture
) -> None:
    """The PIN keyed as SIP INFO digits: the caller joins; neither the gateway's and the
    control plane's logs (any level) nor the worker's (its stderr) show the PIN."""
    caplog.set_level(logging.DEBUG)
    stack = bridge.stack
    pin = "86420975"  # a PIN of its own: eight digits that no other log text has
    assert stack.database is not None
    with stack.database.session() as session:
        occurrence = session.get(Occurrence, stack.occurrence_id)
        assert occurrence is not None
        occurrence.series.pin = pin
        session.commit()

    caller = SipSocket(("127.0.0.1", bridge.sip_port))
    caller.send(sip_request("INVITE", caller, bridge.address(), extra=SDP_HEAD, body=SDP_OFFER))
    ok = await caller.final("INVITE")
    assert ok.status == 200, ok.reason
    dialog = {"call_id": ok.call_id, "from_": ok.get("From") or "", "to": ok.get("To")}
    target = parse_name_addr(ok.get("Contact") or "").raw_uri
    caller.send(sip_request("ACK", caller, target, **dialog))
    await asyncio.sleep(0.5)
    assert await sites_in_room(stack) == set()  # in the lobby
    for index, digit in enumerate(pin + "#", start=2):
        relay = f"Signal={digit}\r\nDuration=160\r\n".encode()
        info = sip_request(
            "INFO", caller, target, cseq=index, extra=DTMF_HEAD, body=relay, **dialog
        )
        caller.send(info)
        assert (await caller.final("INFO")).status == 200
    joined = await eventually(lambda: sites_in_room(stack), 15, "the caller in the room")
    assert len(joined) == 1
    caller.send(sip_request("BYE", caller, target, cseq=20, **dialog))
    assert (await caller.final("BYE")).status == 200
    caller.close()

    await asyncio.sleep(1)  # the leg's last lines

    worker = worker_log(stack)
    assert "SipLeg" in worker, worker  # the worker's lines are here to be read
    assert "gave the PIN" in caplog.text  # and the gateway's
    assert pin not in caplog.text
    assert pin not in worker


def worker_log(stack: Stack) -> str:
    """What the SFU worker has written to its stderr in this phase of the test: pytest's
    capture file, which it inherited when the stack started (read where the worker holds
    it open)."""
    stderr = Path(f"/proc/{stack.workers.processes[0].pid}/fd/2")
    if not stat.S_ISREG(stderr.stat().st_mode):
        pytest.skip("the worker's stderr is not pytest's capture file (pytest -s)")
    return stderr.read_text(errors="replace")


SDP_HEAD = "Content-Type: application/sdp\r\n"
DTMF_HEAD = "Content-Type: application/dtmf-relay\r\n"
SDP_OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)
