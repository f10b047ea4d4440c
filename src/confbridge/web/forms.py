"""The booking form: what the page sent, checked field by field, as a series for the service.

Every problem is a message for the field it concerns, so the page can be shown again with the
values typed and the messages beside them; nothing the user types can end in a server error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from starlette.datastructures import FormData

from confbridge.meetings.models import MeetingKind, MeetingMode, Occurrence, Series
from confbridge.pagination import MAX_ID
from confbridge.text import control_character
from confbridge.timeutil import zone
from confbridge.web.recurrence_words import (
    ONCE_WORDS,
    RecurrenceWordsError,
    describe,
    is_once,
    parse,
)

MAX_TITLE = 300
MAX_WORDS = 300
MAX_DURATION_MIN = 24 * 60
MAX_EXDATES = 100


def _text(form: FormData, name: str, limit: int = 200) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _ids(form: FormData, name: str) -> list[int]:
    """Checked ids; anything that is not a plausible id is ignored (it was not offered)."""
    ids = []
    for value in form.getlist(name):
        if isinstance(value, str) and value.isdigit() and 1 <= int(value) <= MAX_ID:
            ids.append(int(value))
    return sorted(set(ids))


def parse_date(text: str) -> date | None:
    """An ISO date (from a date input) or dd/mm/yyyy (typed by hand)."""
    text = text.strip()
    try:
        if "/" in text:
            day, month, year = (int(p) for p in text.split("/"))
            return date(year, month, day)
        return date.fromisoformat(text)
    except ValueError:
        return None


def _shown_date(iso: str, language: str) -> str:
    """A stored date as the form shows it: 16/02/2026 in Vietnamese (the pages' one format)."""
    day = parse_date(iso)
    if day is None or language != "vi":
        return iso
    return day.strftime("%d/%m/%Y")


def parse_time(text: str) -> time | None:
    text = text.strip().lower().replace("h", ":")
    try:
        hour, _, minute = text.partition(":")
        return time(int(hour), int(minute or 0))
    except ValueError:
        return None


@dataclass
class BookingForm:
    """The booking form's fields as typed, and the messages about them."""

    title: str = ""
    kind: str = MeetingKind.giao_ban.value
    mode: str = MeetingMode.online.value
    words: str = ""
    start_date: str = ""
    start_time: str = "07:30"
    duration_min: str = "120"
    chair_site_id: str = ""
    site_ids: list[int] = field(default_factory=list)
    unit_ids: list[int] = field(default_factory=list)
    skip_holidays: bool = True
    exdates: str = ""
    once: bool = False  # "does not repeat": one meeting, whatever the words say
    errors: dict[str, str] = field(default_factory=dict)
    rrule: str = ""

    @classmethod
    def from_form(cls, form: FormData, language: str = "vi") -> BookingForm:
        once = form.get("once") is not None
        words = _text(form, "words", MAX_WORDS + 1)
        return cls(
            title=_text(form, "title", MAX_TITLE + 1),
            kind=_text(form, "kind", 20),
            mode=_text(form, "mode", 20),
            words=ONCE_WORDS.get(language, ONCE_WORDS["vi"]) if once else words,
            once=once,
            start_date=_text(form, "start_date", 20),
            start_time=_text(form, "start_time", 10),
            duration_min=_text(form, "duration_min", 10),
            chair_site_id=_text(form, "chair_site_id", 20),
            site_ids=_ids(form, "site_ids"),
            unit_ids=_ids(form, "unit_ids"),
            skip_holidays=form.get("skip_holidays") is not None,
            exdates=_text(form, "exdates", 2000),
        )

    @classmethod
    def from_series(
        cls, series: Series, gettext: Callable[[str], str], *, language: str
    ) -> BookingForm:
        words = describe(series.rrule, gettext, tz=series.tz, language=language)
        return cls(
            title=series.title,
            kind=series.kind,
            mode=series.mode,
            words=words or series.rrule,
            start_date=series.dtstart.date().isoformat(),
            start_time=series.dtstart.strftime("%H:%M"),
            duration_min=str(series.duration_min),
            chair_site_id=str(series.chair_site_id),
            site_ids=[s.id for s in series.sites],
            unit_ids=[u.id for u in series.units],
            skip_holidays=series.skip_holidays,
            exdates=", ".join(_shown_date(day, language) for day in series.exdates),
            once=is_once(series.rrule),
            rrule=series.rrule,
        )

    def validate(self, _: Callable[[str], str]) -> dict[str, Any] | None:
        """The series fields for the service, or None with `errors` filled in."""
        errors: dict[str, str] = {}
        if not self.title:
            errors["title"] = _("Enter a title.")
        elif len(self.title) > MAX_TITLE:
            errors["title"] = _("The title is too long (at most 300 characters).")
        elif control_character(self.title) is not None:
            errors["title"] = _("The title must be one line, without line breaks or tabs.")
        if self.kind not in MeetingKind.__members__:
            errors["kind"] = _("Choose a kind of meeting.")
        if self.mode not in MeetingMode.__members__:
            errors["mode"] = _("Choose how the meeting is held.")
        at = parse_time(self.start_time)
        if at is None:
            errors["start_time"] = _("Enter a time such as 07:30.")
        rrule = ""
        if len(self.words) > MAX_WORDS:
            errors["words"] = _("The recurrence is too long.")
        else:
            try:
                recurrence = parse(self.words)
                rrule = recurrence.rrule
                if recurrence.at is not None:
                    at = recurrence.at
                    self.start_time = at.strftime("%H:%M")
                    errors.pop("start_time", None)
            except RecurrenceWordsError as exc:
                if not self.words:
                    errors["words"] = _("Say how the meeting repeats, e.g. weekly on Monday.")
                else:
                    errors["words"] = _("These words are not understood: %(words)s") % {
                        "words": exc.words
                    }
        self.rrule = rrule
        start = parse_date(self.start_date)
        if start is None:
            errors["start_date"] = _("Enter the date of the first meeting.")
        elif not 2000 <= start.year <= 2199:
            errors["start_date"] = _("The year must be between 2000 and 2199.")
        duration = int(self.duration_min) if self.duration_min.isdigit() else 0
        if not 1 <= duration <= MAX_DURATION_MIN:
            errors["duration_min"] = _("Enter a duration between 1 and 1440 minutes.")
        chair = int(self.chair_site_id) if self.chair_site_id.isdigit() else 0
        if not 1 <= chair <= MAX_ID:
            errors["chair_site_id"] = _("Choose the chair site.")
        exdates: list[str] = []
        for piece in self.exdates.replace(";", ",").split(","):
            if not piece.strip():
                continue
            day = parse_date(piece)
            if day is None or not 2000 <= day.year <= 2199:
                errors["exdates"] = _("Give dates such as 16/02/2026, separated by commas.")
                break
            exdates.append(day.isoformat())
        if len(exdates) > MAX_EXDATES:
            errors["exdates"] = _("At most 100 dates.")
        self.errors = errors
        if errors:
            return None
        assert start is not None and at is not None
        return {
            "title": self.title,
            "kind": self.kind,
            "mode": self.mode,
            "rrule": rrule,
            "dtstart": datetime.combine(start, at).isoformat(timespec="minutes"),
            "duration_min": duration,
            "chair_site_id": chair,
            "site_ids": self.site_ids,
            "unit_ids": self.unit_ids,
            "skip_holidays": self.skip_holidays,
            "exdates": exdates,
        }


@dataclass
class OccurrenceForm:
    """Moving or cancelling one occurrence."""

    start_date: str = ""
    start_time: str = ""
    status: str = "scheduled"
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_occurrence(cls, occurrence: Occurrence, tz: str) -> OccurrenceForm:
        local = occurrence.start_at.astimezone(zone(tz))
        return cls(local.date().isoformat(), local.strftime("%H:%M"), occurrence.status)

    @classmethod
    def from_form(cls, form: FormData) -> OccurrenceForm:
        return cls(
            _text(form, "start_date", 20), _text(form, "start_time", 10), _text(form, "status", 20)
        )

    def validate(self, _: Callable[[str], str], tz: str) -> tuple[datetime, str] | None:
        errors: dict[str, str] = {}
        day = parse_date(self.start_date)
        at = parse_time(self.start_time)
        if day is None or not 2000 <= day.year <= 2199:
            errors["start_date"] = _("Enter a date such as 2026-01-05.")
        if at is None:
            errors["start_time"] = _("Enter a time such as 07:30.")
        if self.status not in ("scheduled", "cancelled"):
            errors["status"] = _("Choose whether the meeting takes place.")
        self.errors = errors
        if errors:
            return None
        assert day is not None and at is not None
        return datetime.combine(day, at, tzinfo=zone(tz)), self.status
