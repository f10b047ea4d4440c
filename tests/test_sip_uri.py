"""SIP addresses, meeting numbers and PINs as the control plane stores and compares them."""

from __future__ import annotations

import pytest

from confbridge.sip_uri import (
    MEETING_NUMBER_RE,
    PIN_RE,
    SipUriError,
    address_key,
    new_meeting_number,
    new_pin,
    normalise_sip_uri,
    sip_address,
)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("sip:halong-p1@rooms.halong.gov.vn", "sip:halong-p1@rooms.halong.gov.vn"),
        ("SIP:Room-1@Rooms.Example.VN:5060", "sip:Room-1@rooms.example.vn"),
        ("  sips:room@example.vn:5061 ", "sips:room@example.vn"),
        ("sips:room@example.vn:5060", "sips:room@example.vn:5060"),
        ("sip:room@10.0.0.5:5080", "sip:room@10.0.0.5:5080"),
        ("sip:room@[2001:DB8::0:1]:5062", "sip:room@[2001:db8::1]:5062"),
        ("sip:+842033@example.vn", "sip:+842033@example.vn"),
    ],
)
def test_normalise_sip_uri_lowercases_scheme_and_host_and_drops_the_default_port(
    given: str, stored: str
) -> None:
    assert normalise_sip_uri(given) == stored


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("", "give an address"),
        ("http://example.vn", "must start with sip: or sips:"),
        ("room@example.vn", "must start with sip: or sips:"),
        ("sip:example.vn", "needs a user part"),
        ("sip:@example.vn", "needs a user part"),
        ("sip:room @example.vn", "no spaces"),
        ("sip:room@example.vn;transport=tcp", "without parameters"),
        ("sip:room@example.vn?subject=x", "without parameters"),
        ("sip:room@exa_mple.vn", "not a host name"),
        ("sip:room@example.vn:0", "port '0'"),
        ("sip:room@example.vn:99999", "port '99999'"),
        ("sip:room@[::1", "closing ']'"),
        ("sip:room@[zz::1]", "not an IPv6 address"),
        ("sip:ro<om@example.vn", "user part"),
        ("sip:" + "a" * 300 + "@example.vn", "at most 300"),
    ],
)
def test_normalise_sip_uri_refuses_malformed_addresses_saying_why(given: str, reason: str) -> None:
    with pytest.raises(SipUriError) as caught:
        normalise_sip_uri(given)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "caller",
    [
        "sip:halong-p1@rooms.halong.gov.vn",
        "sip:halong-p1@ROOMS.Halong.gov.vn:5060",
        '"Phòng họp P1" <sip:halong-p1@rooms.halong.gov.vn;transport=udp>;tag=1234',
        "<sips:halong-p1@rooms.halong.gov.vn:5061>",
        "sip:halong-p1@rooms.halong.gov.vn;user=phone",
    ],
)
def test_address_key_ignores_display_name_params_host_case_and_default_port(caller: str) -> None:
    assert address_key(caller) == "halong-p1@rooms.halong.gov.vn"


def test_address_key_keeps_the_user_case_and_other_ports_and_refuses_non_sip() -> None:
    assert address_key("sip:Room@example.vn") != address_key("sip:room@example.vn")
    assert address_key("sip:room@example.vn:5080") == "room@example.vn:5080"
    assert address_key("tel:+84912345678") is None
    assert address_key("garbage") is None


def test_generated_numbers_and_pins_have_the_documented_form() -> None:
    numbers = {new_meeting_number() for _ in range(200)}
    assert all(len(n) == 7 and n[0] != "0" and MEETING_NUMBER_RE.match(n) for n in numbers)
    assert len(numbers) > 190  # random, not a counter
    pins = [new_pin() for _ in range(200)]
    assert all(len(p) == 6 and p.isdigit() and PIN_RE.match(p) for p in pins)
    assert sip_address("1234567", "hop.example.vn") == "sip:1234567@hop.example.vn"
