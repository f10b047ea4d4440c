"""The cascade between nodes: an edge relays the room from the node above it over WHEP.

On separate hosts (network namespaces): the chair's province holds the room; the node of each
other province relays it and serves that province's sites; the chair's floor changes reach
them through the tree; an edge, then the origin, dies mid-meeting. On loopback: a deeper chain
(origin → edge → edge, and a worker piped from the first edge) and the relay session's rules.
First, the pure part: which relay track carries whom."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from confbridge import signing
from confbridge.auth.models import Role
from confbridge.bridge import service as bridge_service
from confbridge.db import Database
from confbridge.local_workers import LocalWorkers
from confbridge.main import create_app
from confbridge.meetings.models import Occurrence
from confbridge.sites import service as site_service
from confbridge.sites.models import Site, UnitKind
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import FloorAction, FloorCommand
from sfu.cascade import RelayState, assign_tracks, relayed_sources
from sfu.codecs import RtpCodec
from sfu.floor import Floor
from sfu.forwarding import Source
from sfu.rtc.ice import use_host_addresses
from tests.support.content_share import content_follows_presenters
from tests.support.factories import enrol_node, make_settings, open_occurrence
from tests.support.netns import Hosts, hosts, netns_missing
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.servers import NODE_SECRET, ServerThread, Stack

READER = {"Authorization": f"Bearer {NODE_SECRET}"}  # reads /rooms and /metrics
MEDIA_SILENCE_S = 1.0  # what a hall takes as a lost connection
BACK_WITHIN_S = 10.0
VP8 = RtpCodec(mime_type="video/VP8", clock_rate=90000, payload_type=96)
OPUS = RtpCodec(mime_type="audio/opus", clock_rate=48000, payload_type=111, channels=2)
WORKER_PORT = 8001
# node → the province it serves: Hà Nội holds the chair, Quảng Ninh and Hải Phòng relay
NODES = {"hanoi": "01", "quangninh": "22", "haiphong": "31"}


# --- which relay track carries whom ---------------------------------------------------------


def test_cascade_tracks_keep_their_site_while_it_is_wanted() -> None:
    floor = Floor(room="r", chair_site_id=1)
    video, audio = floor.relay_sites()
    assert (video, audio) == ([1, None], [1, None])  # the chair speaks: one of each
    tracks = assign_tracks([None, None], video)
    assert tracks == [1, None]
    floor.apply(FloorCommand(action=FloorAction.give, site_id=5, by="t"), {1, 5})
    video, audio = floor.relay_sites()
    assert (video, audio) == ([5, 1], [5, 1])
    # the chair stays on its track (hall 5 watches it there, no switch); 5 takes the free one
    tracks = assign_tracks(tracks, video)
    assert tracks == [1, 5]
    floor.apply(FloorCommand(action=FloorAction.give, site_id=7, by="t"), {1, 5, 7})
    assert floor.relay_sites()[0] == [7, 5]  # hall 7 sees who spoke before
    assert assign_tracks(tracks, floor.relay_sites()[0]) == [7, 5]
    assert assign_tracks([3, 4], [None, None]) == [None, None]


def test_cascade_relayed_sources_follow_the_state() -> None:
    floor = Floor(room="r", chair_site_id=1).state()
    video = [Source("video", [VP8]), Source("video", [VP8])]
    audio = [Source("audio", [OPUS]), Source("audio", [OPUS])]
    state = RelayState(floor=floor, video=[1, 5], audio=[5, None])
    assert relayed_sources(state, video, audio) == {
        (1, "video"): video[0],
        (5, "video"): video[1],
        (5, "audio"): audio[0],
    }


@dataclass
class Cascade:
    stack: Stack
    hosts: Hosts
    processes: dict[str, subprocess.Popen[bytes]]
    keys: dict[str, str]

    def node_url(self, node: str) -> str:
        return f"http://{self.hosts.addresses[node]}:{WORKER_PORT}"

    def admin(self, node: str) -> dict[str, str]:
        """The node's own key, as its operator uses it on its admin API."""
        return {"Authorization": f"Bearer {self.keys[node]}"}


def _in_provinces(session: Session, sites: dict[str, Site]) -> None:
    """hq in Hà Nội (01), p1 in Quảng Ninh (22), p2 in Hải Phòng (31)."""
    for key, code, name in (
        ("hq", "01", "Hà Nội"),
        ("p1", "22", "Quảng Ninh"),
        ("p2", "31", "Hải Phòng"),
    ):
        unit = site_service.create_unit(
            session=session, name=name, kind=UnitKind.province, code=code
        )
        site = session.get(Site, sites[key].id)
        assert site is not None
        site.unit_id = unit.id
    session.commit()


def _wait_until_registered(control: str, it_staff: dict[str, str], count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        nodes = httpx.get(f"{control}/api/v1/sfu/nodes", headers=it_staff, timeout=5).json()
        if sum(1 for node in nodes if node["state"] == "up") >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"the nodes did not register: {nodes}")


@pytest.fixture
def cascade(
    database: Database,
    session: Session,
    tmp_path: Path,
    sites: dict[str, Site],
    secretariat: dict[str, str],
    make_user: Any,
) -> Iterator[Cascade]:
    if (missing := netns_missing()) is not None:
        pytest.skip(missing)
    _in_provinces(session, sites)
    with hosts(list(NODES)) as made:
        # terminals (this process) reach the nodes through the bridge, as from their halls
        use_host_addresses([made.gateway])
        settings = make_settings(
            database.settings.database_url or "",
            tmp_path,
            sfu={"node_secret": NODE_SECRET, "local_workers": 0},
        )
        control = ServerThread(create_app(settings, database=database), host=made.gateway)
        control.start()
        processes: dict[str, subprocess.Popen[bytes]] = {}
        environment = LocalWorkers(settings, control_url=control.url)
        # each node enrolled by an admin, its key given to it (remote: no loopback)
        keys = {
            node: enrol_node(database, node, allow_loopback=False)["Authorization"].split()[1]
            for node in NODES
        }
        try:
            for index, (node, region) in enumerate(NODES.items()):
                address = made.addresses[node]
                env = environment.environment(index, keys[node]) | {
                    "CONFBRIDGE_SFU_NODE_ID": node,
                    "CONFBRIDGE_SFU_HOST": address,
                    "CONFBRIDGE_SFU_PORT": str(WORKER_PORT),
                    "CONFBRIDGE_SFU_PUBLIC_URL": f"http://{address}:{WORKER_PORT}",
                    "CONFBRIDGE_SFU_INTERNAL_URL": f"http://{address}:{WORKER_PORT}",
                    "CONFBRIDGE_SFU_MEDIA_IP": address,
                    "CONFBRIDGE_SFU_MACHINE_ID": f"machine-{node}",
                    "CONFBRIDGE_SFU_REGION": region,
                    "CONFBRIDGE_SFU_HEARTBEAT_INTERVAL_S": "1",
                    "CONFBRIDGE_SFU_UDP_PORT_MIN": "0",
                    "CONFBRIDGE_SFU_UDP_PORT_MAX": "0",
                    # as on a machine of its own: the key comes from the control plane
                    "CONFBRIDGE_SFU_GRANT_PUBLIC_KEY_FILE": str(tmp_path / node / "grant.pem"),
                }
                command = made.command(node, [sys.executable, "-m", "confbridge.cli", "sfu"])
                processes[node] = subprocess.Popen(command, env=env)
            _wait_until_registered(control.url, make_user(Role.it), len(NODES))
            occurrence_id, tokens = open_occurrence(database, settings, sites)
            stack = Stack(control.url, "", (0, 0), occurrence_id, tokens, secretariat, environment)
            yield Cascade(stack, made, processes, keys)
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            control.stop()
            use_host_addresses(None)


async def test_cascade_origin_two_edges_viewers_and_the_floor(
    cascade: Cascade, peers: list, sites: dict[str, Site]
) -> None:
    stack = cascade.stack
    chair_grant = await stack.join("hq")
    assert chair_grant["whip_url"].startswith(cascade.node_url("hanoi"))  # the chair's province
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    assert (await chair.start()).status_code == 201

    # each ward publishes to the origin and watches from its own province's node
    viewers: dict[str, WhepViewer] = {}
    for key, node, width in (("p1", "quangninh", 176), ("p2", "haiphong", 240)):
        grant = await stack.join(key)
        assert grant["whip_url"].startswith(cascade.node_url("hanoi"))
        assert grant["whep_url"].startswith(cascade.node_url(node)), grant["whep_url"]
        publisher = WhipPublisher(grant["whip_url"], grant["token"], width=width, height=144)
        peers.append(publisher)
        assert (await publisher.start()).status_code == 201
        viewer = WhepViewer(grant["whep_url"], grant["token"])
        peers.append(viewer)
        assert (await viewer.start()).status_code == 201
        viewers[key] = viewer

    # both edges relay the chair, video and sound, from the origin
    await until(
        lambda: all(len(v.frames) > 10 and v.audio_frames > 10 for v in viewers.values()),
        timeout_s=20,
    )
    assert all(v.widths_since(time.monotonic() - 1) == {320} for v in viewers.values())
    async with httpx.AsyncClient(timeout=10) as http:
        for node in ("quangninh", "haiphong"):
            rooms = (await http.get(f"{cascade.node_url(node)}/rooms", headers=READER)).json()
            (room,) = rooms["rooms"]
            assert room["upstream"] == f"{cascade.node_url('hanoi')}/whep/{room['room']}"
        origin = (await http.get(f"{cascade.node_url('hanoi')}/rooms", headers=READER)).json()
        assert origin["rooms"][0]["relays"] == 2

    # the chair gives the floor to p1 (Quảng Ninh): Hải Phòng sees p1 through the tree;
    # p1's own screen shows the chair (a hall never sees itself)
    assert (await stack.floor("give", sites["p1"].id)).status_code == 200
    moment = time.monotonic()
    await until(lambda: 176 in viewers["p2"].widths_since(moment), timeout_s=10)
    await until(lambda: viewers["p2"].widths_since(time.monotonic() - 0.5) == {176}, 10)
    await until(lambda: len([f for f in viewers["p1"].frames if f.at > moment]) > 10, 10)
    assert viewers["p1"].widths_since(moment) == {320}

    # the floor moves to p2 (Hải Phòng): Quảng Ninh sees p2; p2 sees who spoke before (p1)
    assert (await stack.floor("give", sites["p2"].id)).status_code == 200
    moment = time.monotonic()
    await until(lambda: viewers["p1"].widths_since(time.monotonic() - 0.5) == {240}, 10)
    await until(lambda: viewers["p2"].widths_since(time.monotonic() - 0.5) == {176}, 10)

    # relays are nodes, not sites: attendance knows only the halls
    events = await stack.events()
    assert {e["site_id"] for e in events if e["type"] == "joined"} == {
        sites["hq"].id,
        sites["p1"].id,
        sites["p2"].id,
    }


async def test_cascade_an_edge_lost_sends_its_halls_elsewhere_within_10_s(
    cascade: Cascade, peers: list
) -> None:
    stack = cascade.stack
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    grant = await stack.join("p1")
    assert (grant["node_id"], grant["viewing_node_id"]) == ("hanoi", "quangninh")
    viewer = WhepViewer(grant["whep_url"], grant["token"])
    peers.append(viewer)
    assert (await viewer.start()).status_code == 201
    await until(lambda: len(viewer.frames) > 5, timeout_s=20)

    cascade.processes["quangninh"].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    await until(lambda: time.monotonic() - viewer.frames[-1].at > MEDIA_SILENCE_S, timeout_s=5)
    # the hall joins again naming the node it lost; Quảng Ninh has no other node: the origin
    async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:
        response = await http.post(
            f"/api/v1/occurrences/{stack.occurrence_id}/join",
            json={"failed_node_id": grant["viewing_node_id"]},
            headers={"Authorization": f"Bearer {stack.tokens['p1']}"},
        )
    assert response.status_code == 200, response.text
    again = response.json()
    assert (again["node_id"], again["viewing_node_id"]) == ("hanoi", "hanoi")
    viewer2 = WhepViewer(again["whep_url"], again["token"])
    peers.append(viewer2)
    assert (await viewer2.start()).status_code == 201
    await until(lambda: len(viewer2.frames) > 0, timeout_s=BACK_WITHIN_S)
    back_after = time.monotonic() - killed_at
    assert back_after <= BACK_WITHIN_S, back_after
    assert viewer2.widths_since(0) == {320}


async def test_cascade_the_origin_lost_moves_the_room_and_its_tree_within_10_s(
    cascade: Cascade, peers: list
) -> None:
    """The chair's node dies: a hall that lost its programme names its edge, which answers;
    the control plane then finds the origin dead, moves the room to another province's node
    and points the edges there; the chair publishes again and both provinces see it."""
    stack = cascade.stack
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    viewers = {}
    for key in ("p1", "p2"):
        grant = await stack.join(key)
        viewers[key] = WhepViewer(grant["whep_url"], grant["token"])
        peers.append(viewers[key])
        assert (await viewers[key].start()).status_code == 201
        viewers[key].grant = grant  # type: ignore[attr-defined]
    await until(lambda: all(len(v.frames) > 5 for v in viewers.values()), timeout_s=20)

    cascade.processes["hanoi"].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    await until(
        lambda: time.monotonic() - viewers["p2"].frames[-1].at > MEDIA_SILENCE_S, timeout_s=5
    )
    async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:

        async def rejoin(key: str, failed: str) -> dict[str, Any]:
            response = await http.post(
                f"/api/v1/occurrences/{stack.occurrence_id}/join",
                json={"failed_node_id": failed},
                headers={"Authorization": f"Bearer {stack.tokens[key]}"},
            )
            assert response.status_code == 200, response.text
            return response.json()

        p2 = await rejoin("p2", viewers["p2"].grant["viewing_node_id"])  # type: ignore[attr-defined]
        chair_again = await rejoin("hq", "hanoi")
        p1 = await rejoin("p1", viewers["p1"].grant["viewing_node_id"])  # type: ignore[attr-defined]
    new_origin = chair_again["node_id"]
    assert new_origin in ("quangninh", "haiphong")
    assert p1["node_id"] == p2["node_id"] == new_origin
    # each province still watches from its own node
    assert (p1["viewing_node_id"], p2["viewing_node_id"]) == ("quangninh", "haiphong")
    chair2 = WhipPublisher(chair_again["whip_url"], chair_again["token"], width=320, height=240)
    peers.append(chair2)
    assert (await chair2.start()).status_code == 201
    again = [WhepViewer(grant["whep_url"], grant["token"]) for grant in (p1, p2)]
    for viewer in again:
        peers.append(viewer)
        assert (await viewer.start()).status_code == 201
    await until(lambda: all(len(v.frames) > 0 for v in again), timeout_s=BACK_WITHIN_S)
    back_after = time.monotonic() - killed_at
    assert back_after <= BACK_WITHIN_S, back_after
    assert all(v.widths_since(0) == {320} for v in again)


def test_cascade_bad_relay_requests_get_clear_errors(cascade: Cascade) -> None:
    edge = cascade.node_url("quangninh")
    room = f"occ-{cascade.stack.occurrence_id}"
    body = {
        "upstream_whep_url": f"{cascade.node_url('hanoi')}/whep/{room}",
        "token": "not-a-grant",
        "occurrence_id": cascade.stack.occurrence_id,
        "chair_site_id": 1,
        "ends_at": "2030-01-01T00:00:00+00:00",
    }
    # without a credential, with the shared metrics secret, with another node's key; then
    # with a grant the origin refuses; then malformed
    assert httpx.post(f"{edge}/rooms/{room}/cascade", json=body, timeout=10).status_code == 401
    for wrong in (READER, cascade.admin("hanoi")):
        denied = httpx.post(f"{edge}/rooms/{room}/cascade", json=body, headers=wrong, timeout=10)
        assert denied.status_code == 401
    admin = cascade.admin("quangninh")
    refused = httpx.post(f"{edge}/rooms/{room}/cascade", json=body, headers=admin, timeout=10)
    assert refused.status_code == 502
    assert "refused the relay session" in refused.text
    # and it left no room behind that would take publishers as if it were the origin
    assert httpx.get(f"{edge}/rooms", headers=READER, timeout=10).json()["rooms"] == []
    malformed = httpx.post(
        f"{edge}/rooms/{room}/cascade", json={"token": "x"}, headers=admin, timeout=10
    )
    assert malformed.status_code == 422
    assert "upstream_whep_url" in malformed.text


# --- a deeper chain on one machine's workers ----------------------------------------------------


@pytest.fixture
def stack_options() -> dict[str, Any]:
    return {"sfu": {"local_workers": 4}}


def _worker_urls(stack: Stack) -> list[str]:
    first = int(stack.worker.rsplit(":", 1)[1])
    return [f"http://127.0.0.1:{first + index}" for index in range(4)]


def _relay_token(database: Database, tmp_path: Path, stack: Stack, node_id: str) -> str:
    settings = make_settings(database.settings.database_url or "", tmp_path)
    with database.session() as session:
        occurrence = session.get(Occurrence, stack.occurrence_id)
        assert occurrence is not None
        return bridge_service.relay_grant(
            occurrence=occurrence,
            node_id=node_id,
            chair_site=occurrence.series.chair_site_id,
            signer=signing.signer_for(settings.grant_key_path),
            now=utcnow(),
        )


async def test_cascade_two_levels_deep_a_pipe_below_and_the_relay_rules(
    stack: Stack, peers: list, sites: dict[str, Site], database: Database, tmp_path: Path
) -> None:
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    origin = chair_grant["whip_url"].split("/whip", 1)[0]
    first, second, piped = [url for url in _worker_urls(stack) if url != origin]
    room = f"occ-{stack.occurrence_id}"

    async with httpx.AsyncClient(timeout=15) as http:
        for edge, upstream in ((first, origin), (second, first)):
            body = {
                "upstream_whep_url": f"{upstream}/whep/{room}",
                "token": _relay_token(database, tmp_path, stack, edge),
                "occurrence_id": stack.occurrence_id,
                "chair_site_id": sites["hq"].id,
                "ends_at": (utcnow() + timedelta(hours=1)).isoformat(),
            }
            admin = stack.admin(edge)
            relayed = await http.post(f"{edge}/rooms/{room}/cascade", json=body, headers=admin)
            assert relayed.status_code == 200, relayed.text
            # asked again with the same upstream, the edge keeps its session
            again = await http.post(f"{edge}/rooms/{room}/cascade", json=body, headers=admin)
            assert again.status_code == 200
        # a worker of the first edge's machine takes the room from it over a pipe
        extended = await http.post(
            f"{piped}/rooms/{room}/pipe",
            json={
                "origin_url": first,
                "occurrence_id": stack.occurrence_id,
                "chair_site_id": sites["hq"].id,
                "ends_at": (utcnow() + timedelta(hours=1)).isoformat(),
                "token": _relay_token(database, tmp_path, stack, piped),
            },
            headers=stack.admin(piped),
        )
        assert extended.status_code == 200, extended.text
        # an edge takes no publisher and no floor command: the origin holds both
        refused = await http.post(
            f"{second}/rooms/{room}/floor",
            json={"action": "take", "by": "test"},
            headers=stack.admin(second),
        )
        assert refused.status_code == 409

    p2 = await stack.join("p2")
    speaker = WhipPublisher(p2["whip_url"], p2["token"], width=176, height=144)
    peers.append(speaker)
    assert (await speaker.start()).status_code == 201
    p1 = await stack.join("p1")
    viewer = WhepViewer(f"{second}/whep/{room}", p1["token"])  # two hops below the origin
    peers.append(viewer)
    assert (await viewer.start()).status_code == 201
    screen = WhepViewer(f"{piped}/whep/{room}", p2["token"])  # p2's own screen, piped
    peers.append(screen)
    assert (await screen.start()).status_code == 201
    await until(
        lambda: all(len(v.frames) > 10 and v.audio_frames > 10 for v in (viewer, screen)),
        timeout_s=20,
    )
    assert viewer.widths_since(time.monotonic() - 0.5) == {320}
    assert screen.widths_since(time.monotonic() - 0.5) == {320}

    # p2 speaks: two hops down, p1 sees p2; below the pipe, p2 still sees the chair
    assert (await stack.floor("give", sites["p2"].id)).status_code == 200
    given_at = time.monotonic()
    await until(lambda: viewer.widths_since(time.monotonic() - 0.5) == {176}, timeout_s=10)
    await until(lambda: len([f for f in screen.frames if f.at > given_at + 1]) > 10, 10)
    assert screen.widths_since(given_at) == {320}  # no switch at all: it kept its track

    # an edge counts what its feed brings, and charts the link to the node above
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = (await http.get(f"{second}/metrics", headers=READER)).text
    received = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("confbridge_sfu_packets_received_total")
    ]
    assert received and received[0] > 100

    # a relay grant neither publishes nor views like a hall
    relay_token = _relay_token(database, tmp_path, stack, "someone")
    publisher = WhipPublisher(f"{origin}/whip/{room}", relay_token)
    peers.append(publisher)
    assert (await publisher.start()).status_code == 403
    plain = WhepViewer(f"{origin}/whep/{room}", relay_token)  # one video, one audio track
    peers.append(plain)
    answer = await plain.start()
    assert answer.status_code == 400
    assert "2 video and 2 audio" in answer.text


async def test_cascade_content_reaches_viewers_two_levels_deep(
    stack: Stack, peers: list, sites: dict[str, Site], database: Database, tmp_path: Path
) -> None:
    """A presentation at the origin reaches a viewer two relay hops below on its content
    track; stopped, it stops there; the next presenter's arrives."""
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    p2 = await stack.join("p2")  # a hall at the origin, to be given the floor
    hall = WhipPublisher(p2["whip_url"], p2["token"], width=176, height=144)
    peers.append(hall)
    assert (await hall.start()).status_code == 201
    origin = chair_grant["whip_url"].split("/whip", 1)[0]
    first, second = [url for url in _worker_urls(stack) if url != origin][:2]
    room = f"occ-{stack.occurrence_id}"
    async with httpx.AsyncClient(timeout=15) as http:
        for edge, upstream in ((first, origin), (second, first)):
            body = {
                "upstream_whep_url": f"{upstream}/whep/{room}",
                "token": _relay_token(database, tmp_path, stack, edge),
                "occurrence_id": stack.occurrence_id,
                "chair_site_id": sites["hq"].id,
                "ends_at": (utcnow() + timedelta(hours=1)).isoformat(),
            }
            relayed = await http.post(
                f"{edge}/rooms/{room}/cascade", json=body, headers=stack.admin(edge)
            )
            assert relayed.status_code == 200, relayed.text
    p1 = await stack.join("p1")
    viewer = WhepViewer(f"{second}/whep/{room}", p1["token"], content=True)
    peers.append(viewer)
    assert (await viewer.start()).status_code == 201
    await until(lambda: len(viewer.frames) > 10, timeout_s=20)
    await content_follows_presenters(stack, viewer, sites, peers)
    assert viewer.widths_since(time.monotonic() - 1) != set()  # the programme goes on
