"""Bridge health with real processes: a worker registers and heartbeats; when it stops, the
node turns down, an alert reaches a webhook and `/readyz` says so; a site whose link degrades
gets a link-quality alert; both `/metrics` move while a peer streams."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection
from prometheus_client.parser import text_string_to_metric_families

from confbridge.auth.models import Role
from confbridge.sites.models import Site
from sfu.rtc.ice import nominated_datagram_transport
from tests.support.peers import WhepViewer, WhipPublisher, until
from tests.support.servers import NODE_SECRET, Stack, WebhookReceiver

LINK_BAD_FOR_S = 4.0


@pytest.fixture
def stack_options(webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # the worker reports stats at every housekeeping round and heartbeats every second
    monkeypatch.setenv("CONFBRIDGE_SFU_STATS_INTERVAL_S", "1")
    monkeypatch.setenv("CONFBRIDGE_SFU_HEARTBEAT_INTERVAL_S", "1")
    return {
        "run_background": True,
        "settings": {
            "alerts": {
                "webhook_url": webhook.url,
                "check_interval_s": 0.5,
                "link_bad_for_s": LINK_BAD_FOR_S,
            }
        },
    }


@pytest.fixture
def it_headers(make_user: Callable[..., dict[str, str]]) -> Iterator[dict[str, str]]:
    yield make_user(Role.it)


async def get(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(url, headers=headers or {})


async def eventually(probe: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        await asyncio.sleep(0.25)


def degrade(pc: RTCPeerConnection, loss: float) -> None:
    """Drop a share of what the peer sends, as a bad uplink would."""
    for transceiver in pc.getTransceivers():
        found = nominated_datagram_transport(transceiver.sender.transport)
        assert found is not None
        transport = found[0]
        send = transport.sendto

        def lossy(data: bytes, addr: Any = None, _send: Any = send) -> None:
            if random.random() >= loss:
                _send(data, addr)

        transport.sendto = lossy  # type: ignore[method-assign]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_monitoring_node_down_reaches_the_webhook_and_readyz(
    stack: Stack, it_headers: dict[str, str], webhook: WebhookReceiver
) -> None:
    async def registered() -> Any:
        nodes = (await get(f"{stack.control}/api/v1/sfu/nodes", it_headers)).json()
        return nodes if nodes and nodes[0]["state"] == "up" else None

    (node,) = await eventually(registered, 10, "the worker's registration")
    assert node["public_url"] == stack.worker and node["capacity_peers"] > 0
    assert (await get(f"{stack.control}/readyz")).status_code == 200

    stack.workers.close()
    stopped_at = time.monotonic()

    async def alerted() -> Any:
        return [b for b in webhook.bodies() if b["kind"] == "node_down"]

    (alert,) = await eventually(alerted, 25, "the node-down alert at the webhook")
    assert time.monotonic() - stopped_at <= 15 + 2  # down after 15 s of silence, then sent
    assert alert["node_id"] == node["id"] and alert["severity"] == "critical"
    ready = await get(f"{stack.control}/readyz")
    assert ready.status_code == 503
    assert "down" in ready.json()["checks"]["sfu_nodes"]["detail"]
    listed = (await get(f"{stack.control}/api/v1/alerts?open=true", it_headers)).json()
    assert [a["kind"] for a in listed["items"]] == ["node_down"]
    assert listed["items"][0]["delivery_state"] == "delivered"


async def test_monitoring_bad_link_alert_and_metrics_move(
    stack: Stack, peers: list, webhook: WebhookReceiver, sites: dict[str, Site]
) -> None:
    chair_grant = await stack.join("hq")
    chair = WhipPublisher(chair_grant["whip_url"], chair_grant["token"])
    grant = await stack.join("p1")
    viewer = WhepViewer(grant["whep_url"], grant["token"])
    p2 = await stack.join("p2")
    lossy = WhipPublisher(p2["whip_url"], p2["token"])
    for peer in (chair, viewer, lossy):
        peers.append(peer)
        assert (await peer.start()).status_code == 201
    await until(lambda: len(viewer.frames) > 5, timeout_s=15)

    node = {"Authorization": f"Bearer {NODE_SECRET}"}
    before = samples((await get(f"{stack.control}/metrics", node)).text)
    worker_before = samples((await get(f"{stack.worker}/metrics", node)).text)
    degrade(lossy.pc, loss=0.3)

    async def link_alert() -> Any:
        return [b for b in webhook.bodies() if b["kind"] == "link_quality"]

    (alert,) = await eventually(link_alert, 40, "the link-quality alert")
    assert alert["site_id"] == sites["p2"].id
    assert alert["occurrence_id"] == stack.occurrence_id
    assert alert["details"]["loss_ratio"] > 0.05
    assert alert["details"]["bad_for_s"] > LINK_BAD_FOR_S

    after = samples((await get(f"{stack.control}/metrics", node)).text)
    worker_after = samples((await get(f"{stack.worker}/metrics", node)).text)
    assert after[("confbridge_meetings_live", ())] == 1
    assert after[("confbridge_alerts_open", (("kind", "link_quality"),))] == 1
    events_route = (
        "confbridge_http_request_duration_seconds_count",
        (("method", "POST"), ("route", "/api/v1/sfu/events"), ("status", "200")),
    )
    assert after[events_route] > before.get(events_route, 0)
    forwarded = ("confbridge_sfu_packets_forwarded_total", ())
    assert worker_after[forwarded] > worker_before[forwarded] > 0
    loss_count = (
        "confbridge_sfu_loss_ratio_count",
        (("direction", "ingest"), ("room", f"occ-{stack.occurrence_id}")),
    )
    assert worker_after[loss_count] > 0
    # the same stats make attendance: media flowed from the chair's camera and to p1's screen
    reports = [e for e in await stack.events() if e["type"] == "stats"]
    assert reports and all(e["stats"]["interval_s"] == 1 for e in reports)
    response = await get(
        f"{stack.control}/api/v1/occurrences/{stack.occurrence_id}/attendance",
        stack.secretariat,
    )
    records = {r["site_id"]: r for r in response.json()["records"]}
    for site in ("hq", "p1"):
        assert records[sites[site].id]["media_ratio"] > 0
        assert records[sites[site].id]["status"] != "absent"
