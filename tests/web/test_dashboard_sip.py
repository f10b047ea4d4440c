"""The IT page lists the SIP calls the media servers hold: a room system's call opened through
a real worker's leg API (as the gateway opens it), a caller waiting for its PIN, and a node
that does not answer."""

from __future__ import annotations

import html
from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from tests.support.factories import heartbeat
from tests.support.servers import Stack


def offer(port: int) -> str:
    return (
        "v=0\r\no=polycom 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"m=video {port + 2} RTP/AVP 109\r\na=rtpmap:109 H264/90000\r\n"
        "a=fmtp:109 profile-level-id=42801f;packetization-mode=1\r\n"
    )


async def test_dashboard_sip_calls_opened_on_the_worker_are_listed(
    stack: Stack,
    web: Callable[..., TestClient],
    make_user: Callable[..., dict[str, str]],
    client: TestClient,
    sites: dict[str, Site],
    database: Database,
) -> None:
    grant = await stack.join("p2")
    with database.session() as session:
        heartbeat(session, "local-9", utcnow())  # up, but nothing listens at its address
        session.commit()
    async with httpx.AsyncClient(base_url=stack.worker, headers=stack.admin(), timeout=10) as http:
        site_call = await http.post(
            "/sip-legs",
            json={
                "call_id": "a84b4c76e66710@127.0.0.1",
                "remote_uri": "sip:phonghop@127.0.0.1",
                "offer": offer(40_000),
                "token": grant["token"],
                "direction": "out",
            },
        )
        assert site_call.status_code == 201, site_call.text
        lobby_call = await http.post(
            "/sip-legs",
            json={
                "call_id": "77aa@127.0.0.1",
                "remote_uri": "sip:khach@127.0.0.1",
                "display_name": "Polycom khách",
                "offer": offer(40_010),
                "lobby": True,
            },
        )
        assert lobby_call.status_code == 201, lobby_call.text
        site_leg, lobby_leg = site_call.json()["leg_id"], lobby_call.json()["leg_id"]

        it_page = web(Role.it)
        page = html.unescape(it_page.get("/it").text)
        assert "Cuộc gọi SIP (2)" in page
        assert f'data-sip-leg="{site_leg}" data-direction="out"' in page
        assert f'data-sip-leg="{lobby_leg}" data-direction="in"' in page
        assert sites["p2"].name in page and "sip:phonghop@127.0.0.1" in page
        assert "Hệ thống gọi đi" in page and "Gọi đến" in page
        assert "PCMA/8000, H264/90000" in page
        assert "Polycom khách" in page and "Đang chờ nhập mã PIN" in page
        assert 'data-sip-unreachable="local-9"' in page and "local-9 không trả lời" in page
        assert f'href="/occurrences/{stack.occurrence_id}"' in page
        overview = client.get("/api/v1/overview", headers=make_user(Role.it)).json()
        (listed,) = [c for c in overview["sip_calls"] if c["leg_id"] == site_leg]
        assert listed["node_id"] == "local-0" and listed["site_id"] == sites["p2"].id
        assert listed["occurrence_id"] == stack.occurrence_id and listed["guest"] is False
        assert listed["audio_codec"] == "PCMA/8000" and listed["duration_s"] >= 0
        assert overview["sip_unreachable_nodes"] == ["local-9"]
        anonymous = await http.get("/sip-legs", headers={"Authorization": "Bearer x"})
        assert anonymous.status_code == 401

        for leg in (site_leg, lobby_leg):
            closed = await http.request("DELETE", f"/sip-legs/{leg}", json={"reason": "hangup"})
            assert closed.status_code == 200
    body = it_page.get("/it/body").text
    assert "data-sip-leg=" not in body and "Hiện không có cuộc gọi SIP nào." in body
    english = it_page.get("/language/en?next=/it", follow_redirects=True).text
    assert "SIP calls (0)" in english and "No SIP call now." in english
