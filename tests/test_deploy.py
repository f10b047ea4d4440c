"""The shipped monitoring files use only metrics the services expose."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import yaml
from prometheus_client import generate_latest

from confbridge.db import Database
from confbridge.metrics import ControlPlaneMetrics
from confbridge.sip.metrics import GatewayMetrics
from sfu.admission import JoinGate
from sfu.metrics import WorkerMetrics
from sfu.sip.metrics import SipLegMetrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def exposed_names(database: Database) -> set[str]:
    gate = JoinGate(max_handshakes=12, rate_per_s=20, burst=10, queue_s=2, max_lag_s=0.05)
    worker = SimpleNamespace(rooms={}, reporter=SimpleNamespace(depth=0, dropped=0), gate=gate)
    worker_metrics = WorkerMetrics(worker)  # type: ignore[arg-type]
    worker_metrics.cpu_per_packet_s = 1e-5
    worker_metrics.rtt.labels("occ-1").observe(0.05)
    worker_metrics.loss.labels("occ-1", "ingest").observe(0.0)
    worker_metrics.jitter.labels("occ-1", "ingest").observe(0.01)
    legs = SipLegMetrics(worker_metrics.registry, list)
    legs.loss.labels("audio").observe(0.01)
    control = ControlPlaneMetrics(database)
    control.http_duration.labels("GET", "/healthz", "200").observe(0.001)
    GatewayMetrics(control.registry)  # `serve` with one process
    text = generate_latest(worker_metrics.registry) + generate_latest(control.registry)
    families = re.findall(r"^# TYPE (confbridge_[a-z_]+) (\w+)", text.decode(), flags=re.MULTILINE)
    names = set()
    for name, kind in families:
        names.add(name)
        if kind == "counter":
            names.add(f"{name}_total")
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def test_deploy_grafana_dashboard_uses_exposed_metrics(database: Database) -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text(encoding="utf-8"))
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"confbridge_[a-z_]+", target["expr"])
    }
    assert used, "the dashboard queries nothing"
    assert used <= exposed_names(database), used - exposed_names(database)


def test_deploy_prometheus_config_scrapes_both_with_the_node_secret() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"confbridge-control-plane", "confbridge-sfu"}
    for job in jobs.values():
        assert job["metrics_path"] == "/metrics"
        assert job["authorization"]["type"] == "Bearer"
