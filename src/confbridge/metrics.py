"""The control plane's Prometheus metrics: HTTP timings by route, and state read at scrape."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import timedelta

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confbridge.alerts.models import Alert
from confbridge.auth.models import Terminal
from confbridge.db import Database
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.models import Occurrence
from confbridge.nodes import service as node_service
from confbridge.nodes.models import NodeState
from confbridge.recordings import archive as recording_archive
from confbridge.timeutil import utcnow

API_PREFIX = "/api/v1"
HTTP_BUCKETS_S = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ControlPlaneMetrics(Collector):
    """One registry per app: request durations, plus meetings, nodes and alerts at scrape."""

    def __init__(
        self, database: Database, offline_after_s: int = 90, overrun_grace_min: int = 0
    ) -> None:
        self._database = database
        self._offline_after_s = offline_after_s
        self._overrun_grace_min = overrun_grace_min
        self.registry = CollectorRegistry()
        self.http_duration = Histogram(
            "confbridge_http_request_duration_seconds",
            "time to answer an HTTP request, by route template",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(self)

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())

    def _collect(self) -> Iterator[Metric]:
        now = utcnow()
        with self._database.session() as session:
            live = session.scalar(
                select(func.count(Occurrence.id)).where(
                    occurrence_service.live_clause(
                        now=now, overrun_grace_min=self._overrun_grace_min
                    )
                )
            )
            nodes = node_service.list_(session=session)
            enrolments = node_service.list_enrolments(session=session)
            online_since = now - timedelta(seconds=self._offline_after_s)
            status = case(
                (Terminal.revoked_at.is_not(None), "revoked"),
                (Terminal.last_seen_at >= online_since, "online"),
                else_="offline",
            )
            terminals = session.execute(
                select(status, func.count(Terminal.id)).group_by(status)
            ).all()
            archive = recording_archive.figures(session=session)
            open_alerts = session.execute(
                select(Alert.kind, func.count(Alert.id))
                .where(Alert.open_key.is_not(None))
                .group_by(Alert.kind)
            ).all()
        meetings = GaugeMetricFamily("confbridge_meetings_live", "occurrences on now")
        meetings.add_metric([], live or 0)
        yield meetings
        states = GaugeMetricFamily("confbridge_sfu_nodes", "SFU nodes by state", labels=["state"])
        counts = {state.value: 0 for state in NodeState}
        for node in nodes:
            counts[node_service.state_of(node, now).value] += 1
        for state, count in counts.items():
            states.add_metric([state], count)
        yield states
        peers = GaugeMetricFamily(
            "confbridge_sfu_node_peers", "sessions on each node, as last reported", labels=["node"]
        )
        load = GaugeMetricFamily(
            "confbridge_sfu_node_cpu_ratio", "CPU of each node, as last reported", labels=["node"]
        )
        for node in nodes:
            peers.add_metric([node.id], node.peers)
            load.add_metric([node.id], node.cpu_ratio)
        yield peers
        yield load
        restarts = CounterMetricFamily(
            "confbridge_worker_restarts",
            "local SFU workers restarted by `serve` after they died",
            labels=["node"],
        )
        for enrolment in enrolments:
            if enrolment.local:
                restarts.add_metric([enrolment.node_id], enrolment.restarts)
        yield restarts
        by_status = GaugeMetricFamily(
            "confbridge_terminals", "terminals by status", labels=["status"]
        )
        counted = {"online": 0, "offline": 0, "revoked": 0} | dict(terminals)
        for status, count in counted.items():
            by_status.add_metric([status], count)
        yield by_status
        alerts = GaugeMetricFamily("confbridge_alerts_open", "open alerts by kind", labels=["kind"])
        for kind, count in open_alerts:
            alerts.add_metric([kind], count)
        yield alerts
        yield from _recording_metrics(archive)


def _recording_metrics(archive: recording_archive.ArchiveFigures) -> Iterator[Metric]:
    """Recordings being written, bytes of the recordings kept, recordings that failed."""
    active = GaugeMetricFamily("confbridge_recordings_active", "meetings being recorded now")
    active.add_metric([], archive.active)
    yield active
    stored = GaugeMetricFamily(
        "confbridge_recordings_stored_bytes", "bytes of the finished recordings kept"
    )
    stored.add_metric([], archive.bytes_stored)
    yield stored
    failures = GaugeMetricFamily(
        "confbridge_recordings_failed", "recordings kept whose worker could not write them all"
    )
    failures.add_metric([], archive.failures)
    yield failures


class RequestTimer:
    """ASGI middleware: observes each HTTP request's duration under its route template."""

    def __init__(self, app: ASGIApp, metrics: ControlPlaneMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            # the template, never the raw path: ids in paths would explode the series
            template = getattr(route, "path", None) or "unmatched"
            # routes of an included router know their path without the router's prefix
            if scope["path"].startswith(API_PREFIX) and not template.startswith(API_PREFIX):
                template = API_PREFIX + template
            self.metrics.http_duration.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )
