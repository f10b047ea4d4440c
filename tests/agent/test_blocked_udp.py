"""A hall whose network blocks UDP (nftables in its own network namespace) still joins: the
agent tries direct UDP, then relays through coturn over TCP, or over TLS (`turns:`) with a
private CA it is told to trust. coturn runs outside the hall, as at the data centre."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from confbridge.db import Database
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from tests.support import netns
from tests.support.factories import move_occurrence, open_occurrence
from tests.support.netns import Hosts, udp_dropped
from tests.support.peers import WhepViewer, WhipPublisher
from tests.support.servers import AgentProcess, Stack, pairing_code
from tests.support.turn import (
    Certificate,
    Coturn,
    self_signed_certificate,
    skip_without_coturn,
    turn_settings,
)

skip_without_coturn()

CHAIR_WIDTH = 160
# direct UDP is given up after the agent's connect timeout (15 s), then the relay joins
FALLBACK_JOIN_S = 60.0


@pytest.fixture
def udp_blocked_hall() -> Iterator[Hosts]:
    """A hall in its own namespace that can send and receive no UDP beyond its loopback."""
    with netns.udp_blocked_hall() as made:
        yield made


@pytest.fixture
def certificate(udp_blocked_hall: Hosts, tmp_path: Path) -> Certificate:
    return self_signed_certificate(tmp_path, udp_blocked_hall.gateway)


@pytest.fixture
def coturn(udp_blocked_hall: Hosts, certificate: Certificate, tmp_path: Path) -> Iterator[Coturn]:
    workdir = tmp_path / "coturn"
    workdir.mkdir()
    server = Coturn(workdir, udp_blocked_hall.gateway, certificate).start()
    yield server
    server.stop()


@pytest.fixture
def stack_options(
    udp_blocked_hall: Hosts, coturn: Coturn, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    gateway = udp_blocked_hall.gateway
    # control plane, workers and media on the bridge's address: the hall reaches them by TCP,
    # and would by UDP if its network let it
    monkeypatch.setenv("CONFBRIDGE_SFU_HOST", gateway)
    return {
        "host": gateway,
        "sfu": {"media_ip": gateway, "turn": turn_settings(coturn)},
        # a hall leaves at the meeting's end, not after the time a meeting may run over
        "settings": {"meetings": {"overrun_grace_min": 0}},
    }


async def _publish_chair(stack: Stack, peers: list[WhipPublisher | WhepViewer]) -> None:
    grant = await stack.join("hq")
    chair = WhipPublisher(grant["whip_url"], grant["token"], width=CHAIR_WIDTH, height=120)
    peers.append(chair)
    assert (await chair.start()).status_code == 201


def _hall_agent(
    hall: Hosts, stack: Stack, it_user: dict[str, str], site: Site, *options: str
) -> AgentProcess:
    code = pairing_code(stack, it_user, site)
    args = ["--server", stack.control, "--pair", code, "--agenda-interval-s", "2", *options]
    return AgentProcess(args, prefix=hall.command("hall", []))


async def _relay_ports(coturn: Coturn, site: Site, *, tcp: bool) -> set[int]:
    """coturn's listening ports that relayed for the site's credential (user `<expiry>:<site
    id>`), from its log lines as sessions close, e.g. `session 0010...: closed (2nd stage),
    user <1796398324:2> ... local 10.231.7.1:46767, remote ...`; with `tcp`, every session must
    have been on a TCP (or TLS) connection."""
    user = f":{site.id}>"
    closed = re.compile(r"session (\d+): closed \(2nd stage\), user <[^>]*" + re.escape(user))
    deadline = time.monotonic() + 10
    while True:
        lines = coturn.log_text().splitlines()
        sessions = {m.group(1): line for line in lines if (m := closed.search(line))}
        if sessions or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    if tcp:
        over_tcp = {
            session for session in sessions for line in lines
            if f"session {session}: " in line and "TCP socket closed remotely" in line
        }  # fmt: skip
        assert over_tcp == set(sessions), lines[-40:]
    return {
        int(line.split(" local ")[1].split(",")[0].rsplit(":", 1)[1]) for line in sessions.values()
    }


async def test_blocked_udp_agent_falls_back_to_turn_over_tcp(
    udp_blocked_hall: Hosts,
    coturn: Coturn,
    stack: Stack,
    sites: dict[str, Site],
    it_user: dict[str, str],
    peers: list[WhipPublisher | WhepViewer],
) -> None:
    """Direct UDP does not come up (its datagrams are dropped), the agent moves to a relay
    over TURN/TCP, joins on a relay/tcp pair and decodes the chair's video."""
    await _publish_chair(stack, peers)
    agent = _hall_agent(udp_blocked_hall, stack, it_user, sites["p1"])
    try:
        moved = await agent.wait_for("ice_route", FALLBACK_JOIN_S)
        assert (moved["failed"], moved["next"]) == ("direct", "relay-tcp")
        joined = await agent.wait_for("joined", FALLBACK_JOIN_S)
        assert joined["route"] == "relay-tcp"
        assert joined["paths"] == ["relay/tcp", "relay/tcp"]  # publishing and viewing
        video = await agent.wait_for("video", 20)
        assert video["width"] == CHAIR_WIDTH
    finally:
        agent.stop()
    assert udp_dropped(udp_blocked_hall, "hall") > 0, "the hall never tried UDP"
    # coturn relayed for the hall's credential over TCP on its plain port
    assert await _relay_ports(coturn, sites["p1"], tcp=True) == {coturn.port}


async def test_blocked_udp_agent_tries_direct_again_at_the_next_meeting(
    udp_blocked_hall: Hosts,
    coturn: Coturn,
    stack: Stack,
    database: Database,
    sites: dict[str, Site],
    it_user: dict[str, str],
) -> None:
    """A hall that needed the relay in one meeting does not stay on it: once its network lets
    UDP through again, the next meeting joins on direct UDP."""
    agent = _hall_agent(udp_blocked_hall, stack, it_user, sites["p1"])
    try:
        first = await agent.wait_for("joined", FALLBACK_JOIN_S)
        assert first["route"] == "relay-tcp"
        # the network is mended; the meeting ends and the next one is on
        netns.unblock_udp(udp_blocked_hall, "hall")
        assert stack.settings is not None
        # (ended before the next one starts: a site's bookings do not overlap)
        move_occurrence(
            database, stack.occurrence_id, utcnow() - timedelta(minutes=10), timedelta(minutes=8)
        )
        next_id, _tokens = open_occurrence(database, stack.settings, sites)
        await agent.wait_for("left", 20)
        reset = await agent.wait_for("ice_route_reset", 20)
        assert (reset["route"], reset["previous"]) == ("direct", "relay-tcp")
        joined = await agent.wait_for("joined", 30, after=1)
        assert joined["occurrence_id"] == next_id
        assert joined["route"] == "direct"
        assert "relay/tcp" not in joined["paths"]
    finally:
        agent.stop()
    assert not agent.events("ice_route")[1:], "direct UDP failed again"


async def test_blocked_udp_agent_relays_over_tls_with_a_private_ca(
    udp_blocked_hall: Hosts,
    coturn: Coturn,
    certificate: Certificate,
    stack: Stack,
    sites: dict[str, Site],
    it_user: dict[str, str],
    peers: list[WhipPublisher | WhepViewer],
) -> None:
    """Told to use TURN over TLS (relay only) and to trust coturn's self-signed certificate,
    the agent joins on a relay/tls pair; a hall not told to trust it does not come up."""
    await _publish_chair(stack, peers)
    tls = ["--turn-transport", "tls"]
    trusting = _hall_agent(
        udp_blocked_hall,
        stack,
        it_user,
        sites["p1"],
        *tls,
        "--relay-only",
        "--turn-ca-file",
        str(certificate.cert),
    )
    distrusting = _hall_agent(udp_blocked_hall, stack, it_user, sites["p2"], *tls)
    try:
        joined = await trusting.wait_for("joined", FALLBACK_JOIN_S)
        assert joined["route"] == "relay-tls"
        assert joined["paths"] == ["relay/tls", "relay/tls"]
        assert (await trusting.wait_for("video", 20))["width"] == CHAIR_WIDTH
        retry = await distrusting.wait_for("retry", FALLBACK_JOIN_S)
        assert "did not come up on route direct+tls" in retry["message"]
        assert not distrusting.events("joined")
    finally:
        trusting.stop()
        distrusting.stop()
    assert await _relay_ports(coturn, sites["p1"], tcp=True) == {coturn.tls_port}
    assert await _relay_ports(coturn, sites["p2"], tcp=False) == set()  # no allocation at all
