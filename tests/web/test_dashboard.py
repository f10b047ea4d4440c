"""The IT dashboard page: nodes, alerts with acknowledgement, live meetings' links, offline
terminals; it refreshes itself. Also in headless Chromium."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect, sync_playwright

from confbridge.alerts import service as alert_service
from confbridge.auth.models import Role
from confbridge.bridge import events as event_service
from confbridge.db import Database
from confbridge.main import create_app
from confbridge.nodes.models import SfuNode
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import EventType, PeerStats, SfuEvent
from tests.support.browsers import CHROMIUM, CHROMIUM_ARGS, DESKTOP, artifact
from tests.support.factories import PASSWORD, create_user, heartbeat, make_occurrences, node_down
from tests.support.servers import ServerThread
from tests.support.web import csrf_of


@pytest.fixture
def bridge_state(database: Database, sites: dict[str, Site]) -> int:
    """A node up, a node-down alert for another, a terminal never heard from; the alert id."""
    with database.session() as session:
        heartbeat(session, "local-0", utcnow())
        alert = alert_service.raise_(
            session=session, alert_in=node_down("local-9"), now=utcnow(), deliver=False
        )
        site = session.get(Site, sites["p2"].id)
        assert site is not None
        terminal_service.create_with_token(session=session, site=site)
        session.commit()
        assert alert is not None
        return alert.id


def test_dashboard_page_for_it_staff_only(
    web: Callable[..., TestClient], bridge_state: int
) -> None:
    assert web(Role.secretariat).get("/it").status_code == 403
    client = web(Role.it)
    page = client.get("/it")
    assert page.status_code == 200
    html = page.text
    assert "Giám sát hệ thống" in html and 'data-node="local-0"' in html
    assert 'data-state="up"' in html and "Đang hoạt động" in html
    assert "Máy chủ a" not in html and "local-9" in html  # the alert's Vietnamese message
    assert "Hội trường UBND Phường Hai" in html and "Chưa bao giờ" in html
    body = client.get("/it/body")
    assert body.status_code == 200 and "<html" not in body.text and "local-0" in body.text

    acked = client.post(
        f"/it/alerts/{bridge_state}/acknowledge",
        data={"csrf_token": csrf_of(html)},
        follow_redirects=False,
    )
    assert acked.status_code == 303
    again = client.get("/it").text
    assert "Tiếp nhận</button>" not in again and "user:web-it-" in again
    twice = client.post(
        f"/it/alerts/{bridge_state}/acknowledge", data={"csrf_token": csrf_of(again)}
    )
    assert twice.status_code == 200 and "Cảnh báo này đã được user:web-it-" in twice.text
    assert "acknowledged by" not in twice.text
    forged = client.post(f"/it/alerts/{bridge_state}/acknowledge", data={"csrf_token": "x"})
    assert forged.status_code == 403


def test_dashboard_page_shows_which_sites_get_the_thumbnail(
    web: Callable[..., TestClient], database: Database, sites: dict[str, Site]
) -> None:
    with database.session() as session:
        (live,) = make_occurrences(session, sites, count=1)
        event_service.store_events(
            session=session,
            events=[
                link_stats(live.id, sites["p1"].id, loss=0.0, layer="main"),
                link_stats(live.id, sites["p2"].id, loss=0.2, layer="small"),
            ],
        )
        session.commit()
    html = web(Role.it).get("/it").text
    assert "Hình nhận được" in html
    rows = {
        site: re.search(rf'data-site="{sites[site].id}".*?</tr>', html, re.S).group(0)  # type: ignore[union-attr]
        for site in ("p1", "p2")
    }
    assert 'data-layer="main"' in rows["p1"] and "Đầy đủ" in rows["p1"]
    assert 'data-layer="small"' in rows["p2"] and "Hình nhỏ (đường truyền yếu)" in rows["p2"]


def link_stats(occurrence_id: int, site_id: int, *, loss: float, layer: str) -> SfuEvent:
    """A hall viewer's periodic link report, as a worker sends it."""
    return SfuEvent(
        id=uuid.uuid4().hex,
        type=EventType.stats,
        at=utcnow() - timedelta(seconds=5),
        node_id="local-0",
        room=f"occ-{occurrence_id}",
        occurrence_id=occurrence_id,
        site_id=site_id,
        peer_id=f"peer-{site_id}",
        direction="egress",
        stats=PeerStats(loss_ratio=loss, rtt_ms=40, packets=100, layer=layer),  # type: ignore[arg-type]
    )


@pytest.fixture
def served(settings: Settings, database: Database) -> Iterator[str]:
    server = ServerThread(create_app(settings, database=database)).start()
    yield server.url
    server.stop()


@pytest.mark.browser
def test_dashboard_in_chromium_follows_a_node_going_down(
    served: str, database: Database, bridge_state: int
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (CI installs it)")
    create_user(database, "kythuat", Role.it)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=DESKTOP, base_url=served, locale="vi-VN")
            context.set_default_timeout(15_000)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto("/it")
            expect(page).to_have_url(re.compile(r"/sign-in\?next="))
            page.get_by_label("Tên đăng nhập").fill("kythuat")
            page.get_by_label("Mật khẩu").fill(PASSWORD)
            page.get_by_role("button", name="Đăng nhập").click()
            page.goto("/it")
            expect(
                page.get_by_role("heading", name=re.compile("Giám sát hệ thống"))
            ).to_be_visible()
            node = page.locator('tr[data-node="local-0"]')
            expect(node).to_have_attribute("data-state", "up")
            expect(page.locator('tr[data-alert="node_down"]')).to_contain_text("local-9")
            page.screenshot(path=artifact("web-dashboard.png"), full_page=True)
            # the node falls silent: the page shows it without a reload
            with database.session() as session:
                silent = session.get(SfuNode, "local-0")
                assert silent is not None
                silent.last_seen_at = utcnow() - timedelta(minutes=1)
                session.commit()
            # (the page refreshes every 5 s; expect waits 5 s unless told)
            expect(node).to_have_attribute("data-state", "down", timeout=15_000)
            expect(node).to_contain_text("Mất kết nối")
            assert errors == []
        finally:
            browser.close()
