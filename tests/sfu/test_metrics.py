"""The worker's Prometheus metrics, scraped from the real process while an aiortc peer streams."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sfu.admission import Busy, JoinGate
from sfu.metrics import WorkerMetrics
from tests.sfu.rtc.shared_pairs import binding_request
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.polling import eventually
from tests.support.servers import NODE_SECRET, Stack


@pytest.fixture
def fast_stats(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # the worker inherits it: a stats report at every housekeeping round (5 s)
    monkeypatch.setenv("CONFBRIDGE_SFU_STATS_INTERVAL_S", "1")
    yield


async def scrape(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"{stack.worker}/metrics", headers={"Authorization": f"Bearer {NODE_SECRET}"}
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_metrics_move_while_a_peer_streams(
    fast_stats: None, stack: Stack, peers: list
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{stack.worker}/metrics")).status_code == 401
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"])
    peers.append(chair)
    assert (await chair.start()).status_code == 201
    grant = await stack.join("p1")
    viewer = WhepViewer(grant["whep_url"], grant["token"])
    peers.append(viewer)
    assert (await viewer.start()).status_code == 201
    await until(lambda: len(viewer.frames) > 5, timeout_s=15)

    first = await scrape(stack)
    assert first[("confbridge_sfu_rooms", ())] == 1
    assert first[("confbridge_sfu_peers", (("direction", "ingest"), ("role", "chair")))] == 1
    assert first[("confbridge_sfu_peers", (("direction", "egress"), ("role", "site")))] == 1
    assert first[("confbridge_sfu_keyframe_requests_sent_total", ())] >= 1
    # a hall's viewer, on a clean link: the main layer of the speaker's camera
    assert first[("confbridge_sfu_viewer_layer_peers", (("layer", "main"),))] == 1
    assert first[("confbridge_sfu_viewer_layer_peers", (("layer", "small"),))] == 0
    # the join gate: the viewer was admitted (the chair goes first, counted too), none refused
    assert first[("confbridge_sfu_joins_admitted_total", ())] == 2
    assert first[("confbridge_sfu_joins_refused_total", ())] == 0
    assert first[("confbridge_sfu_handshakes", ())] == 0  # both connected
    assert first[("confbridge_sfu_loop_lag_seconds", ())] >= 0
    await asyncio.sleep(1)
    second = await scrape(stack)
    for name in (
        "confbridge_sfu_packets_received_total",
        "confbridge_sfu_packets_forwarded_total",
        "confbridge_sfu_forwarded_bytes_total",
    ):
        assert second[(name, ())] > first[(name, ())] > 0, name

    # link quality arrives with the periodic stats; per room, as histograms
    room = f"occ-{stack.occurrence_id}"
    deadline = time.monotonic() + 15
    while True:
        latest = await scrape(stack)
        count = latest.get(("confbridge_sfu_rtt_seconds_count", (("room", room),)), 0)
        if count > 0 and ("confbridge_sfu_cpu_per_packet_seconds", ()) in latest:
            break
        assert time.monotonic() < deadline, sorted(k[0] for k in latest)
        await asyncio.sleep(0.5)
    assert 0 < latest[("confbridge_sfu_cpu_per_packet_seconds", ())] < 0.01
    assert latest[("confbridge_sfu_event_spool_events", ())] >= 0

    # a peer that leaves keeps its packets in the counters
    before = latest[("confbridge_sfu_packets_forwarded_total", ())]
    await viewer.stop()
    peers.remove(viewer)
    after = await scrape(stack)
    assert after[("confbridge_sfu_packets_forwarded_total", ())] >= before
    assert ("confbridge_sfu_peers", (("direction", "egress"), ("role", "site"))) not in after


async def test_metrics_count_what_the_shared_media_port_drops(stack: Stack, peers: list) -> None:
    """Datagrams on the worker's one UDP port that reach no session are counted by reason:
    from an address no check bound, naming no session's ICE ufrag, failing integrity."""
    assert stack.settings is not None and stack.settings.sfu.udp_mode == "single"
    media = ("127.0.0.1", stack.settings.sfu.udp_port)
    grant = await stack.join("p1")
    viewer = WhepViewer(grant["whep_url"], grant["token"])
    peers.append(viewer)
    answer = await viewer.start()
    assert answer.status_code == 201
    await until(lambda: viewer.pc.connectionState == "connected", timeout_s=15)
    (ufrag,) = {
        line.split(":", 1)[1]
        for line in answer.text.splitlines()
        if line.startswith("a=ice-ufrag:")
    }

    def dropped(samples: dict) -> dict[str, float]:
        return {
            dict(labels)["reason"]: value
            for (name, labels), value in samples.items()
            if name == "confbridge_sfu_media_port_dropped_total"
        }

    before = dropped(await scrape(stack))
    assert set(before) == {"unknown_address", "unknown_ufrag", "integrity"}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as scanner:
        scanner.bind(("127.0.0.1", 0))
        for _ in range(3):
            scanner.sendto(b"\x80\x60" + bytes(30), media)  # RTP from nobody's address
        scanner.sendto(binding_request("nobody12:abcd", "x" * 22), media)
        # the viewer's ufrag with the wrong password: answered 401, the address not bound
        scanner.sendto(binding_request(f"{ufrag}:abcd", "y" * 22), media)

        async def counted() -> dict[str, float] | None:
            after = dropped(await scrape(stack))
            return after if after["integrity"] > before["integrity"] else None

        after = await eventually(counted, 10, "the forged check counted")
    assert after["unknown_address"] - before["unknown_address"] == 3
    assert after["unknown_ufrag"] - before["unknown_ufrag"] == 1
    assert after["integrity"] - before["integrity"] == 1


async def test_metrics_refusals_by_reason() -> None:
    joins = JoinGate(max_handshakes=1, rate_per_s=100.0, burst=10, queue_s=0.0, max_lag_s=0.0)
    await joins.admit()
    for _ in range(2):
        with pytest.raises(Busy):
            await joins.admit()
    families = {family.name: family for family in WorkerMetrics._admission(joins)}
    samples = families["confbridge_sfu_joins_refused_by"].samples
    assert [(s.labels, s.value) for s in samples] == [({"reason": "handshakes"}, 2)]
    assert families["confbridge_sfu_joins_refused"].samples[0].value == 2
