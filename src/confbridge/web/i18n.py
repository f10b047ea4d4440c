"""Languages of the web pages: gettext catalogues, and dates and numbers in the locale's format.

Message ids are English; `locale/<lang>/LC_MESSAGES/messages.po` translates them. The `.po`
files are compiled in memory when first used, so no compiled `.mo` file is kept in the tree.
English pages use the message ids themselves.
"""

from __future__ import annotations

import gettext as gettext_module
import io
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time, get_day_names
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
DEFAULT_LANGUAGE = "vi"
LANGUAGES = {"vi": "Tiếng Việt", "en": "English"}
LANGUAGE_COOKIE = "cb_lang"


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> gettext_module.NullTranslations:
    """The catalogue of `language` (English: the message ids as they are)."""
    path = po_path(language)
    if language == "en" or not path.is_file():
        return gettext_module.NullTranslations()
    with path.open("rb") as file:
        catalog = read_po(file, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext_module.GNUTranslations(buffer)


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The chosen language: the cookie set by the switch, else Vietnamese.

    The browser's Accept-Language is not followed: the offices' machines are often set up in
    English while their users read Vietnamese, and the switch is one click away.
    """
    if cookie in LANGUAGES:
        return cookie
    return DEFAULT_LANGUAGE


class Formatter:
    """Dates, times and numbers for one language and the meetings' time zone."""

    def __init__(self, language: str, tz: str) -> None:
        self.language = language
        self.locale = Locale.parse(language)
        self.zone = ZoneInfo(tz)

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone)

    def datetime(self, instant: datetime) -> str:
        # one date format on every Vietnamese page: 07:30 07/12/2026, never 7/12/26
        pattern = "HH:mm dd/MM/yyyy" if self.language == "vi" else "short"
        return format_datetime(self.local(instant), pattern, tzinfo=self.zone, locale=self.locale)

    def long_datetime(self, instant: datetime) -> str:
        local = self.local(instant)
        return f"{self.weekday(local.date())}, {self.date(local.date())} {self.time(instant)}"

    def time(self, instant: datetime) -> str:
        return format_time(self.local(instant), "HH:mm", tzinfo=self.zone, locale=self.locale)

    def date(self, day: date) -> str:
        # Vietnamese offices write 07/12/2026.
        pattern = "dd/MM/yyyy" if self.language == "vi" else "medium"
        return format_date(day, pattern, locale=self.locale)

    def short_date(self, day: date) -> str:
        return format_date(day, "dd/MM" if self.language == "vi" else "MMM d", locale=self.locale)

    def month(self, day: date) -> str:
        pattern = "LLLL 'năm' y" if self.language == "vi" else "LLLL y"
        return format_date(day, pattern, locale=self.locale)

    def weekday(self, day: date) -> str:
        return str(get_day_names("wide", locale=self.locale)[day.weekday()])

    def weekday_short(self, day: date) -> str:
        return str(get_day_names("abbreviated", locale=self.locale)[day.weekday()])

    def number(self, value: float, digits: int = 0) -> str:
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.locale)

    def percent(self, ratio: float) -> str:
        return format_percent(ratio, format="#,##0.#%", locale=self.locale)

    def duration(self, seconds: float) -> str:
        """`h:mm:ss`, or `m:ss` under an hour (a call's length; the same in every language)."""
        minutes, secs = divmod(max(0, int(seconds)), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
