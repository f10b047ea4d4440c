"""What `confbridge serve` hands its local SFU workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from confbridge.local_workers import LocalWorkers
from sfu.config import WorkerSettings
from tests.conftest import make_settings


def test_local_workers_environment_carries_media_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        "",
        tmp_path,
        sfu={
            "public_url": "http://127.0.0.1:9101",
            "media_ip": "127.0.0.1",
            "announced_ip": "203.0.113.7",
            "udp_port_min": 40000,
            "udp_port_max": 40099,
            "ice_servers": [
                {"urls": ["turn:turn.example.vn:3478"], "username": "u", "credential": "c"}
            ],
        },
    )
    workers = LocalWorkers(settings, control_url="http://127.0.0.1:9100")
    first, second = workers.environment(0), workers.environment(1)
    assert (first["CONFBRIDGE_SFU_PORT"], second["CONFBRIDGE_SFU_PORT"]) == ("9101", "9102")
    assert json.loads(first["CONFBRIDGE_SFU_ICE_SERVERS"]) == [
        {"urls": ["turn:turn.example.vn:3478"], "username": "u", "credential": "c"}
    ]
    # the worker reads them back as its own settings
    worker_env = {k: v for k, v in first.items() if k.startswith("CONFBRIDGE_SFU_")}
    for key, value in worker_env.items():
        monkeypatch.setenv(key, value)
    worker = WorkerSettings()
    assert worker.udp_port_range == (40000, 40099)
    assert worker.announced_ip == "203.0.113.7"
    assert worker.port == 9101 and worker.control_url == "http://127.0.0.1:9100"


def test_local_workers_environment_without_announced_ip(tmp_path: Path) -> None:
    workers = LocalWorkers(make_settings("", tmp_path), control_url="http://127.0.0.1:9100")
    environment = workers.environment(0)
    assert "CONFBRIDGE_SFU_ANNOUNCED_IP" not in environment
    assert environment["CONFBRIDGE_SFU_UDP_PORT_MIN"] == "0"


def test_local_workers_each_worker_registers_its_own_address(tmp_path: Path) -> None:
    settings = make_settings(
        "", tmp_path, sfu={"public_url": "http://127.0.0.1:8001", "local_workers": 2}
    )
    workers = LocalWorkers(settings, control_url="http://127.0.0.1:8000")
    first, second = workers.environment(0), workers.environment(1)
    assert first["CONFBRIDGE_SFU_PUBLIC_URL"] == "http://127.0.0.1:8001"
    assert second["CONFBRIDGE_SFU_PUBLIC_URL"] == "http://127.0.0.1:8002"
    assert second["CONFBRIDGE_SFU_INTERNAL_URL"] == "http://127.0.0.1:8002"
