"""The agent's ICE routes: which TURN URL each attempt uses, and the ladder from direct UDP to
relays over TCP and TLS (the end to end run is tests/agent/test_blocked_udp.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from typer.testing import CliRunner

from confbridge.agent.routes import (
    DIRECT,
    IceRoute,
    IceRoutes,
    ladder,
    turn_tls_context,
    turn_transport_of,
)
from confbridge.cli import app

UDP = "turn:turn.example.vn:3478?transport=udp"
TCP = "turn:turn.example.vn:3478?transport=tcp"
TLS = "turns:turn.example.vn:443?transport=tcp"
STUN = "stun:stun.example.vn:3478"


def _servers(*urls: str) -> list[dict[str, object]]:
    return [
        {"urls": STUN},
        {"urls": list(urls), "username": "1800000000:7", "credential": "c2VjcmV0"},
    ]


def test_turn_transport_of_reads_the_scheme_and_the_transport_parameter() -> None:
    assert [turn_transport_of(u) for u in (UDP, TCP, TLS, STUN)] == ["udp", "tcp", "tls", None]
    assert turn_transport_of("turn:turn.example.vn") == "udp"  # RFC 7065's default
    assert turn_transport_of("turns:turn.example.vn:5349") == "tls"


def test_route_ice_servers_keeps_stun_and_its_own_turn_urls_only() -> None:
    route = IceRoute("tcp", relay_only=True)
    stun, turn = route.ice_servers(_servers(UDP, TCP, TLS))
    assert stun == {"urls": [STUN]}
    assert turn == {"urls": [TCP], "username": "1800000000:7", "credential": "c2VjcmV0"}
    assert IceRoute("tls", relay_only=True).ice_servers(_servers(UDP)) == [{"urls": [STUN]}]
    assert (route.name, DIRECT.name, IceRoute("tls", False).name) == (
        "relay-tcp",
        "direct",
        "direct+tls",
    )


def test_routes_move_down_the_ladder_and_keep_what_works() -> None:
    routes = IceRoutes(ladder(relay_only=False, turn_transport=None))
    offered = _servers(UDP, TCP, TLS)
    assert routes.current(offered) == DIRECT
    routes.failed(DIRECT)
    relay_tcp = routes.current(offered)
    assert relay_tcp == IceRoute("tcp", relay_only=True)
    routes.succeeded(relay_tcp)
    assert routes.current(offered) == relay_tcp  # kept for the next join
    routes.failed(relay_tcp)
    assert routes.current(offered) == IceRoute("tls", relay_only=True)
    routes.failed(IceRoute("tls", relay_only=True))
    assert routes.current(offered) == DIRECT  # after the last, from the start again


def test_routes_start_over_at_the_next_meeting() -> None:
    routes = IceRoutes(ladder(relay_only=False, turn_transport=None))
    offered = _servers(UDP, TCP, TLS)
    routes.failed(DIRECT)
    relay_tcp = routes.current(offered)
    routes.succeeded(relay_tcp)
    assert routes.current(offered) == relay_tcp  # the rest of this meeting
    routes.start_over()
    assert routes.current(offered) == DIRECT  # the next one tries direct UDP first
    relay = IceRoutes(ladder(relay_only=True, turn_transport=None))
    relay.failed(IceRoute("udp", relay_only=True))
    relay.start_over()
    assert relay.current(offered) == IceRoute("udp", relay_only=True)  # its own first step


def test_routes_skip_relays_the_grant_does_not_offer() -> None:
    routes = IceRoutes(ladder(relay_only=False, turn_transport=None))
    routes.failed(DIRECT)
    assert routes.current(_servers(UDP, TLS)) == IceRoute("tls", relay_only=True)
    # no TURN at all: direct is the only way
    assert routes.current([{"urls": STUN}]) == DIRECT


def test_routes_configured_relay_only_or_one_transport() -> None:
    relay = IceRoutes(ladder(relay_only=True, turn_transport=None))
    assert relay.current(_servers(UDP, TCP)) == IceRoute("udp", relay_only=True)
    forced = IceRoutes(ladder(relay_only=True, turn_transport="tls"))
    route = forced.current(_servers(UDP, TCP, TLS))
    assert route == IceRoute("tls", relay_only=True)
    forced.failed(route)
    assert forced.current(_servers(UDP, TCP, TLS)) == route  # nothing else to try


def test_turn_tls_context_trusts_a_private_ca_and_refuses_a_bad_file(tmp_path: Path) -> None:
    from tests.support.turn import self_signed_certificate

    certificate = self_signed_certificate(tmp_path, "127.0.0.1")
    context = turn_tls_context(certificate.cert)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any("turn 127.0.0.1" in str(ca["subject"]) for ca in context.get_ca_certs())
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ssl.SSLError):
        turn_tls_context(garbage)


def test_terminal_agent_refuses_bad_turn_options_in_one_line(tmp_path: Path) -> None:
    base = ["terminal", "--server", "http://127.0.0.1:9", "--token", "cbt_x"]
    unknown = CliRunner().invoke(app, [*base, "--turn-transport", "sctp"])
    assert unknown.exit_code == 2 and "--turn-transport: unknown value 'sctp'" in unknown.stderr
    missing = CliRunner().invoke(app, [*base, "--turn-ca-file", str(tmp_path / "none.pem")])
    assert missing.exit_code == 2 and "--turn-ca-file: cannot load" in missing.stderr
    assert "Traceback" not in unknown.output + missing.output
