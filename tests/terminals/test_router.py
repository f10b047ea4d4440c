"""Terminals over HTTP: create with a pairing code, pair once, heartbeat, list, revoke."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from confbridge.auth.models import Role, Terminal
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.terminals.models import PairingCode
from confbridge.timeutil import utcnow
from tests.support.factories import make_settings

Headers = dict[str, str]


@pytest.fixture
def it(make_user: Callable[..., Headers]) -> Headers:
    return make_user(Role.it)


def create(client: TestClient, it: Headers, site: Site, name: str = "") -> dict:
    response = client.post("/api/v1/terminals", json={"site_id": site.id, "name": name}, headers=it)
    assert response.status_code == 201, response.text
    return response.json()


def pair(client: TestClient, code: str) -> dict:
    response = client.post("/api/v1/terminals/pair", json={"code": code})
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> Headers:
    return {"Authorization": f"Bearer {token}"}


def test_terminal_pairs_once_and_its_token_works(
    client: TestClient, it: Headers, sites: dict[str, Site], database: Database
) -> None:
    created = create(client, it, sites["p1"], "Tivi hội trường")
    code = created["pairing"]["code"]
    assert len(code) == 9 and code[4] == "-"  # ABCD-EFGH
    assert not set(code.replace("-", "")) & set("01OIL")
    assert created["pairing"]["pairing_url"].endswith(f"/terminal?code={code}")
    assert created["terminal"]["status"] == "offline"
    with database.session() as session:
        stored = session.query(PairingCode).one()
        assert code.replace("-", "") not in stored.code_hash  # hashed at rest
    # typed by a person: lower case, without the dash, with spaces
    paired = pair(client, f"  {code.replace('-', ' ').lower()} ")
    assert paired["site_name"] == sites["p1"].name and paired["token"].startswith("cbt_")
    assert paired["heartbeat_interval_s"] == 30
    me = client.get("/api/v1/terminals/me", headers=bearer(paired["token"]))
    assert me.status_code == 200 and me.json()["terminal_id"] == created["terminal"]["id"]
    again = client.post("/api/v1/terminals/pair", json={"code": code})
    assert again.status_code == 401 and "used or expired" in again.json()["detail"]


def test_terminal_pairing_code_expires_and_bad_codes_get_4xx(
    client: TestClient, it: Headers, sites: dict[str, Site], database: Database
) -> None:
    code = create(client, it, sites["p1"])["pairing"]["code"]
    with database.session() as session:
        session.query(PairingCode).update({"expires_at": utcnow() - timedelta(seconds=1)})
        session.commit()
    assert client.post("/api/v1/terminals/pair", json={"code": code}).status_code == 401
    for body, status in [
        ({"code": "ABC"}, 422),
        ({"code": "ABCD-EFG0"}, 422),  # 0 is never in a code
        ({"code": ""}, 422),
        ({"code": "x" * 100}, 422),
        ({}, 422),
        ({"code": 12345678}, 422),
    ]:
        response = client.post("/api/v1/terminals/pair", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["detail"]


def test_terminal_pairing_attempts_are_limited(
    client: TestClient, it: Headers, sites: dict[str, Site], app
) -> None:
    code = create(client, it, sites["p1"])["pairing"]["code"]
    for _ in range(10):
        assert client.post("/api/v1/terminals/pair", json={"code": "AAAA-AAAA"}).status_code == 401
    limited = client.post("/api/v1/terminals/pair", json={"code": code})
    assert limited.status_code == 429 and "try again in" in limited.json()["detail"]
    app.state.pairing_limiter = None  # a new window
    assert client.post("/api/v1/terminals/pair", json={"code": code}).status_code == 200


def test_terminal_revoked_token_stops_at_once(
    client: TestClient, it: Headers, sites: dict[str, Site]
) -> None:
    created = create(client, it, sites["p2"])
    token = pair(client, created["pairing"]["code"])["token"]
    assert client.get("/api/v1/terminals/me/agenda", headers=bearer(token)).status_code == 200
    terminal_id = created["terminal"]["id"]
    revoked = client.post(f"/api/v1/terminals/{terminal_id}/revoke", headers=it)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    for path in ("/api/v1/terminals/me/agenda", "/api/v1/terminals/me"):
        refused = client.get(path, headers=bearer(token))
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    beat = client.post("/api/v1/terminals/me/heartbeat", json={}, headers=bearer(token))
    assert beat.status_code == 401
    twice = client.post(f"/api/v1/terminals/{terminal_id}/revoke", headers=it)
    assert twice.status_code == 409
    code = client.post(f"/api/v1/terminals/{terminal_id}/pairing-code", headers=it)
    assert code.status_code == 409


def test_terminal_repairing_replaces_the_old_token(
    client: TestClient, it: Headers, sites: dict[str, Site]
) -> None:
    created = create(client, it, sites["p1"])
    old = pair(client, created["pairing"]["code"])["token"]
    fresh = client.post(f"/api/v1/terminals/{created['terminal']['id']}/pairing-code", headers=it)
    assert fresh.status_code == 201
    new = pair(client, fresh.json()["code"])["token"]
    assert client.get("/api/v1/terminals/me", headers=bearer(new)).status_code == 200
    assert client.get("/api/v1/terminals/me", headers=bearer(old)).status_code == 401


def test_terminal_heartbeat_makes_it_online_then_offline(
    client: TestClient, it: Headers, sites: dict[str, Site], database: Database
) -> None:
    created = create(client, it, sites["p1"])
    token = pair(client, created["pairing"]["code"])["token"]
    beat = client.post(
        "/api/v1/terminals/me/heartbeat",
        json={
            "kind": "agent",
            "version": "0.1.0",
            "ip": "10.0.0.7",
            "camera": True,
            "microphone": False,
            "last_error": "microphone hw:1: no such device",
        },
        headers=bearer(token),
    )
    assert beat.status_code == 200 and beat.json() == {"status": "online", "next_in_s": 30}
    listed = client.get(f"/api/v1/terminals?site_id={sites['p1'].id}", headers=it).json()
    (row,) = listed["items"]
    assert row["status"] == "online" and row["ip"] == "10.0.0.7"
    assert (row["camera"], row["microphone"], row["version"]) == (True, False, "0.1.0")
    assert row["last_error"] == "microphone hw:1: no such device"
    assert client.get("/api/v1/terminals?status=online", headers=it).json()["total"] == 1
    # silent for longer than terminals.offline_after_s (90 s)
    with database.session() as session:
        terminal = session.get(Terminal, created["terminal"]["id"])
        assert terminal is not None
        terminal.last_seen_at = utcnow() - timedelta(seconds=91)
        session.commit()
    detail = client.get(f"/api/v1/terminals/{created['terminal']['id']}", headers=it).json()
    assert detail["status"] == "offline"
    assert client.get("/api/v1/terminals?status=online", headers=it).json()["total"] == 0
    assert client.get("/api/v1/terminals?status=offline", headers=it).json()["total"] == 1


def test_terminal_bad_input_and_roles(
    client: TestClient,
    it: Headers,
    sites: dict[str, Site],
    make_user: Callable[..., Headers],
) -> None:
    viewer = make_user(Role.viewer)
    site_id = sites["p1"].id
    assert (
        client.post("/api/v1/terminals", json={"site_id": site_id}, headers=viewer).status_code
        == 403
    )
    assert client.get("/api/v1/terminals", headers=viewer).status_code == 403
    assert (
        client.post("/api/v1/terminals", json={"site_id": 999_999}, headers=it).status_code == 404
    )
    assert client.post("/api/v1/terminals", json={"site_id": 0}, headers=it).status_code == 422
    assert client.post("/api/v1/terminals", json={"site_id": 2**70}, headers=it).status_code == 422
    assert client.get("/api/v1/terminals/999999", headers=it).status_code == 404
    assert client.get("/api/v1/terminals?status=sleeping", headers=it).status_code == 422
    assert (
        client.get("/api/v1/terminals/me", headers=it).status_code == 403
    )  # a user, not a terminal
    token = pair(client, create(client, it, sites["p1"])["pairing"]["code"])["token"]
    for body in (
        {"version": "x" * 51},
        {"occurrence_id": -1},
        {"kind": "toaster"},
        {"camera": "maybe"},
    ):
        response = client.post("/api/v1/terminals/me/heartbeat", json=body, headers=bearer(token))
        assert response.status_code == 422, body
    assert client.get("/api/v1/terminals", headers=bearer(token)).status_code == 403
    for query, status in (("", 422), ("?occurrence_id=abc", 422), ("?occurrence_id=999", 404)):
        floor = client.get(f"/api/v1/terminals/me/floor{query}", headers=bearer(token))
        assert floor.status_code == status and floor.json()["detail"], query


def test_terminal_codes_are_typeable() -> None:
    codes = {terminal_service.new_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 8 and set(c) <= set(terminal_service.CODE_ALPHABET) for c in codes)
    assert terminal_service.normalise_code(" abcd-efgh ") == "ABCDEFGH"


def test_terminal_kiosk_page_and_script_are_served(client: TestClient) -> None:
    page = client.get("/terminal?code=ABCD-EFGH")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<html lang="vi">' in page.text and "Thiết bị đầu cuối" in page.text
    assert 'src="/terminal/kiosk.js"' in page.text and page.headers["cache-control"] == "no-store"
    script = client.get("/terminal/kiosk.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert 'from "/static/js/whip.js"' in script.text
    assert client.get("/static/js/whip.js").status_code == 200
    assert 'from "/terminal/countdown.js"' in script.text
    countdown = client.get("/terminal/countdown.js")
    assert countdown.status_code == 200 and "javascript" in countdown.headers["content-type"]
    assert "export function countdown" in countdown.text


def test_terminal_pairing_campaign_from_many_addresses_does_not_lock_out_devices(
    app, it: Headers, sites: dict[str, Site]
) -> None:
    """200 wrong codes from 20 addresses: a device with its right code still pairs; the
    guessing addresses get one try each from then on."""
    with TestClient(app, client=("10.9.9.9", 50000)) as staff:
        code = create(staff, it, sites["p1"])["pairing"]["code"]
    for index in range(20):
        with TestClient(app, client=(f"203.0.113.{index}", 40000)) as guesser:
            for _ in range(10):
                wrong = guesser.post("/api/v1/terminals/pair", json={"code": "AAAA-AAAA"})
                assert wrong.status_code == 401
            assert guesser.post("/api/v1/terminals/pair", json={"code": code}).status_code == 429
    with TestClient(app, client=("198.51.100.7", 40000)) as device:
        assert pair(device, code)["site_id"] == sites["p1"].id
    with TestClient(app, client=("198.51.100.8", 40000)) as another:
        first = another.post("/api/v1/terminals/pair", json={"code": "BBBB-BBBB"})
        assert first.status_code == 401
        second = another.post("/api/v1/terminals/pair", json={"code": "CCCC-CCCC"})
        assert second.status_code == 429 and second.json()["retry_after_s"] > 0


def test_terminal_pairing_ignores_forwarded_for_unless_from_a_trusted_proxy(
    database: Database, tmp_path, it: Headers, sites: dict[str, Site]
) -> None:
    from confbridge.main import create_app
    from tests.support.factories import make_settings

    url = database.settings.database_url or ""
    for trusted, limited in (([], True), (["127.0.0.0/8"], False)):
        app = create_app(make_settings(url, tmp_path, trusted_proxies=trusted), database=database)
        with TestClient(app, client=("127.0.0.1", 40000)) as proxied:
            statuses = [
                proxied.post(
                    "/api/v1/terminals/pair",
                    json={"code": "AAAA-AAAA"},
                    headers={"X-Forwarded-For": f"1.1.1.1, 192.0.2.{index}"},
                ).status_code
                for index in range(11)
            ]
        assert (statuses[-1] == 429) is limited, (trusted, statuses)
        assert statuses[:10] == [401] * 10


def test_terminal_heartbeat_occurrence_must_exist_and_invite_its_site(
    client: TestClient,
    it: Headers,
    sites: dict[str, Site],
    database: Database,
    settings,
) -> None:
    from tests.support.factories import book_occurrence

    token = pair(client, create(client, it, sites["p2"])["pairing"]["code"])["token"]
    other = book_occurrence(
        database, settings, sites, utcnow() + timedelta(hours=1), invited=("p1",)
    )
    own = book_occurrence(database, settings, sites, utcnow() + timedelta(hours=3), invited=("p2",))

    def beat(occurrence_id: int):
        return client.post(
            "/api/v1/terminals/me/heartbeat",
            json={"kind": "agent", "occurrence_id": occurrence_id},
            headers=bearer(token),
        )

    missing = beat(999_999)
    assert missing.status_code == 404 and "999999 does not exist" in missing.json()["detail"]
    uninvited = beat(other)
    assert uninvited.status_code == 422 and "not invited" in uninvited.json()["detail"]
    listed = client.get(f"/api/v1/terminals?site_id={sites['p2'].id}", headers=it).json()
    assert listed["items"][0]["occurrence_id"] is None  # nothing refused was stored
    assert beat(own).status_code == 200
    listed = client.get(f"/api/v1/terminals?site_id={sites['p2'].id}", headers=it).json()
    assert listed["items"][0]["occurrence_id"] == own


def test_pairing_url_never_reflects_a_forged_host(
    client: TestClient, it: Headers, sites: dict[str, Site]
) -> None:
    forged = client.post(
        "/api/v1/terminals",
        json={"site_id": sites["p1"].id},
        headers={**it, "Host": "evil.example:8000"},
    )
    assert forged.status_code == 201
    url = forged.json()["pairing"]["pairing_url"]
    code = forged.json()["pairing"]["code"]
    assert url == f"/terminal?code={code}"  # on this server, whatever the Host said
    local = client.post(
        "/api/v1/terminals",
        json={"site_id": sites["p1"].id},
        headers={**it, "Host": "127.0.0.1:8000"},
    ).json()["pairing"]
    assert local["pairing_url"] == f"http://127.0.0.1:8000/terminal?code={local['code']}"


def test_pairing_url_uses_the_configured_public_url(
    database: Database, tmp_path: Path, sites: dict[str, Site]
) -> None:
    settings = make_settings(
        database.settings.database_url or "", tmp_path, public_url="https://hop.example.vn/"
    )
    with TestClient(create_app(settings, database=database)) as client:
        it = make_token(client, database, Role.it)
        created = client.post(
            "/api/v1/terminals",
            json={"site_id": sites["p1"].id},
            headers={**it, "Host": "evil.example"},
        ).json()["pairing"]
    assert created["pairing_url"] == f"https://hop.example.vn/terminal?code={created['code']}"


def make_token(client: TestClient, database: Database, role: Role) -> Headers:
    from confbridge.auth import service as auth_service

    with database.session() as session:
        auth_service.create(session=session, username="ktv", password="correct-horse", role=role)
        session.commit()
    response = client.post(
        "/api/v1/auth/token", data={"username": "ktv", "password": "correct-horse"}
    )
    return bearer(response.json()["access_token"])
