"""A worker process in single-port mode (every peer on its one UDP port) and in port-range
mode (a socket per peer): a publisher and several viewers join and every viewer decodes."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

from sfu.config import WorkerSettings
from sfu.rtc.ice import nominated_datagram_transport
from sfu.worker import MediaPortUnavailable, Worker
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.servers import Stack

VIEWER_SITES = ("p1", "p2", "p1")  # a site may watch on two screens (two grants)


@pytest.fixture(params=["single", "single-full-ice", "range"])
def stack_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Single-port mode with the worker an ICE-lite agent (the default) or a full one, and
    port-range mode (always full ICE)."""
    mode, _, full = request.param.partition("-")
    return {"sfu": {"udp_mode": mode, "ice_lite": not full}}


def answer_ports(response: httpx.Response) -> list[int]:
    """The ports of the worker's candidates in its SDP answer."""
    return [
        candidate_from_sdp(line[len("a=candidate:") :]).port
        for line in response.text.splitlines()
        if line.startswith("a=candidate:")
    ]


def selected_remote_port(pc: RTCPeerConnection) -> int:
    """The worker's port on the ICE pair this client uses."""
    selected = nominated_datagram_transport(pc.getTransceivers()[0].sender.transport)
    assert selected is not None
    return selected[1][1]


async def test_single_port_publisher_and_viewers_share_the_worker_port(
    stack: Stack, peers: list[WhipPublisher | WhepViewer]
) -> None:
    assert stack.settings is not None
    sfu = stack.settings.sfu
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"], width=320, height=240)
    peers.append(chair)
    published = await chair.start()
    assert published.status_code == 201, published.text
    answers = [published]
    viewers = []
    for site in VIEWER_SITES:
        grant = await stack.join(site)
        viewer = WhepViewer(grant["whep_url"], grant["token"])
        peers.append(viewer)
        viewed = await viewer.start()
        assert viewed.status_code == 201, viewed.text
        answers.append(viewed)
        viewers.append(viewer)
    await until(
        lambda: all(len(v.frames) > 10 and v.audio_frames > 10 for v in viewers), timeout_s=20
    )
    assert all(v.widths_since(0) == {320} for v in viewers)
    # ICE-lite in single-port mode unless turned off: said in every answer, read by the peers
    lite = sfu.udp_mode == "single" and sfu.ice_lite
    assert all(("a=ice-lite" in a.text.splitlines()) is lite for a in answers)
    for peer in (chair, *viewers):
        connection = peer.pc.getTransceivers()[0].sender.transport.transport._connection
        assert connection.remote_is_lite is lite and connection.ice_controlling
    ports = [answer_ports(answer) for answer in answers]
    used = [selected_remote_port(peer.pc) for peer in (chair, *viewers)]
    if sfu.udp_mode == "single":
        # one port for everyone: announced in every answer and used by every ICE pair
        assert all(set(p) == {sfu.udp_port} for p in ports), ports
        assert set(used) == {sfu.udp_port}
    else:
        low, high = stack.media_ports
        assert all(len(set(p)) == 1 and low <= p[0] <= high for p in ports), ports
        assert len(set(used)) == len(answers)  # a socket per peer

    # a viewer leaves; the others are still served
    await viewers[0].stop()
    peers.remove(viewers[0])
    counts = [len(v.frames) for v in viewers[1:]]
    await until(
        lambda: all(len(v.frames) > n + 10 for v, n in zip(viewers[1:], counts, strict=True)),
        timeout_s=10,
    )


async def test_single_port_taken_stops_the_worker_start(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]
        worker = Worker(WorkerSettings(udp_port=port, spool_dir=tmp_path / "spool"))
        with pytest.raises(MediaPortUnavailable, match=f"media port UDP 127.0.0.1:{port}"):
            await worker.start()
