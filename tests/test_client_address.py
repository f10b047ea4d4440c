"""The client's address behind reverse proxies: forwarded headers count from trusted peers only."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from confbridge.client_address import client_address, forwarded_client, parse_address

PROXIES = ["10.0.0.0/8", "fd00::/8"]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # no trusted peer: the header is whatever the client wants it to be
        ("192.0.2.1", ["203.0.113.9"], "192.0.2.1"),
        ("127.0.0.1", ["203.0.113.9"], "127.0.0.1"),
        # a trusted proxy: the right-most entry that is not a trusted proxy
        ("10.0.0.5", ["203.0.113.9"], "203.0.113.9"),
        ("10.0.0.5", ["1.1.1.1, 203.0.113.9"], "203.0.113.9"),  # 1.1.1.1 made up by the client
        ("10.0.0.5", ["1.1.1.1, 203.0.113.9, 10.0.0.7"], "203.0.113.9"),  # two proxies
        ("10.0.0.5", ["1.1.1.1", "203.0.113.9"], "203.0.113.9"),  # the header twice
        ("10.0.0.5", ["10.0.0.8, 10.0.0.7"], "10.0.0.8"),  # only proxies: the left-most
        ("10.0.0.5", [], "10.0.0.5"),
        ("10.0.0.5", ["203.0.113.9:4321"], "203.0.113.9"),
        ("fd00::1", ["[2001:db8::7]:4321"], "2001:db8::7"),
        ("10.0.0.5", ["203.0.113.9, not-an-address"], "10.0.0.5"),  # garbage from a proxy
        ("::ffff:10.0.0.5", ["203.0.113.9"], "203.0.113.9"),  # IPv4 seen over IPv6
    ],
)
def test_forwarded_client_takes_the_rightmost_untrusted_entry(
    peer: str, forwarded: list[str], expected: str
) -> None:
    assert forwarded_client(peer, forwarded, PROXIES) == expected


def test_forwarded_client_without_trusted_proxies_is_the_peer() -> None:
    assert forwarded_client("127.0.0.1", ["203.0.113.9"], []) == "127.0.0.1"
    assert forwarded_client("", ["203.0.113.9"], []) == "unknown"


def test_parse_address_refuses_what_is_not_an_address() -> None:
    assert parse_address("example.org") is None
    assert parse_address("") is None
    assert str(parse_address(" 2001:DB8::1 ")) == "2001:db8::1"


def test_client_address_reads_the_apps_trusted_proxies() -> None:
    app = FastAPI()
    app.state.settings = type("S", (), {"trusted_proxies": ["127.0.0.1/32"]})()

    @app.get("/where")
    def where(request: Request) -> str:
        return client_address(request)

    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    with TestClient(app, client=("127.0.0.1", 1234)) as via_proxy:
        assert via_proxy.get("/where", headers=forwarded).json() == "203.0.113.9"
    with TestClient(app, client=("192.0.2.1", 1234)) as direct:
        assert direct.get("/where", headers=forwarded).json() == "192.0.2.1"
