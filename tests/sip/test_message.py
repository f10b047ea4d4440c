"""SIP message parsing: room systems' INVITEs with their quirks, and hostile input."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confbridge.sip.headers import normalised_address, parse_name_addr, parse_uri
from confbridge.sip.message import MAX_MESSAGE_BYTES, SipMessage, SipParseError, parse, parse_via

INVITES = Path(__file__).parent / "invites"


def invite(name: str) -> bytes:
    return (INVITES / name).read_bytes()


def test_a_polycom_invite_parses_with_its_sdp() -> None:
    message = parse(invite("polycom-group-series.sip"))
    assert message.method == "INVITE"
    assert parse_uri(message.uri or "").user == "4412345"
    assert message.cseq == (1, "INVITE")
    assert message.body.startswith(b"v=0\r\n") and b"m=application 5070 TCP/BFCP" in message.body
    caller = parse_name_addr(message.get("From") or "")
    assert caller.display_name == "UBND Phuong Bai Chay"
    assert caller.tag == "plcm_3987121547-1021"
    assert caller.uri.address == "baichay@rooms.halong.gov.vn"


def test_compact_forms_and_a_folded_header_from_a_cisco_room_kit() -> None:
    message = parse(invite("cisco-room-kit.sip"), stream=True)
    assert message.get("Call-ID") == "0c7c1f0e6b3d11eebd4a001b0c9f5e21"
    assert message.get("Content-Type") == "application/sdp"
    assert parse_via(message.top_via).transport == "TCP"
    assert message.get("Supported") == "replaces,100rel,timer, resource-priority"
    assert len(message.body) == int(message.get("Content-Length") or 0)
    contact = parse_name_addr(message.get("Contact") or "")
    assert contact.uri.params["transport"] == "tcp"


def test_ipv6_two_vias_and_a_late_offer_from_a_yealink() -> None:
    message = parse(invite("yealink-vc880-late-offer.sip"))
    vias = message.get_all("Via")
    assert len(vias) == 2
    top = parse_via(vias[0])
    assert (top.host, top.port, top.branch) == ("[fd00:20::31]", 5062, "z9hG4bK1471298725")
    assert message.body == b""
    assert normalised_address(message.get("From") or "") == "quangla@rooms.halong.gov.vn"


def test_a_message_round_trips() -> None:
    original = parse(invite("polycom-group-series.sip"))
    again = parse(original.encode())
    assert again.headers == original.headers
    assert again.body == original.body


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "no end of headers"),
        (b"HELLO\r\n\r\n", "bad request line"),
        (b"INVITE http://x SIP/2.0\r\n\r\n", "scheme"),
        (b"INVITE sip:1@x SIP/3.0\r\n\r\n", "bad request line"),
        (b"SIP/2.0 999 Nope\r\n\r\n", "bad status line"),
        (b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n", "missing From"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError, match=reason):
        parse(data)


def _request(extra: str = "", body: bytes = b"", length: str | None = None) -> bytes:
    head = (
        "OPTIONS sip:4412345@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc\r\n"
        "From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:4412345@127.0.0.1>\r\n"
        "Call-ID: x1\r\nCSeq: 1 OPTIONS\r\n" + extra
    )
    head += f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    return head.encode() + body


def test_limits_oversized_headers_bodies_and_lengths() -> None:
    with pytest.raises(SipParseError, match="too long"):
        parse(_request("X-Junk: " + "a" * 5000 + "\r\n"))
    with pytest.raises(SipParseError, match="too many headers"):
        parse(_request("".join(f"X-{i}: 1\r\n" for i in range(120))))
    with pytest.raises(SipParseError, match="too large"):
        parse(b"X" * (MAX_MESSAGE_BYTES + 1))
    with pytest.raises(SipParseError, match="shorter than Content-Length"):
        parse(_request(body=b"v=0", length="500"))
    with pytest.raises(SipParseError, match="bad Content-Length"):
        parse(_request(length="-1"))
    with pytest.raises(SipParseError, match="CSeq method"):
        parse(_request().replace(b"1 OPTIONS", b"1 INVITE"))
    with pytest.raises(SipParseError, match="control character"):
        parse(_request("X-Bad: a\x00b\r\n"))


def test_a_body_beyond_content_length_is_cut_there() -> None:
    message = parse(_request(body=b"0123456789", length="4"))
    assert message.body == b"0123"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_the_parser(data: bytes) -> None:
    with contextlib.suppress(SipParseError):
        parse(data)


_LINES = st.sampled_from(
    [
        "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1",
        "Via: SIP/2.0/UDP [::1]:5060;rport;branch=z9hG4bK2",
        "Via: garbage",
        "From: <sip:a@b>;tag=1",
        'From: "x, y" <sip:a@b>;tag=2',
        "From: <sip:a@b",
        "To: sip:c@d",
        "Call-ID: abc",
        "CSeq: 1 INVITE",
        "CSeq: 99999999999 INVITE",
        "Content-Length: 3",
        "Content-Length: abc",
        "l: 0",
        " folded",
        "Max-Forwards: 0",
        ":",
        "X: \t",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["INVITE sip:4412345@h SIP/2.0", "BYE sip:x@h SIP/2.0", "SIP/2.0 200 OK"]),
    st.lists(_LINES, max_size=12),
    st.binary(max_size=64),
)
def test_shuffled_headers_give_a_message_or_a_parse_error(
    start: str, lines: list[str], body: bytes
) -> None:
    data = ("\r\n".join([start, *lines]) + "\r\n\r\n").encode() + body
    try:
        message = parse(data)
    except SipParseError:
        return
    # whatever parsed has what a transaction needs, and encodes again
    assert isinstance(message, SipMessage)
    parse_via(message.top_via)
    assert parse(message.encode()).call_id == message.call_id


def test_uri_and_address_forms() -> None:
    uri = parse_uri("sips:Room-1@Rooms.Example.VN:5061;transport=tls")
    assert (uri.scheme, uri.user, uri.port, uri.params) == (
        "sips",
        "Room-1",
        5061,
        {"transport": "tls"},
    )
    assert uri.address == "Room-1@rooms.example.vn"
    assert normalised_address("<sip:a@B.example;lr>") == "a@b.example"
    assert normalised_address("not a uri") is None
    with pytest.raises(SipParseError):
        parse_uri("sip:a@b:99999")
