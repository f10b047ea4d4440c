"""A recording from start to archive on a real stack: the chair's and a ward's halls publish
with aiortc; the chair console (headless Chromium) starts and stops recording, and ward p1's
kiosk (Chromium, joined by itself) shows that the meeting is recorded meanwhile; agenda items
marked current become chapters; the occurrence page plays the file and seeks by chapter;
downloads are audited and listed; the invited ward's user reads it, another unit's does not;
the retention deletes the file on its worker and the row."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page
from prometheus_client.parser import text_string_to_metric_families

from confbridge.auth import service as auth_service
from confbridge.auth.models import AuditEntry, Role
from confbridge.meetings.models import Occurrence
from confbridge.recordings.models import Recording
from confbridge.scheduler import Scheduler
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from tests.support.browsers import artifact, async_chromium, skip_without_chromium
from tests.support.factories import PASSWORD
from tests.support.peers import ToneTrack, WhipPublisher
from tests.support.polling import eventually
from tests.support.servers import NODE_SECRET, Stack

skip_without_chromium()

RECORDED_S = 8.0
INDICATOR_JS = """() => ({
  state: window.kiosk.state,
  shown: !document.getElementById("recording").hidden,
  text: document.getElementById("recording").textContent.trim(),
})"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_chromium() as chromium:
        yield chromium


async def _user_token(stack: Stack, name: str, unit_id: int, role: Role) -> dict[str, str]:
    assert stack.database is not None
    with stack.database.session() as session:
        auth_service.create(
            session=session,
            username=name,
            password=PASSWORD,
            memberships=[auth_service.MembershipIn(unit_id=unit_id, role=role)],
        )
        session.commit()
    async with httpx.AsyncClient(base_url=stack.control, timeout=10) as http:
        response = await http.post(
            "/api/v1/auth/token", data={"username": name, "password": PASSWORD}
        )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _metrics(http: httpx.AsyncClient) -> dict[str, float]:
    response = await http.get("/metrics", headers={"Authorization": f"Bearer {NODE_SECRET}"})
    assert response.status_code == 200, response.text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name.startswith("confbridge_recordings")
    }


async def _kiosk(page: Page, shown: bool) -> dict[str, Any] | None:
    seen = await page.evaluate(INDICATOR_JS)
    return seen if seen["state"] == "in_meeting" and seen["shown"] == shown else None


async def _record(
    stack: Stack,
    http: httpx.AsyncClient,
    console: Page,
    kiosk: Page,
    items: list[dict[str, Any]],
    marks_s: list[tuple[float, float]],
) -> dict[str, Any]:
    """The chair console starts recording, two agenda items are marked about RECORDED_S / 2
    apart (`marks_s`: between when each was asked and answered, in s from the start), the
    console stops it; the kiosk shows the indicator meanwhile, and only then."""
    base = f"/api/v1/occurrences/{stack.occurrence_id}"
    await console.goto(f"{stack.control}/occurrences/{stack.occurrence_id}/console")
    button = console.locator("#recording-button")
    assert await button.inner_text() == "Bắt đầu ghi hình"
    await button.click()
    await console.locator("#recording-badge").wait_for(state="visible", timeout=20_000)
    assert await button.inner_text() == "Dừng ghi hình"
    seen = await eventually(lambda: _kiosk(kiosk, True), 20, "the recording indicator")
    assert seen["text"] == "Đang ghi hình"
    (running,) = (await http.get(f"{base}/recordings")).json()
    assert running["ended_at"] is None
    assert (await _metrics(http))["confbridge_recordings_active"] == 1
    worker_delete = await http.delete(  # the worker keeps a file it is writing
        f"{stack.worker}/recordings/{running['id']}", headers=stack.admin()
    )
    assert worker_delete.status_code == 409, worker_delete.text
    await asyncio.sleep(1.0)
    started_at = datetime.fromisoformat(running["started_at"])
    for item in items:
        asked_at = utcnow()
        marked = await http.put(f"{base}/current-item", json={"agenda_item_id": item["id"]})
        assert marked.status_code == 200, marked.text
        marks_s.append(
            ((asked_at - started_at).total_seconds(), (utcnow() - started_at).total_seconds())
        )
        await asyncio.sleep(RECORDED_S / 2)
    await button.click()
    await console.locator("#recording-badge").wait_for(state="hidden", timeout=20_000)
    assert await console.locator("#console-message").is_hidden()
    await eventually(lambda: _kiosk(kiosk, False), 20, "the indicator gone after the stop")
    (stopped,) = (await http.get(f"{base}/recordings")).json()
    assert stopped["id"] == running["id"] and stopped["ended_at"] and stopped["sha256"]
    return stopped


async def _sign_in(page: Page, control: str) -> None:
    await page.goto(f"{control}/sign-in")
    await page.fill("#username", "vanphong")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/calendar**")


async def _play_and_seek(
    page: Page, stack: Stack, recording_id: str, marks_s: list[tuple[float, float]]
) -> None:
    """The occurrence page plays the recording past 5 s and its last agenda chapter; the
    first chapter's button seeks back to it. Chapters start where the items were marked."""
    await page.goto(f"{stack.control}/occurrences/{stack.occurrence_id}")
    article = page.locator(f'.recording[data-recording-id="{recording_id}"]')
    chapters = article.locator('button.chapter[data-kind="agenda"]')
    assert await chapters.count() == 2
    assert "Nội dung: 1. Khai mạc" in await chapters.nth(0).inner_text()
    starts = [float(await c.get_attribute("data-start-s") or "nan") for c in await chapters.all()]
    for start, (asked, answered) in zip(starts, marks_s, strict=True):
        assert asked - 0.01 <= start <= answered + 0.01, (starts, marks_s)
    video = article.locator("video")
    await video.evaluate("v => { v.muted = true; return v.play(); }")

    async def past(seconds: float) -> float | None:
        now = await video.evaluate("v => v.currentTime")
        return now if now > seconds else None

    await eventually(lambda: past(max(5.0, starts[1] + 0.5)), 40, "the recording played")
    await chapters.nth(0).click()
    at = await video.evaluate("v => v.currentTime")
    assert starts[0] - 0.1 <= at < starts[0] + 1.5, (at, starts)
    assert await video.evaluate("v => v.error") is None


async def test_recording_is_shown_played_audited_scoped_and_expired(
    stack: Stack,
    peers: list,
    sites: dict[str, Site],
    it_user: dict[str, str],
    browser: Browser,
    tmp_path: Path,
) -> None:
    base = f"/api/v1/occurrences/{stack.occurrence_id}"
    async with httpx.AsyncClient(
        base_url=stack.control, timeout=30, headers=stack.secretariat
    ) as http:
        for site, audio in (("hq", ToneTrack(0.3)), ("p2", None)):
            grant = await stack.join(site)
            hall = WhipPublisher(grant["whip_url"], grant["token"], width=320, height=240)
            hall.audio = audio
            peers.append(hall)
            assert (await hall.start()).status_code == 201
        agenda = await http.patch(
            f"{base}/invitation",
            json={"agenda": [{"title": "Khai mạc"}, {"title": "Báo cáo thu ngân sách"}]},
        )
        assert agenda.status_code == 200, agenda.text
        created = await http.post(
            "/api/v1/terminals", json={"site_id": sites["p1"].id}, headers=it_user
        )
        kiosk = await browser.new_page()
        viewer = await browser.new_page()
        try:
            await kiosk.goto(created.json()["pairing"]["pairing_url"])
            await _sign_in(viewer, stack.control)
            marks_s: list[tuple[float, float]] = []
            items = agenda.json()["agenda"]
            recording = await _record(stack, http, viewer, kiosk, items, marks_s)
            rid = recording["id"]

            assert recording["chapters_url"] == f"{base}/recordings/{rid}/chapters.vtt"
            vtt = await http.get(recording["chapters_url"])
            assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
            assert vtt.text.startswith("WEBVTT\n")
            assert "1. Khai mạc" in vtt.text and "2. Báo cáo thu ngân sách" in vtt.text

            await _play_and_seek(viewer, stack, rid, marks_s)

            downloaded = await http.get(f"{base}/recordings/{rid}/file")
            assert downloaded.status_code == 200
            assert hashlib.sha256(downloaded.content).hexdigest() == recording["sha256"]
            part = await http.get(
                f"{base}/recordings/{rid}/file", headers={"Range": "bytes=100-199"}
            )
            assert part.status_code == 206 and part.content == downloaded.content[100:200]
            listed = await http.get(f"{base}/recordings/{rid}/downloads")
            assert listed.status_code == 200, listed.text
            actions = [(e["actor"], e["action"]) for e in listed.json()]
            # one entry per download and per playback, not one per range asked for
            assert actions.count(("user:vanphong", "recording_download")) == 1
            assert ("user:vanphong", "recording_play") in actions
            await viewer.reload()
            accesses = viewer.locator(f'.recording[data-recording-id="{rid}"] .recording-accesses')
            assert "vanphong" in (await accesses.text_content() or "")
        except BaseException:
            await kiosk.screenshot(path=artifact("recording-kiosk.png"))
            await viewer.screenshot(path=artifact("recording-occurrence.png"))
            raise
        finally:
            await kiosk.close()
            await viewer.close()

        figures = await _metrics(http)
        assert figures["confbridge_recordings_active"] == 0
        assert figures["confbridge_recordings_stored_bytes"] == recording["bytes"]
        assert figures["confbridge_recordings_failed"] == 0

        # the invited ward's user plays it; the department, not invited, is told nothing
        ward = await _user_token(stack, "xem_p1", sites["p1"].unit_id, Role.viewer)
        other = await _user_token(stack, "xem_so", sites["dept"].unit_id, Role.viewer)
        for path in ("recordings", f"recordings/{rid}/file", f"recordings/{rid}/chapters.vtt"):
            assert (await http.get(f"{base}/{path}", headers=ward)).status_code == 200, path
            assert (await http.get(f"{base}/{path}", headers=other)).status_code == 404, path
        assert (
            await http.get(f"{base}/recordings/{rid}/downloads", headers=ward)
        ).status_code == 403

        await _expire(stack, http, rid, tmp_path / "recordings-0" / f"{rid}.webm")


async def _expire(stack: Stack, http: httpx.AsyncClient, rid: str, written: Path) -> None:
    """Kept while within the series' retention; deleted (file and row, audited) after it."""
    assert stack.database is not None and stack.settings is not None
    with stack.database.session() as session:
        occurrence = session.get(Occurrence, stack.occurrence_id)
        assert occurrence is not None
        series_id = occurrence.series_id
    bad = await http.patch(f"/api/v1/series/{series_id}", json={"recording_retention_days": 0})
    assert bad.status_code == 422
    kept = await http.patch(f"/api/v1/series/{series_id}", json={"recording_retention_days": 1})
    assert kept.status_code == 200 and kept.json()["recording_retention_days"] == 1
    scheduler = Scheduler(stack.database, stack.settings)
    assert await asyncio.to_thread(scheduler.purge_recordings) == 0
    assert written.is_file()
    later = utcnow() + timedelta(days=1, minutes=1)
    assert await asyncio.to_thread(scheduler.purge_recordings, later) == 1
    assert not written.exists() and not written.with_suffix(".json").exists()
    with stack.database.session() as session:
        assert session.get(Recording, rid) is None
        entry = session.query(AuditEntry).filter_by(action="recording_deleted").one()
        assert entry.detail["recording_id"] == rid and entry.detail["file_deleted"] is True
    listed = await http.get(f"/api/v1/occurrences/{stack.occurrence_id}/recordings")
    assert listed.json() == []
    gone = await http.delete(f"{stack.worker}/recordings/{rid}", headers=stack.admin())
    assert gone.status_code == 404, gone.text
