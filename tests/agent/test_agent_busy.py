"""A media server under a join storm answers 503 with Retry-After: the agent waits as told
(with jitter), offers the same grant again, and reports no error meanwhile; so does the
content it presents."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from confbridge.agent.agent import AgentOptions, TerminalAgent
from confbridge.agent.backoff import Backoff, retry_delay_s
from confbridge.agent.client import ControlClient
from confbridge.agent.content import ContentSource, present
from confbridge.agent.media import MediaSources
from confbridge.agent.session import SessionError, _reason
from confbridge.timeutil import utcnow
from tests.support.content_share import slides_clip
from tests.support.peers import until
from tests.support.servers import ServerThread

REFUSALS = 2  # per WHIP and WHEP resource, before the media server admits the hall
RETRY_AFTER_S = 2  # longer than the back-off (1 s): waiting that long shows it was read


class BusyBridge:
    """A control plane and a media server in one real HTTP server: the agenda holds one
    meeting on now; WHIP and WHEP answer `REFUSALS` times 503 (JSON, Retry-After), then 409."""

    def __init__(self, content_join_refusals: int = 0) -> None:
        self.grants = 0
        self.posts: dict[str, list[tuple[float, str]]] = {"whip": [], "whep": []}
        self.url = ""
        # the control plane answers the first content joins 503 with Retry-After
        self.content_join_refusals = content_join_refusals
        self.content_joins: list[float] = []

    def app(self) -> Starlette:
        now = utcnow()

        async def me(_request: Request) -> Response:
            return JSONResponse(
                {"terminal_id": 1, "name": "Hội trường", "site_id": 2, "site_name": "Xã A",
                 "heartbeat_interval_s": 30}
            )  # fmt: skip

        async def agenda(_request: Request) -> Response:
            item = {
                "occurrence_id": 7, "title": "Giao ban", "mode": "online", "is_chair": False,
                "start_at": (now - timedelta(minutes=1)).isoformat(),
                "end_at": (now + timedelta(hours=1)).isoformat(),
            }  # fmt: skip
            return JSONResponse({"site_id": 2, "site_name": "Xã A", "items": [item]})

        async def join(request: Request) -> Response:
            body = await request.json() if await request.body() else {}
            if body.get("purpose") == "content":
                self.content_joins.append(time.monotonic())
                if len(self.content_joins) <= self.content_join_refusals:
                    return JSONResponse(
                        {"detail": "no media server is up just now"},
                        status_code=503,
                        headers={"Retry-After": str(RETRY_AFTER_S)},
                    )
            self.grants += 1
            return JSONResponse(
                {
                    "whip_url": f"{self.url}/whip/occ-7",
                    "whep_url": f"{self.url}/whep/occ-7",
                    "token": f"grant-{self.grants}",
                    "ice_servers": [],
                    "expires_at": (now + timedelta(hours=1)).isoformat(),
                    "role": "site",
                    "node_id": "n1",
                    "viewing_node_id": "n1",
                }
            )

        async def heartbeat(_request: Request) -> Response:
            return JSONResponse({})

        async def session(request: Request) -> Response:
            kind = request.url.path.split("/")[1]
            posts = self.posts[kind]
            posts.append((time.monotonic(), request.headers["authorization"]))
            if len(posts) <= REFUSALS:
                return JSONResponse(
                    {"detail": "this media server is admitting other halls just now",
                     "retry_after_s": RETRY_AFTER_S},
                    status_code=503,
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )  # fmt: skip
            # then a refusal for good: the agent reports it and asks for a new grant
            return PlainTextResponse("the meeting has ended; the room is closed\n", 409)

        return Starlette(
            routes=[
                Route("/api/v1/terminals/me", me),
                Route("/api/v1/terminals/me/agenda", agenda),
                Route("/api/v1/occurrences/{id}/join", join, methods=["POST"]),
                Route("/api/v1/terminals/me/heartbeat", heartbeat, methods=["POST"]),
                Route("/{kind}/occ-7", session, methods=["POST"]),
            ]
        )


async def test_agent_waits_as_a_busy_media_server_asks_with_the_same_grant(
    serve: Callable[..., ServerThread], loopback: None
) -> None:
    bridge = BusyBridge()
    server = serve(bridge.app())
    bridge.url = server.url
    client = ControlClient(server.url, token="cbt_x")
    agent = TerminalAgent(client, MediaSources(), AgentOptions(server=server.url))
    running = asyncio.create_task(agent.run())
    try:
        await until(lambda: len(bridge.posts["whip"]) >= 1, 20)
        await asyncio.sleep(0.3)
        # waiting its turn is not a failure: IT staff see no error in the heartbeat
        assert agent.heartbeat_report()["last_error"] is None
        await until(lambda: bridge.grants >= 2, 30)
        # the 409 after the waits is a failure, and is reported as one
        assert "409" in str(agent.heartbeat_report()["last_error"])
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await client.close()
    whip = bridge.posts["whip"][: REFUSALS + 1]
    # the grant in hand was offered again after each wait; a new one only after the 409
    assert [token for _at, token in whip] == ["Bearer grant-1"] * (REFUSALS + 1)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(whip)]
    # never sooner than told; at most 20 % and 0.2 s of jitter later (and a loaded machine)
    assert all(RETRY_AFTER_S <= gap <= RETRY_AFTER_S * 1.2 + 0.2 + 0.5 for gap in gaps), gaps


async def test_agent_content_waits_as_told_and_offers_the_same_grant(
    serve: Callable[..., ServerThread], loopback: None, tmp_path: Path
) -> None:
    """Presenting content honours Retry-After as the meeting's join does: the control plane's
    503 is waited out as told (not the content's own short retry), and a busy media server is
    offered the same content grant again after each wait."""
    clip = tmp_path / "slides.webm"
    slides_clip(clip, 160, 90)
    source = ContentSource(file=str(clip))
    await asyncio.to_thread(source.open)
    bridge = BusyBridge(content_join_refusals=1)
    server = serve(bridge.app())
    bridge.url = server.url
    client = ControlClient(server.url, token="cbt_x")
    presenting = asyncio.create_task(present(client, source, 7, retry_s=0.2))
    try:
        await until(lambda: len(bridge.posts["whip"]) > REFUSALS, 30)
    finally:
        presenting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await presenting
        await client.close()
        source.close()
    first, second = bridge.content_joins[:2]
    assert RETRY_AFTER_S <= second - first <= RETRY_AFTER_S * 1.2 + 0.2 + 0.5
    whip = bridge.posts["whip"][: REFUSALS + 1]
    assert [token for _at, token in whip] == ["Bearer grant-1"] * (REFUSALS + 1)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(whip)]
    assert all(RETRY_AFTER_S <= gap <= RETRY_AFTER_S * 1.2 + 0.2 + 0.5 for gap in gaps), gaps


def test_agent_a_busy_media_server_s_retry_after_replaces_the_back_off() -> None:
    backoff = Backoff(1.0, 8.0)
    busy = SessionError(503, "admitting other halls", retry_after_s=3.0)
    assert busy.busy
    delays = [retry_delay_s(backoff, busy) for _ in range(100)]
    assert all(3.0 <= d <= 3.0 * 1.2 + 0.2 for d in delays)
    assert max(delays) - min(delays) > 0.1  # jittered: the halls do not come back together
    assert backoff.attempts == 0
    assert not SessionError(503, "no free media port").busy


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("application/json", '{"detail": "admitting other halls", "retry_after_s": 2}',
         "admitting other halls"),
        ("text/plain", "the SDP is too large\nmore", "the SDP is too large"),
    ],
)  # fmt: skip
def test_agent_session_reads_a_refusal_s_reason(content_type: str, body: str, reason: str) -> None:
    response = httpx.Response(
        503, headers={"content-type": content_type, "retry-after": "2"}, text=body
    )
    assert _reason(response) == reason
