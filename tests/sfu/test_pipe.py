"""One room on two workers: the origin pipes its sources to an edge, whose viewers decode the
chair, and a floor change at the origin reaches them."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiortc.rtp import RtpPacket

from confbridge.auth.models import Role
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from sfu.cascade import UPSTREAM_SILENCE_S
from sfu.pipe import PipedCodec, PipedSource, PipeIn
from tests.support.content_share import content_follows_presenters
from tests.support.factories import let_node_hold
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.polling import eventually
from tests.support.servers import NODE_SECRET, Stack

READER = {"Authorization": f"Bearer {NODE_SECRET}"}  # reads /rooms


@pytest.fixture
def stack_options(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("CONFBRIDGE_SFU_HEARTBEAT_INTERVAL_S", "1")
    return {"sfu": {"local_workers": 2}}


def other_worker(url: str, stack: Stack) -> str:
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    first = int(stack.worker.rsplit(":", 1)[1])
    return f"http://127.0.0.1:{first + 1 if port == first else first}"


def base(url: str) -> str:
    return url.split("/wh", 1)[0]


async def test_pipe_edge_viewers_decode_the_chair_and_follow_the_floor(
    stack: Stack, peers: list, sites: dict[str, Site], make_user: Any
) -> None:
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    origin = base(chair_grant["whip_url"])
    edge = other_worker(origin, stack)
    room = f"occ-{stack.occurrence_id}"

    async with httpx.AsyncClient(timeout=10) as http:
        # the chair's tracks feed the room once its session has connected (on a busy machine,
        # a while after the answer)
        async def chair_connected() -> bool:
            answer = await http.get(f"{origin}/rooms", headers=stack.admin(origin))
            held = [r for r in answer.json()["rooms"] if r["room"] == room]
            return bool(held) and any(p["connected"] for p in held[0]["peers"])

        await eventually(chair_connected, timeout_s=15, what="the chair's session connected")
        extended = await http.post(
            f"{edge}/rooms/{room}/pipe",
            json={
                "origin_url": origin,
                "occurrence_id": stack.occurrence_id,
                "chair_site_id": sites["hq"].id,
                "ends_at": (utcnow() + timedelta(hours=1)).isoformat(),
                "token": stack.relay_token(),
            },
            headers=stack.admin(edge),
        )
        assert extended.status_code == 200, extended.text
        assert extended.json()["sources"] == 2  # the chair's video and audio
    # as the control plane records an edge it extends the room to: its events are accepted
    assert stack.database is not None
    let_node_hold(stack.database, stack.node_id(edge), stack.occurrence_id)

    viewer_grant = await stack.join("p1")
    viewer = WhepViewer(f"{edge}/whep/{room}", viewer_grant["token"])
    peers.append(viewer)
    assert (await viewer.start()).status_code == 201
    await until(lambda: len(viewer.frames) > 10 and viewer.audio_frames > 10, timeout_s=15)
    assert viewer.widths_since(0) == {320}  # the chair, through the pipe

    # a hall cannot publish to an edge, nor take the floor there
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.post(
            f"{edge}/rooms/{room}/floor",
            json={"action": "take", "by": "test"},
            headers=stack.admin(edge),
        )
    assert refused.status_code == 409

    p2 = await stack.join("p2")
    speaker = WhipPublisher(p2["whip_url"], p2["token"], width=176, height=144)
    peers.append(speaker)
    assert base(p2["whip_url"]) == origin
    assert (await speaker.start()).status_code == 201
    given = await stack.floor("give", sites["p2"].id)
    assert given.status_code == 200, given.text
    switched_at = time.monotonic()
    await until(lambda: 176 in viewer.widths_since(switched_at), timeout_s=10)
    taken = await stack.floor("take")
    assert taken.status_code == 200
    back_at = time.monotonic()
    await until(lambda: 320 in viewer.widths_since(back_at + 0.5), timeout_s=10)

    # the edge's worker reports its viewer like any other
    it = make_user(Role.it)
    async with httpx.AsyncClient(base_url=stack.control) as http:
        nodes = (await http.get("/api/v1/sfu/nodes", headers=it)).json()
    assert len(nodes) == 2
    deadline = time.monotonic() + 10
    while True:
        events = await stack.events()
        joined = [e for e in events if e["type"] == "joined" and e["site_id"] == sites["p1"].id]
        if joined:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert joined[0]["node_id"] != chair_grant.get("node_id")


@pytest.fixture
def small_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    # each worker takes 2 sessions before the control plane extends the room to the other
    monkeypatch.setenv("CONFBRIDGE_SFU_CAPACITY_PEERS", "2")


async def test_pipe_the_control_plane_extends_a_full_room(
    small_workers: None, stack: Stack, peers: list, sites: dict[str, Site], make_user: Any
) -> None:
    it = make_user(Role.it)

    async def registered() -> bool:
        async with httpx.AsyncClient(base_url=stack.control) as http:
            nodes = (await http.get("/api/v1/sfu/nodes", headers=it)).json()
        return len(nodes) == 2 and all(n["capacity_peers"] == 2 for n in nodes)

    deadline = time.monotonic() + 10
    while not await registered():
        assert time.monotonic() < deadline, "the workers did not register"
        await asyncio.sleep(0.2)

    chair_grant = await stack.join("hq")  # publishes and views at the origin: it is full
    origin = base(chair_grant["whip_url"])
    assert base(chair_grant["whep_url"]) == origin
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    assert (await chair.start()).status_code == 201

    first = await stack.join("p1")
    second = await stack.join("p2")
    edge = base(first["whep_url"])
    assert edge != origin and base(second["whep_url"]) == edge  # one edge, reused
    assert base(first["whip_url"]) == base(second["whip_url"]) == origin
    viewers = [WhepViewer(g["whep_url"], g["token"]) for g in (first, second)]
    for viewer in viewers:
        peers.append(viewer)
        assert (await viewer.start()).status_code == 201
    await until(lambda: all(len(v.frames) > 5 for v in viewers), timeout_s=15)
    assert all(v.widths_since(0) == {320} for v in viewers)

    speaker = WhipPublisher(second["whip_url"], second["token"], width=176, height=144)
    peers.append(speaker)
    assert (await speaker.start()).status_code == 201
    assert (await stack.floor("give", sites["p2"].id)).status_code == 200
    given_at = time.monotonic()
    # p1 on the edge sees p2; p2 (the speaker, on the edge too) sees the chair it followed
    await until(lambda: 176 in viewers[0].widths_since(given_at), timeout_s=10)
    assert 176 not in viewers[1].widths_since(given_at)


@pytest.fixture
def one_session_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_SFU_CAPACITY_PEERS", "1")


async def test_pipe_an_edge_whose_origin_dies_closes_the_room(
    one_session_workers: None, stack: Stack, peers: list, make_user: Any
) -> None:
    """The origin falls silent (killed): its edge closes the room after UPSTREAM_SILENCE_S, so
    that its halls notice and join again, rather than watching a frozen programme."""
    it = make_user(Role.it)

    async def origin_sessions(node_id: str) -> int:
        async with httpx.AsyncClient(base_url=stack.control) as http:
            nodes = (await http.get("/api/v1/sfu/nodes", headers=it)).json()
        return sum(n["peers"] for n in nodes if n["id"] == node_id and len(nodes) == 2)

    # the chair's screen fills the origin (one session), with nothing published yet
    chair_grant = await stack.join("hq")
    chair_screen = WhepViewer(chair_grant["whep_url"], chair_grant["token"])
    peers.append(chair_screen)
    assert (await chair_screen.start()).status_code == 201
    deadline = time.monotonic() + 10
    while await origin_sessions(chair_grant["node_id"]) != 1:
        assert time.monotonic() < deadline, "the origin did not report its session"
        await asyncio.sleep(0.2)
    grant = await stack.join("p1")
    edge = base(grant["whep_url"])
    assert edge != base(chair_grant["whip_url"])
    viewer = WhepViewer(grant["whep_url"], grant["token"])
    peers.append(viewer)
    assert (await viewer.start()).status_code == 201

    async def edge_rooms() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=5) as http:
            return (await http.get(f"{edge}/rooms", headers=READER)).json()["rooms"]

    # no media on the pipe yet: the origin's keepalive holds the edge's room open
    await until(lambda: viewer.pc.connectionState == "connected", timeout_s=10)
    await asyncio.sleep(UPSTREAM_SILENCE_S + 1)
    assert len(await edge_rooms()) == 1
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    await until(lambda: len(viewer.frames) > 5, timeout_s=15)

    origin_index = 0 if chair_grant["node_id"] == "local-0" else 1
    stack.workers.processes[origin_index].send_signal(signal.SIGKILL)
    deadline = time.monotonic() + UPSTREAM_SILENCE_S + 3
    while await edge_rooms():
        assert time.monotonic() < deadline, "the edge still serves a room with no origin"
        await asyncio.sleep(0.2)
    await until(lambda: viewer.pc.connectionState in ("closed", "failed"), timeout_s=5)


@pytest.mark.integration
async def test_pipe_an_edge_takes_rtp_only_from_its_origin() -> None:
    """Anyone who can reach the edge's pipe port could otherwise inject media into the room."""
    edge = await PipeIn.open("127.0.0.1")
    origin = await PipeIn.open("127.0.0.1")  # any socket; only its address matters here
    stranger = await PipeIn.open("127.0.0.1")
    try:
        edge.origin_addr = origin.local_addr
        piped = PipedSource(
            site_id=1,
            kind="audio",
            ssrc=1234,
            codecs=[PipedCodec(mime_type="audio/opus", clock_rate=48000, payload_type=111)],
        )
        source = edge.source_for(piped, label="test")
        packet = RtpPacket(payload_type=111, sequence_number=1, ssrc=1234, payload=b"x").serialize()
        assert stranger.transport is not None and origin.transport is not None
        stranger.transport.sendto(packet, edge.local_addr)
        await asyncio.sleep(0.2)
        assert edge.packets == 0 and source.stats().packets_received == 0
        origin.transport.sendto(packet, edge.local_addr)
        await until(lambda: edge.packets == 1, timeout_s=2)
        assert source.stats().packets_received == 1
    finally:
        for end in (edge, origin, stranger):
            end.close()


async def test_pipe_edge_viewers_get_the_content_and_follow_its_presenters(
    stack: Stack, peers: list, sites: dict[str, Site]
) -> None:
    """A presentation at the origin reaches an edge viewer's content track through the pipe;
    stopped, it stops there; the next presenter's arrives."""
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    p2 = await stack.join("p2")  # a hall at the origin, to be given the floor
    hall = WhipPublisher(p2["whip_url"], p2["token"], width=176, height=144)
    peers.append(hall)
    assert (await hall.start()).status_code == 201
    origin = base(chair_grant["whip_url"])
    edge = other_worker(origin, stack)
    room = f"occ-{stack.occurrence_id}"
    async with httpx.AsyncClient(timeout=10) as http:

        async def both_connected() -> bool:
            answer = await http.get(f"{origin}/rooms", headers=stack.admin(origin))
            held = [r for r in answer.json()["rooms"] if r["room"] == room]
            return bool(held) and sum(p["connected"] for p in held[0]["peers"]) >= 2

        await eventually(both_connected, timeout_s=15, what="both halls' sessions connected")
        extended = await http.post(
            f"{edge}/rooms/{room}/pipe",
            json={
                "origin_url": origin,
                "occurrence_id": stack.occurrence_id,
                "chair_site_id": sites["hq"].id,
                "ends_at": (utcnow() + timedelta(hours=1)).isoformat(),
                "token": stack.relay_token(),
            },
            headers=stack.admin(edge),
        )
        assert extended.status_code == 200, extended.text
    assert stack.database is not None
    let_node_hold(stack.database, stack.node_id(edge), stack.occurrence_id)

    viewer_grant = await stack.join("p1")
    viewer = WhepViewer(f"{edge}/whep/{room}", viewer_grant["token"], content=True)
    peers.append(viewer)
    assert (await viewer.start()).status_code == 201
    await until(lambda: len(viewer.frames) > 10, timeout_s=15)
    await content_follows_presenters(stack, viewer, sites, peers)
    assert viewer.widths_since(time.monotonic() - 1) != set()  # the programme goes on
