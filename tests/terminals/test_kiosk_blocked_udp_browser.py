"""The kiosk page in Chromium inside a hall whose network blocks UDP (nftables in its network
namespace): it joins through coturn over TCP, or over TLS (`turns:`, coturn's certificate from
a private CA the machine trusts), with the TURN URLs of its join grant, and shows the chair's
video."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from confbridge.sites.models import Site
from tests.support import netns
from tests.support.browsers import CHROMIUM, CHROMIUM_ARGS, skip_without_chromium
from tests.support.netns import Hosts, udp_dropped
from tests.support.peers import WhepViewer, WhipPublisher
from tests.support.polling import eventually
from tests.support.servers import Stack
from tests.support.turn import (
    Certificate,
    Coturn,
    self_signed_certificate,
    skip_without_coturn,
    turn_settings,
)

skip_without_chromium()
skip_without_coturn()

CHAIR_WIDTH = 160
JOIN_TIMEOUT_S = 60.0

# Every RTCPeerConnection the page makes, kept where the test can read its stats.
KEEP_PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.peerConnections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.peerConnections.push(this); }
  };
})();
"""

# The selected candidate pair's local candidate, for each connected peer connection.
SELECTED_LOCAL_CANDIDATES = """
async () => Promise.all(window.peerConnections
  .filter((pc) => pc.connectionState === "connected")
  .map(async (pc) => {
    const stats = await pc.getStats();
    let pairId = null;
    stats.forEach((s) => { if (s.type === "transport") pairId = s.selectedCandidatePairId; });
    const pair = pairId && stats.get(pairId);
    const local = pair && stats.get(pair.localCandidateId);
    return local ? { type: local.candidateType, relayProtocol: local.relayProtocol ?? null }
                 : null;
  }))
"""


@pytest.fixture
def udp_blocked_hall() -> Iterator[Hosts]:
    """A hall in its own namespace that can send and receive no UDP beyond its loopback."""
    with netns.udp_blocked_hall() as made:
        yield made


@pytest.fixture(params=["tcp", "tls"])
def transport(request: pytest.FixtureRequest) -> str:
    """How the grant's second TURN URL reaches coturn (the first is UDP, which is blocked)."""
    return str(request.param)


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
    udp_blocked_hall: Hosts, coturn: Coturn, transport: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    gateway = udp_blocked_hall.gateway
    # pages, WHIP/WHEP and media on the bridge's address, which the hall reaches (TCP only)
    monkeypatch.setenv("CONFBRIDGE_SFU_HOST", gateway)
    turn = turn_settings(coturn)
    turn["urls"] = [coturn.url, coturn.tcp_url if transport == "tcp" else coturn.tls_url]
    return {"host": gateway, "sfu": {"media_ip": gateway, "turn": turn}}


def _trusting_home(home: Path, certificate: Certificate) -> Path:
    """A home directory whose NSS database (where Chromium on Linux finds the CAs a machine's
    user added) trusts `certificate`, as IT staff install a private CA on a kiosk."""
    database = f"sql:{home / '.pki' / 'nssdb'}"
    (home / ".pki" / "nssdb").mkdir(parents=True)
    for argv in (
        ["certutil", "-N", "-d", database, "--empty-password"],
        ["certutil", "-A", "-d", database, "-t", "C,,", "-n", "turn", "-i", str(certificate.cert)],
    ):
        subprocess.run(argv, check=True, capture_output=True)
    return home


@pytest.fixture
async def browser(
    udp_blocked_hall: Hosts, stack: Stack, certificate: Certificate, tmp_path: Path
) -> AsyncIterator[Browser]:
    """Chromium started inside the hall's namespace (Playwright drives it over a pipe, which
    `ip netns exec` passes on). The kiosk page is served over plain HTTP on a private
    address here, so Chromium is told to treat it as secure (camera access), as HTTPS is in
    a deployment."""
    wrapper = tmp_path / "chromium-in-hall"
    namespace = udp_blocked_hall.namespaces["hall"]
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {namespace} {CHROMIUM} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    home = _trusting_home(tmp_path / "home", certificate)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(wrapper),
            args=[*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={stack.control}"],
            env={**os.environ, "HOME": str(home)},
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def _programme_width(page: Page) -> int:
    return int(await page.evaluate('document.getElementById("programme").videoWidth'))


async def test_kiosk_in_a_udp_blocked_hall_joins_over_turn_tcp_or_tls(
    udp_blocked_hall: Hosts,
    transport: str,
    stack: Stack,
    sites: dict[str, Site],
    it_user: dict[str, str],
    browser: Browser,
    peers: list[WhipPublisher | WhepViewer],
) -> None:
    """Paired in a hall that lets no UDP out, the kiosk's sending and receiving connections
    come up on relay candidates reached over TCP (or TLS), and it decodes the chair's video."""
    grant = await stack.join("hq")
    chair = WhipPublisher(grant["whip_url"], grant["token"], width=CHAIR_WIDTH, height=120)
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{stack.control}/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it_user
        )
    # relative: the control plane listens beyond loopback without a configured public_url
    pairing_url = str(httpx.URL(stack.control).join(created.json()["pairing"]["pairing_url"]))

    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    await context.add_init_script(KEEP_PEER_CONNECTIONS)
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    try:
        await page.goto(pairing_url + "&agenda_s=2")

        async def showing() -> bool:
            return await _programme_width(page) == CHAIR_WIDTH

        await eventually(showing, JOIN_TIMEOUT_S, "the chair's video on the kiosk")

        async def both_selected() -> list[dict[str, Any]] | None:
            selected = await page.evaluate(SELECTED_LOCAL_CANDIDATES)
            return selected if len(selected) == 2 and all(selected) else None

        selected = await eventually(both_selected, 10, "the kiosk's two connected peers")
        assert selected == [{"type": "relay", "relayProtocol": transport}] * 2
        frames = await page.evaluate(
            """() => document.getElementById("programme").getVideoPlaybackQuality()
                .totalVideoFrames"""
        )
        assert frames > 0
    except Exception:
        print("\n".join(console[-60:]))
        raise
    finally:
        await context.close()
    assert udp_dropped(udp_blocked_hall, "hall") > 0, "the hall never tried UDP"
