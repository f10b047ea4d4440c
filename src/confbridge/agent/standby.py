"""The hall screen's standby page: what the window shows while the kiosk page cannot be loaded
(the control plane or the network is down at boot, or when Chromium was started again).

The agent writes it itself, as a `data:` URL, from the agenda it read last: the hall's name, a
running clock and its next meetings, in Vietnamese, so that the TV is never black or showing a
browser's error page in English.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from confbridge.agent.client import AgendaEntry

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
MAX_ITEMS = 6
IN_PERSON = "in_person"
STYLE = """
html { font-size: clamp(14px, calc(0.9vw + 4px), 40px); }
body { margin: 0; min-height: 100vh; background: #0b1d33; color: #f4f6f8; cursor: none;
       font-family: system-ui, "Noto Sans", sans-serif; padding: 1.5rem 2.5rem;
       box-sizing: border-box; }
header { display: flex; justify-content: space-between; align-items: center; gap: 2rem; }
#site { font-size: 3rem; font-weight: 700; }
#clock { font-size: 6rem; font-weight: 700; font-variant-numeric: tabular-nums; text-align: right; }
#status { font-size: 2rem; color: #ffcf70; margin: 1rem 0; }
h2 { font-size: 2rem; margin: 1rem 0 .5rem; }
ul { list-style: none; padding: 0; margin: 0; }
li { font-size: 2rem; padding: .6rem 0; border-bottom: 1px solid #1e4670; }
time { display: inline-block; min-width: 18rem; color: #9cc3ea; }
"""
CLOCK_SCRIPT = """
const format = new Intl.DateTimeFormat("vi-VN", {hour: "2-digit", minute: "2-digit",
  second: "2-digit", hour12: false, timeZone: "Asia/Ho_Chi_Minh"});
const tick = () => { document.getElementById("clock").textContent = format.format(Date.now()); };
tick();
setInterval(tick, 1000);
"""


def when(start_at: datetime) -> str:
    """`Thứ Sáu 04/12 14:00`, in the hall's time."""
    local = start_at.astimezone(TZ)
    return f"{WEEKDAYS[local.weekday()]} {local:%d/%m %H:%M}"


def standby_html(site_name: str, items: Sequence[AgendaEntry], now: datetime) -> str:
    """The page: the hall, the clock, that it is connecting, and its next online meetings."""
    coming = sorted(
        (i for i in items if i.mode != IN_PERSON and i.end_at > now), key=lambda i: i.start_at
    )[:MAX_ITEMS]
    rows = "".join(
        f"<li><time>{html.escape(when(i.start_at))}</time> {html.escape(i.title)}</li>"
        for i in coming
    )
    agenda = f"<h2>Lịch họp</h2><ul>{rows}</ul>" if rows else "<h2>Không có cuộc họp sắp tới</h2>"
    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        f"<title>Màn hình chờ</title><style>{STYLE}</style></head><body>"
        f'<header><div id="site">{html.escape(site_name or "Thiết bị đầu cuối")}</div>'
        '<div id="clock"></div></header>'
        '<div id="status">Đang kết nối tới máy chủ, vui lòng đợi…</div>'
        f"{agenda}<script>{CLOCK_SCRIPT}</script></body></html>"
    )


def standby_url(site_name: str, items: Sequence[AgendaEntry], now: datetime) -> str:
    """The page as a `data:` URL (nothing to serve, nothing to reach)."""
    return "data:text/html;charset=utf-8," + quote(standby_html(site_name, items, now))
