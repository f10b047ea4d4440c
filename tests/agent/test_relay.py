"""Through coturn on loopback with time-limited credentials (TURN REST, `use-auth-secret`): a
terminal allowed only relay candidates still receives the programme."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from confbridge.sites.models import Site
from tests.support.peers import WhepViewer, WhipPublisher
from tests.support.servers import AgentProcess, Stack, pairing_code
from tests.support.turn import TURN_SECRET, Coturn, skip_without_coturn

skip_without_coturn()


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
