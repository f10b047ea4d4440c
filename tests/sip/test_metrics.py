"""The SIP gateway's counters on the control plane's `/metrics`, as `serve` wires them: a
gateway (`SipService`, its thread) answering real datagrams on loopback, and a call out that
cannot be set up."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from confbridge.db import Database
from confbridge.main import create_app
from confbridge.sip.metrics import method_label, status_class
from confbridge.sip.service import SipService
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from tests.sip.test_gateway import request
from tests.support.factories import book_occurrence, make_settings

NODE = {"Authorization": "Bearer change-me-in-production"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[tuple[TestClient, int]]:
    """The control plane's app and, in the same process, the gateway on a loopback port."""
    port = _free_port()
    settings = make_settings(
        database.settings.database_url or "",
        tmp_path,
        sip={"listen": f"127.0.0.1:{port}", "rate_limit_per_source": 20},
    )
    app = create_app(settings, database=database)
    service = SipService(settings, database, app.state.metrics.registry)
    service.start()
    try:
        with TestClient(app) as client:
            yield client, port
    finally:
        service.close()


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics", headers=NODE)
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} not seen in {timeout_s} s"
        time.sleep(0.1)


def test_metrics_gateway_counts_requests_responses_and_drops(
    served: tuple[TestClient, int],
) -> None:
    client, port = served
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        own = phone.getsockname()[1]
        phone.sendto(request("OPTIONS", own), ("127.0.0.1", port))
        phone.sendto(request("FROBNICATE", own), ("127.0.0.1", port))
        phone.sendto(b"GET / HTTP/1.1\r\n\r\n", ("127.0.0.1", port))

        def counted(key: tuple[str, tuple[tuple[str, str], ...]], value: float) -> bool:
            return scrape(client).get(key) == value

        options = ("confbridge_sip_requests_total", (("direction", "in"), ("method", "OPTIONS")))
        other = ("confbridge_sip_requests_total", (("direction", "in"), ("method", "other")))
        ok = ("confbridge_sip_responses_total", (("class", "2xx"), ("direction", "out")))
        refused = ("confbridge_sip_responses_total", (("class", "5xx"), ("direction", "out")))
        malformed = ("confbridge_sip_messages_dropped_total", (("reason", "malformed"),))
        _until(lambda: counted(refused, 1), 5, "the 501 to FROBNICATE")
        samples = scrape(client)
        assert samples[options] == 1 and samples[other] == 1 and samples[ok] == 1
        assert samples[malformed] == 1
        limited = ("confbridge_sip_messages_dropped_total", (("reason", "rate_limited"),))
        assert samples[limited] == 0
        for _ in range(200):  # 20 a second, bursts of 40
            phone.sendto(request("OPTIONS", own), ("127.0.0.1", port))
        _until(lambda: scrape(client)[limited] >= 100, 5, "the flood cut")
    # the control plane's own metrics are still there beside the gateway's
    assert ("confbridge_meetings_live", ()) in scrape(client)


def test_metrics_gateway_counts_a_call_out_that_fails(
    served: tuple[TestClient, int], database: Database, sites: dict[str, Site], tmp_path: Path
) -> None:
    """A room system invited to a meeting on now is called; with no media server up the call
    cannot be set up: one attempt, one failure (and more with the redials)."""
    client, _port = served
    settings = make_settings(database.settings.database_url or "", tmp_path)
    start = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=1)
    with database.session() as session:
        site = session.get(Site, sites["p1"].id)
        assert site is not None
        site.sip_uri = "sip:phonghop@127.0.0.1:9;transport=tcp"
        session.commit()
    book_occurrence(database, settings, sites, start, invited=("p1",))
    attempted = ("confbridge_sip_dial_outs_total", ())
    failed = ("confbridge_sip_dial_outs_failed_total", ())
    _until(lambda: scrape(client).get(failed, 0) >= 1, 10, "a failed call out")
    samples = scrape(client)
    assert samples[attempted] >= samples[failed] >= 1


def test_metrics_labels_stay_few() -> None:
    assert method_label("INVITE") == "INVITE"
    assert method_label("X" * 40) == "other"
    assert status_class(183) == "1xx" and status_class(486) == "4xx"
    assert status_class(99) == "other" and status_class(None) == "other"
