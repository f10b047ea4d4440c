"""No English and no raw code on a Vietnamese screen: the templates' own text, the scripts'
strings, and the pages as served with data and with every kind of refusal."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.alerts import service as alert_service
from confbridge.alerts.service import AlertIn, AlertKind, Severity
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.sites.models import Site
from confbridge.terminals.pages import HERE as KIOSK_DIR
from confbridge.timeutil import utcnow
from confbridge.web import STATIC_DIR
from confbridge.web.context import TEMPLATES_DIR
from tests.support.factories import make_occurrences
from tests.support.untranslated import untranslated
from tests.support.web import csrf_of, next_weekday

KIOSK_TEMPLATES = KIOSK_DIR / "templates"
KIOSK_STATIC = KIOSK_DIR / "static"
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
ATTRIBUTE = re.compile(r'[\w-]+="[^"]*"')
VISIBLE_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt", "data-confirm"}
# Names and abbreviations that are the same in both languages.
SAME_IN_BOTH = {
    "ConfBridge",
    "CSV",
    "XLSX",
    "RTT",
    "CPU",
    "SIP",
    "PIN",
    "RRULE",
    "ms",
    "PDF",
    "DOCX",
    "KB",
    "MB",
}


class VisibleText(HTMLParser):
    """The text a reader sees: text nodes and the attributes that are shown or read out, and
    the string values of JSON handed to the page's scripts (their labels)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._json = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "style"):
            self._skip += 1
            # labels and names are shown; the initial state is codes the script reads
            json_id = values.get("id") or ""
            self._json = values.get("type") == "application/json" and json_id.endswith(
                ("labels", "names")
            )
        self.parts += [v for k, v in attrs if k in VISIBLE_ATTRIBUTES and v]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
            self._json = False

    def handle_data(self, data: str) -> None:
        if self._json and data.strip():
            self.parts += list(_strings(json.loads(data)))
        elif not self._skip:
            self.parts.append(data)

    @classmethod
    def of(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        return " ".join(" ".join(parser.parts).split())


def _strings(value: Any) -> Any:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _template_files() -> list[Path]:
    return sorted(TEMPLATES_DIR.glob("*.html"))


@pytest.mark.parametrize("path", _template_files(), ids=lambda p: p.name)
def test_untranslated_templates_have_no_text_outside_the_catalogue(path: Path) -> None:
    """Every word a template writes itself goes through _() (names and units excepted)."""
    source = JINJA.sub(" ", path.read_text(encoding="utf-8"))
    # a macro may write attributes outside a tag (its caller puts them inside one)
    text = ATTRIBUTE.sub(" ", VisibleText.of(source))
    words = {w for w in re.findall(r"[^\W\d_][\w'’]+", text) if w not in SAME_IN_BOTH}
    assert words == set(), f"{path.name}: {sorted(words)}"


def test_untranslated_kiosk_page_is_vietnamese() -> None:
    """The kiosk writes Vietnamese itself (its scripts switch languages): no English there."""
    source = JINJA.sub(" ", (KIOSK_TEMPLATES / "terminal.html").read_text(encoding="utf-8"))
    assert untranslated(VisibleText.of(source)) == []


JS_STRING = re.compile(r"""(["'`])((?:\\.|(?!\1).)*)\1""")
PROSE = re.compile(r"^[A-Za-z][a-z']*(?: [A-Za-z][a-z']*){2,}[ .!?…:]*$")
# Lines whose strings go to IT staff (the console log, the heartbeat), not to the screen.
FOR_IT_STAFF = re.compile(r"console\.|note\(|new \w*Error\(|throw |fail\(")


def _script_files() -> list[Path]:
    return sorted(Path(STATIC_DIR, "js").glob("*.js")) + sorted(Path(KIOSK_STATIC).glob("*.js"))


@pytest.mark.parametrize("path", _script_files(), ids=lambda p: p.name)
def test_untranslated_scripts_show_no_english_of_their_own(path: Path) -> None:
    """A script takes what it shows from the page's labels, never from English literals."""
    found = []
    english_words = False  # the kiosk's own English dictionary, chosen with ?lang=en
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        code = line.split("//", 1)[0] if "://" not in line else line
        if re.match(r"\s*en: \{", code):
            english_words = True
        elif english_words and re.match(r"\s*\},?\s*$", code):
            english_words = False
            continue
        if english_words or FOR_IT_STAFF.search(code) or code.lstrip().startswith(("*", "/*")):
            continue
        for _quote, literal in JS_STRING.findall(code):
            if PROSE.match(literal.strip()):
                found.append(f"{path.name}:{number}: {literal}")
    assert found == []


def test_untranslated_scan_finds_what_it_looks_for() -> None:
    """The scan itself: an English message, a raw kind code and the other 'not met' word."""
    assert untranslated("Đã kết nối. Wrong username or password.")
    assert untranslated("Loại: so_ket") == ["so_ket"]
    assert untranslated("Kết quả: Không đạt") == ["Không đạt"]
    assert untranslated("Giao ban · Sơ kết · Chưa đạt · /api/v1/so_ket_x") == []


@pytest.fixture
def live_meeting(session: Session, sites: dict[str, Site]) -> int:
    """A meeting on now with alerts of every kind open, one of them for a hall without a
    terminal."""
    (live, _tomorrow) = make_occurrences(session, sites, count=2)
    now = utcnow()
    for kind in AlertKind:
        alert_service.raise_(
            session=session,
            alert_in=AlertIn(
                kind=kind,
                severity=Severity.warning,
                subject=f"test:{kind.value}",
                message="Cảnh báo thử",
                message_en="A test alert",
                node_id="local-0"
                if kind in (AlertKind.node_down, AlertKind.spool_growing)
                else None,
                occurrence_id=live.id,
                site_id=sites["p1"].id,
                details={"no_terminal": kind is AlertKind.terminal_offline, "series_id": 1},
            ),
            now=now - timedelta(minutes=3),
            deliver=False,
        )
    session.commit()
    return live.id


def _check(label: str, html: str) -> None:
    assert '<html lang="vi">' in html or "<html" not in html, label
    problems = untranslated(VisibleText.of(html))
    assert problems == [], f"{label}: {problems}"


def test_untranslated_pages_with_data_and_refusals(
    web: Callable[..., TestClient], live_meeting: int, database: Database, sites: dict[str, Site]
) -> None:
    """Every page a secretary and an IT officer open, and what each refusal shows them."""
    secretary, it = web(Role.secretariat), web(Role.it)
    occurrence = f"/occurrences/{live_meeting}"
    for path in (
        "/calendar",
        "/calendar?view=month",
        "/bookings/new",
        occurrence,
        f"{occurrence}/console",
        "/reports",
        "/reports/attendance",
        f"/sites/{sites['p1'].id}",
        "/no/such/page",
        "/account/password",
    ):
        _check(path, secretary.get(path).text)
    _check("/it", it.get("/it").text)
    # refusals: a report period backwards and a date that is not one, a bad repeat rule, a
    # date to skip that is not a date, a floor action while the room is not open, the
    # programme with no media server
    _check("report dates", secretary.get("/reports?from=2026-12-31&to=2026-01-01").text)
    _check("report date", secretary.get("/reports?from=31-12-2026").text)
    _check("attendance dates", secretary.get("/reports/attendance?from=2026-02-30").text)
    token = csrf_of(secretary.get("/bookings/new").text)
    base = {
        "csrf_token": token,
        "title": "Giao ban",
        "kind": "giao_ban",
        "mode": "online",
        "start_date": next_weekday(0).isoformat(),
        "start_time": "07:30",
        "duration_min": "60",
        "chair_site_id": str(sites["hq"].id),
        "site_ids": [str(sites["p1"].id)],
        "action": "save",
    }
    for words in (
        "FREQ=SECONDLY",
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=DAILY;BYHOUR=7,8",
        "FREQ=WEEKLY;COUNT=2;UNTIL=20300101",
        "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2",
    ):
        refused = secretary.post("/bookings/new", data={**base, "words": words})
        assert refused.status_code in (409, 422), words
        _check(f"words {words}", refused.text)
    skipped = secretary.post("/bookings/new", data={**base, "words": "hằng tuần", "exdates": "x"})
    _check("exdates", skipped.text)
    headers = {"X-CSRF-Token": token, "Accept": "application/json"}
    floor = secretary.post(
        f"{occurrence}/floor", data={"action": "mute_all", "csrf_token": token}, headers=headers
    )
    assert floor.status_code >= 400
    _check("floor", json.dumps(floor.json(), ensure_ascii=False))
    grant = secretary.post(f"{occurrence}/console/grant", headers=headers)
    assert grant.status_code >= 400
    _check("grant", json.dumps(grant.json(), ensure_ascii=False))
