"""Through coturn on loopback with time-limited credentials (TURN REST, `use-auth-secret`): a
terminal allowed only relay candidates still receives the programme."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from confbridge.sites.models import Site
from tests.support.peers import WhepViewer, WhipPublisher
from tests.support.servers import AgentProcess, Stack, pairing_code

TURNSERVER = shutil.which("turnserver")
if TURNSERVER is None and not os.environ.get("CI"):
    pytest.skip("coturn's turnserver is not installed (CI installs it)", allow_module_level=True)

TURN_SECRET = "turn-shared-secret-for-tests"
TURN_START_TIMEOUT_S = 10.0


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Coturn:
    """`turnserver` on 127.0.0.1 with a temporary configuration; its log is kept."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_udp_port()
        relay_low = 42_000 + (self.port % 200) * 20
        self.log = workdir / "turnserver.log"
        self.config = workdir / "turnserver.conf"
        self.config.write_text(
            "\n".join(
                [
                    "listening-ip=127.0.0.1",
                    "relay-ip=127.0.0.1",
                    f"listening-port={self.port}",
                    f"min-port={relay_low}",
                    f"max-port={relay_low + 19}",
                    "use-auth-secret",
                    f"static-auth-secret={TURN_SECRET}",
                    "realm=confbridge.test",
                    # the bridge is on loopback too: coturn refuses such peers unless told
                    "allow-loopback-peers",
                    "no-tls",
                    "no-dtls",
                    "no-cli",
                    "fingerprint",
                    f"pidfile={workdir / 'turnserver.pid'}",
                    f"userdb={workdir / 'turndb'}",
                    "simple-log",
                    "verbose",
                    f"log-file={self.log}",
                    "",
                ]
            )
        )
        self.url = f"turn:127.0.0.1:{self.port}?transport=udp"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Coturn:
        assert TURNSERVER is not None
        self._process = subprocess.Popen(
            [TURNSERVER, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + TURN_START_TIMEOUT_S
        while not self._listening():
            assert self._process.poll() is None, f"turnserver exited: {self.log_text()}"
            assert time.monotonic() < deadline, "turnserver did not start"
            time.sleep(0.1)
        return self

    def _listening(self) -> bool:
        return f"UDP listener opened on: 127.0.0.1:{self.port}" in self.log_text()

    def log_text(self) -> str:
        # coturn adds the date to the file name it is given
        found = sorted(self.log.parent.glob("turnserver*.log"))
        return "\n".join(f.read_text(errors="replace") for f in found)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    server = Coturn(tmp_path_factory.mktemp("coturn")).start()
    yield server
    server.stop()


@pytest.fixture
def stack_options(coturn: Coturn, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # merged into the stack's `sfu` settings (environment and arguments are deep-merged)
    turn = {"urls": [coturn.url], "shared_secret": TURN_SECRET, "credential_ttl_s": 600}
    monkeypatch.setenv("CONFBRIDGE_SFU__TURN", json.dumps(turn))
    return {}


def _check_credential(server: dict[str, Any], site_id: int) -> None:
    expiry, _, user = server["username"].partition(":")
    assert user == str(site_id)
    assert time.time() < int(expiry) <= time.time() + 601
    expected = hmac.new(TURN_SECRET.encode(), server["username"].encode(), hashlib.sha1)
    assert server["credential"] == base64.b64encode(expected.digest()).decode()


async def test_relay_only_terminal_receives_media_through_coturn(
    stack: Stack,
    coturn: Coturn,
    sites: dict[str, Site],
    it_user: dict[str, str],
    agents: Callable[[list[str]], AgentProcess],
    peers: list[WhipPublisher | WhepViewer],
) -> None:
    """The grant and the worker's Link headers carry TURN credentials; a relay-only agent gets
    the chair's video through coturn, which saw the site's credential."""
    grant = await stack.join("p2")
    (turn,) = [s for s in grant["ice_servers"] if s["urls"] == [coturn.url]]
    _check_credential(turn, sites["p2"].id)

    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"])
    peers.append(chair)
    answer = await chair.start()
    assert answer.status_code == 201
    link = answer.headers["link"]
    assert f"<{coturn.url}>" in link and 'rel="ice-server"' in link
    assert f':{sites["hq"].id}"' in link  # username "<expiry>:<site id>"

    agent = agents(
        [
            "--server",
            stack.control,
            "--pair",
            pairing_code(stack, it_user, sites["p1"]),
            "--host-address",
            "127.0.0.1",
            "--relay-only",
            "--agenda-interval-s",
            "2",
        ]
    )
    await agent.wait_for("joined", 40)
    video = await agent.wait_for("video", 20)
    assert video["width"] == 160
    log = coturn.log_text()
    assert f":{sites['p1'].id}" in log, "coturn never saw the terminal's credential"
    assert "ALLOCATE processed, success" in log
    async with httpx.AsyncClient(timeout=10) as http:
        rooms = await http.get(
            f"{stack.worker}/rooms", headers={"Authorization": "Bearer " + _node_secret()}
        )
    assert {p["site_id"] for r in rooms.json()["rooms"] for p in r["peers"]} >= {sites["p1"].id}


def _node_secret() -> str:
    from tests.support.servers import NODE_SECRET

    return NODE_SECRET
