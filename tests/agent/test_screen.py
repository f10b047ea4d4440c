"""The hall screen's pieces without a browser: the page's origin, the script that hands the
page its token, the back-off when the browser cannot be started, and the standby page."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from confbridge.agent.client import AgendaEntry, ControlClient
from confbridge.agent.screen import (
    MANAGED_KEY,
    TOKEN_KEY,
    KioskScreen,
    ScreenOptions,
    page_origin,
    token_script,
)
from confbridge.agent.standby import standby_html, standby_url

NODE = shutil.which("node")
# Runs a token script as a page at `origin` would, with a local storage of its own.
NODE_PAGE = """
const [origin, script] = JSON.parse(process.argv[1]);
const stored = {};
globalThis.location = { origin };
globalThis.localStorage = { setItem: (key, value) => { stored[key] = String(value); } };
eval(script);
process.stdout.write(JSON.stringify(stored));
"""


@pytest.mark.parametrize(
    ("server", "origin"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://HOP.example.vn:443/", "https://hop.example.vn"),
        ("http://hop.example.vn:80/confbridge", "http://hop.example.vn"),
        ("https://hop.example.vn:8443", "https://hop.example.vn:8443"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_screen_page_origin_is_written_as_the_browser_writes_it(server: str, origin: str) -> None:
    assert page_origin(server) == origin


def run_as_page(origin: str, script: str) -> dict[str, str]:
    assert NODE is not None
    result = subprocess.run(
        [NODE, "-e", NODE_PAGE, json.dumps([origin, script])],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return dict(json.loads(result.stdout))


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_screen_token_script_stores_the_token_on_the_kiosk_origin_only() -> None:
    token = "cbt_a\"b'c</script>\\d"  # quotes and a closing tag stay inside the string
    script = token_script("http://127.0.0.1:8000", token)
    stored = run_as_page("http://127.0.0.1:8000", script)
    assert stored == {TOKEN_KEY: token, MANAGED_KEY: "agent"}
    assert run_as_page("http://evil.example", script) == {}


@pytest.mark.integration
async def test_screen_a_browser_that_cannot_start_is_tried_again_with_back_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No browser at the path: each start fails, is logged with the reason, and is retried
    (1 s, then 2 s)."""
    options = ScreenOptions(
        chromium=str(tmp_path / "no-such-browser"),
        profile_dir=tmp_path / "profile",
        restart_max_s=2.0,
    )
    client = ControlClient("http://127.0.0.1:9", "cbt_test")
    screen = KioskScreen(client, options)
    caplog.set_level(logging.INFO, logger="confbridge.agent")
    task = asyncio.create_task(screen.run())
    await asyncio.sleep(3.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.close()
    restarts = [r for r in caplog.records if getattr(r, "event", "") == "screen_restart"]
    assert len(restarts) >= 2 and screen.starts == len(restarts)
    delays = [r.retry_in_s for r in restarts]  # type: ignore[attr-defined]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4, delays
    assert screen.page is None and screen.error is not None
    assert screen.error.startswith("screen: failed")
    assert "no-such-browser: No such file or directory" in screen.error  # what the exec said
    assert (tmp_path / "profile").stat().st_mode & 0o777 == 0o700


def entry(occurrence_id: int, title: str, start_at: datetime, mode: str = "online") -> AgendaEntry:
    return AgendaEntry(
        occurrence_id=occurrence_id,
        title=title,
        mode=mode,
        start_at=start_at,
        end_at=start_at + timedelta(hours=1),
        is_chair=False,
    )


def test_standby_page_lists_the_next_online_meetings_in_the_hall_s_time() -> None:
    now = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)  # Friday 08:00 in Hà Nội
    items = [
        entry(3, "Họp <b>chi bộ</b> & dân", now + timedelta(hours=2)),
        entry(1, "Giao ban sáng", now + timedelta(minutes=30)),
        entry(2, "Họp tại chỗ", now + timedelta(hours=1), mode="in_person"),
        entry(4, "Đã xong", now - timedelta(hours=2)),
    ]
    page = standby_html("Hội trường UBND Phường Một", items, now)
    assert page.index("Giao ban sáng") < page.index("Họp &lt;b&gt;chi bộ&lt;/b&gt; &amp; dân")
    assert "<time>Thứ Sáu 04/12 08:30</time>" in page
    assert "<time>Thứ Sáu 04/12 10:00</time>" in page
    assert "Họp tại chỗ" not in page and "Đã xong" not in page and "<b>" not in page
    assert "Hội trường UBND Phường Một" in page and 'lang="vi"' in page
    assert "Đang kết nối tới máy chủ" in page
    empty = standby_html("", [], now)
    assert "Không có cuộc họp sắp tới" in empty and "Thiết bị đầu cuối" in empty
    assert standby_url("", [], now).startswith("data:text/html;charset=utf-8,")
