"""TURN with time-limited credentials (TURN REST convention): in join grants, in the workers'
Link headers, and handed from `serve` to its local workers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from confbridge.db import Database
from confbridge.local_workers import LocalWorkers
from confbridge.main import create_app
from confbridge.meetings import service as meeting_service
from confbridge.settings import ConfigError, load_settings
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from confbridge_kernel.turn import turn_ice_server, turn_rest_credential
from sfu.config import WorkerSettings
from sfu.http import ice_server_links
from tests.support.factories import make_settings, register_node

SECRET = "turn-shared-secret-for-tests"
TURN_URL = "turn:turn.example.vn:3478?transport=udp"


def test_turn_rest_credential_is_hmac_sha1_of_the_username() -> None:
    username, password = turn_rest_credential(
        secret=SECRET, user="17", expires_at_unix=1_800_000_000
    )
    assert username == "1800000000:17"
    digest = hmac.new(SECRET.encode(), b"1800000000:17", hashlib.sha1).digest()
    assert password == base64.b64encode(digest).decode()
    server = turn_ice_server(urls=[TURN_URL], secret=SECRET, user="17", ttl_s=600, now_unix=1000)
    assert server["username"] == "1600:17" and server["urls"] == [TURN_URL]
    (link,) = ice_server_links([server])
    assert link.startswith(f'<{TURN_URL}>; rel="ice-server"; username="1600:17"')


def test_turn_settings_refuse_a_non_turn_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sfu\.turn\.urls"):
        load_settings(data_dir=tmp_path, sfu={"turn": {"urls": ["stun:x.example.vn"]}})


def test_turn_settings_take_tcp_and_tls_urls_and_refuse_other_transports(
    tmp_path: Path,
) -> None:
    urls = [TURN_URL, "turn:turn.example.vn:3478?transport=tcp", "turns:turn.example.vn:443"]
    settings = load_settings(data_dir=tmp_path, sfu={"turn": {"urls": urls}})
    assert settings.sfu.turn.urls == urls
    with pytest.raises(ConfigError, match=r"transport must be tcp, got 'udp'"):
        load_settings(data_dir=tmp_path, sfu={"turn": {"urls": ["turns:x.vn?transport=udp"]}})
    with pytest.raises(ConfigError, match=r"transport must be udp or tcp, got 'sctp'"):
        load_settings(data_dir=tmp_path, sfu={"turn": {"urls": ["turn:x.vn?transport=sctp"]}})


def test_turn_credentials_in_the_join_grant_end_with_it(
    database: Database, tmp_path: Path, sites: dict[str, Site]
) -> None:
    settings = make_settings(
        database.settings.database_url or "",
        tmp_path,
        sfu={"turn": {"urls": [TURN_URL], "shared_secret": SECRET, "credential_ttl_s": 86400}},
    )
    local = (utcnow() - timedelta(minutes=1)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    with database.session() as session:
        meeting_service.create(
            session=session,
            series_in={
                "title": "Giao ban",
                "kind": "giao_ban",
                "mode": "online",
                "rrule": "FREQ=DAILY;COUNT=1",
                "dtstart": local.replace(tzinfo=None).isoformat(timespec="minutes"),
                "duration_min": 30,
                "chair_site_id": sites["hq"].id,
                "site_ids": [sites["p1"].id],
                "skip_holidays": False,
            },
            settings=settings.meetings,
            now=utcnow(),
        )
        site = session.get(Site, sites["p1"].id)
        assert site is not None
        _terminal, token = terminal_service.create_with_token(session=session, site=site)
        session.commit()
    register_node(database)
    with TestClient(create_app(settings, database=database)) as client:
        occurrence_id = client.get(
            "/api/v1/terminals/me/agenda", headers={"Authorization": f"Bearer {token}"}
        ).json()["items"][0]["occurrence_id"]
        grant = client.post(
            f"/api/v1/occurrences/{occurrence_id}/join",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
    (turn,) = grant["ice_servers"]
    expiry, _, user = turn["username"].partition(":")
    assert user == str(sites["p1"].id)
    # the grant ends 30 min after the meeting may run over until: so does the credential
    # (not 24 h later)
    grace_s = settings.meetings.overrun_grace_min * 60
    grant_end = int(utcnow().timestamp()) + 60 * 60 + grace_s
    assert time.time() < int(expiry) <= grant_end
    digest = hmac.new(SECRET.encode(), turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()


def test_turn_settings_reach_the_local_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        "",
        tmp_path,
        sfu={"turn": {"urls": [TURN_URL], "shared_secret": SECRET, "credential_ttl_s": 900}},
    )
    environment = LocalWorkers(settings, control_url="http://127.0.0.1:9100").environment(0)
    without = LocalWorkers(make_settings("", tmp_path), control_url="http://x").environment(0)
    assert "CONFBRIDGE_SFU_TURN_SECRET" not in without
    for key, value in environment.items():
        if key.startswith("CONFBRIDGE_SFU_"):
            monkeypatch.setenv(key, value)
    worker = WorkerSettings()
    assert worker.turn_urls == [TURN_URL] and worker.turn_secret == SECRET
    assert worker.turn_credential_ttl_s == 900
