"""Readiness before a meeting: a hall whose terminal stops its heartbeats becomes offline, and
the alert reaches a webhook receiver; it resolves when the terminal comes back."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from tests.support.factories import book_occurrence, make_settings
from tests.support.servers import ServerThread, WebhookReceiver

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def eventually(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} not seen in {timeout_s} s"
        time.sleep(0.1)


def test_readiness_alert_reaches_the_webhook_when_heartbeats_stop(
    database: Database,
    tmp_path: Path,
    sites: dict[str, Site],
    webhook: WebhookReceiver,
    make_user: Callable[..., dict[str, str]],
) -> None:
    """Heartbeats stop → offline after `offline_after_s` → a terminal_offline alert is POSTed."""
    settings = make_settings(
        database.settings.database_url or "",
        tmp_path,
        alerts={"webhook_url": webhook.url, "check_interval_s": 0.2},
        terminals={"offline_after_s": 2, "heartbeat_interval_s": 1, "readiness_lead_min": 30},
    )
    it = make_user(Role.it)
    server = ServerThread(create_app(settings, database=database, run_scheduler=True)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            tokens = {}
            for key in ("hq", "p1", "p2"):
                created = http.post(
                    "/api/v1/terminals", json={"site_id": sites[key].id}, headers=it
                ).json()
                paired = http.post(
                    "/api/v1/terminals/pair", json={"code": created["pairing"]["code"]}
                )
                tokens[key] = {"Authorization": f"Bearer {paired.json()['token']}"}

            def beat(*keys: str) -> None:
                for key in keys:
                    answer = http.post(
                        "/api/v1/terminals/me/heartbeat",
                        json={"kind": "agent", "version": "test", "camera": True},
                        headers=tokens[key],
                    )
                    assert answer.status_code == 200, answer.text

            def alerts() -> list[dict[str, Any]]:
                return [b for b in webhook.bodies() if b["kind"] == "terminal_offline"]

            beat("hq", "p1", "p2")
            # the briefing is booked once every hall reports
            start = (utcnow() + timedelta(minutes=12)).replace(second=0, microsecond=0)
            occurrence_id = book_occurrence(database, settings, sites, start, invited=("p1", "p2"))
            # every hall reports for a while: no alert
            for _ in range(6):
                beat("hq", "p1", "p2")
                time.sleep(0.5)
            assert alerts() == []
            # p2's terminal goes silent; the others keep reporting
            deadline = time.monotonic() + 15
            while not alerts():
                assert time.monotonic() < deadline, "no readiness alert at the webhook"
                beat("hq", "p1")
                time.sleep(0.5)
            (alert,) = alerts()
            assert alert["site_id"] == sites["p2"].id
            assert alert["occurrence_id"] == occurrence_id
            assert alert["severity"] == "warning"
            assert sites["p2"].name in alert["message"] and "mất kết nối" in alert["message"]
            assert "starts at" in alert["message_en"]
            assert alert["details"]["last_seen_at"] is not None
            listed = http.get("/api/v1/terminals?status=offline", headers=it).json()["items"]
            assert [t["site_id"] for t in listed] == [sites["p2"].id]
            open_alerts = http.get(
                "/api/v1/alerts?open=true&kind=terminal_offline", headers=it
            ).json()["items"]
            assert [a["site_id"] for a in open_alerts] == [sites["p2"].id]
            # it comes back: the alert resolves
            beat("hq", "p1", "p2")
            eventually(
                lambda: (
                    not http.get(
                        "/api/v1/alerts?open=true&kind=terminal_offline", headers=it
                    ).json()["items"]
                ),
                10,
                "the alert resolved",
            )
            assert len(alerts()) == 1  # delivered once
    finally:
        server.stop()
