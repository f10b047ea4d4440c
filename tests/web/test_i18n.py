"""Every visible string comes from the catalogue; Vietnamese by default, English on request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from confbridge.auth.models import Role
from confbridge.web import i18n

WEB_DIR = Path(i18n.__file__).parent
METHOD_MAP = [("**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n,jinja2.ext.do"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def _extracted() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB_DIR), METHOD_MAP, OPTIONS, keywords=KEYWORDS
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_i18n_every_message_has_a_vietnamese_translation() -> None:
    with i18n.po_path("vi").open("rb") as file:
        catalog = read_po(file, locale="vi")
    translated = {
        (m.id[0] if isinstance(m.id, tuple) else m.id)
        for m in catalog
        if m.id and (all(m.string) if isinstance(m.string, tuple) else m.string)
    }
    extracted = _extracted()
    assert len(extracted) > 150
    assert sorted(extracted - translated) == []


def test_i18n_catalogue_placeholders_match() -> None:
    import re

    with i18n.po_path("vi").open("rb") as file:
        catalog = read_po(file, locale="vi")
    for message in catalog:
        if not message.id:
            continue
        source = message.id[0] if isinstance(message.id, tuple) else message.id
        target = message.string[0] if isinstance(message.string, tuple) else message.string
        names = re.compile(r"%\((\w+)\)s")
        assert set(names.findall(source)) == set(names.findall(target)), source


def test_i18n_pages_are_vietnamese_by_default_and_english_on_request(
    web: Callable[..., TestClient],
) -> None:
    client = web(Role.secretariat)
    page = client.get("/calendar")
    assert '<html lang="vi">' in page.text
    assert "Lịch họp" in page.text and "Meeting calendar" not in page.text
    switched = client.get("/language/en?next=/calendar?view=month", follow_redirects=False)
    assert switched.status_code == 303
    assert switched.headers["location"] == "/calendar?view=month"
    english = client.get("/calendar?view=month")
    assert '<html lang="en">' in english.text
    assert "Meeting calendar" in english.text
    # An unknown language changes nothing, and the switch never leaves the site.
    unknown = client.get("/language/xx?next=https://example.org/", follow_redirects=False)
    assert unknown.headers["location"] == "/calendar"
    assert '<html lang="en">' in client.get("/calendar").text


def test_i18n_formats_follow_the_locale() -> None:
    from datetime import UTC, date, datetime

    vi = i18n.Formatter("vi", "Asia/Ho_Chi_Minh")
    en = i18n.Formatter("en", "Asia/Ho_Chi_Minh")
    instant = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)
    assert vi.long_datetime(instant) == "Thứ Hai, 07/12/2026 07:30"
    assert en.long_datetime(instant) == "Monday, Dec 7, 2026 07:30"
    assert vi.number(12345.5, 1) == "12.345,5"
    assert en.number(12345.5, 1) == "12,345.5"
    assert vi.percent(0.834) == "83,4%"
    assert vi.month(date(2026, 12, 1)) == "Tháng 12 năm 2026"
