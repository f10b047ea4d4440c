"""What the page modules share: ids read from a path, redirects that stay on this site, the
"not found" page, clash lines of a refused booking, JSON for a page's scripts."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import RedirectResponse, Response

from confbridge.errors import DomainError
from confbridge.pagination import MAX_ID
from confbridge.text import vietnamese_key
from confbridge.web.context import Page

MAX_CONFLICTS_SHOWN = 20


def parse_id(text: str) -> int | None:
    return int(text) if text.isdigit() and 1 <= int(text) <= MAX_ID else None


def local_path(target: str | None, default: str = "/calendar") -> str:
    """Redirect targets stay on this site: a path, never another host."""
    if not target:
        return default
    parts = urlsplit(target)
    # a backslash is a slash to browsers: "/\\host" would leave the site
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 32 for c in target)
    ):
        return default
    return target


def not_found(page: Page) -> Response:
    return page.render("error.html", 404, message=page._("This page does not exist."))


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def conflict_lines(page: Page, exc: DomainError) -> tuple[list[dict[str, str]], int]:
    lines = []
    for conflict in exc.extra.get("conflicts", [])[:MAX_CONFLICTS_SHOWN]:
        start_at = datetime.fromisoformat(conflict["start_at"])
        lines.append(
            {
                "site": conflict["site_name"],
                "title": conflict["series_title"],
                "when": page.fmt.long_datetime(start_at),
                "occurrence_id": str(conflict.get("occurrence_id") or ""),
            }
        )
    return lines, int(exc.extra.get("conflict_count", len(lines)))


def series_clashes(page: Page, exc: DomainError) -> tuple[list[dict[str, Any]], int]:
    """The clashes of a refused change, one line per clashing series: its title, the sites it
    holds (in Vietnamese dictionary order), how many of its meetings clash and the first one
    (the service reports one clash per meeting and site: twenty lines for one series)."""
    by_title: dict[str, dict[str, Any]] = {}
    for conflict in exc.extra.get("conflicts", []):
        start_at = datetime.fromisoformat(conflict["start_at"])
        line = by_title.setdefault(
            conflict["series_title"],
            {"title": conflict["series_title"], "sites": set(), "starts": set(), "first": None},
        )
        line["sites"].add(conflict["site_name"])
        line["starts"].add(start_at)
        if line["first"] is None or start_at < line["first"][0]:
            line["first"] = (start_at, str(conflict.get("occurrence_id") or ""))
    lines = []
    for line in by_title.values():
        first_at, occurrence_id = line["first"]
        lines.append(
            {
                "title": line["title"],
                "sites": ", ".join(sorted(line["sites"], key=vietnamese_key)),
                "count": len(line["starts"]),
                "when": page.fmt.long_datetime(first_at),
                "occurrence_id": occurrence_id,
            }
        )
    lines.sort(key=lambda line: vietnamese_key(line["title"]))
    return lines, int(exc.extra.get("conflict_count", len(lines)))


def script_json(value: Any) -> str:
    """JSON to place inside a <script> element: "<" cannot end the element early."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")
