"""RFC 5545 recurrence: validate an RRULE, expand it with dateutil, drop EXDATEs and holidays."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import MAXYEAR, UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from dateutil.rrule import rrule, rrulestr

from confbridge.errors import Invalid
from confbridge.timeutil import zone

# Meetings are at most daily events; finer rules are almost certainly a mistake.
ALLOWED_FREQS = {"YEARLY", "MONTHLY", "WEEKLY", "DAILY"}
# A series meets at most once a day, at the time of its DTSTART: parts that pick hours, minutes
# or seconds would make one meeting a day into many.
SUB_DAILY_PARTS = ("BYHOUR", "BYMINUTE", "BYSECOND")
# Parts a frequency may not have: RFC 5545 §3.3.10 (BYSETPOS with DAILY is allowed there, but a
# daily set holds one day, so any position but 1 or -1 selects nothing, ever).
NOT_WITH = {
    "BYMONTHDAY": {"WEEKLY"},
    "BYYEARDAY": {"DAILY", "WEEKLY", "MONTHLY"},
    "BYWEEKNO": {"DAILY", "WEEKLY", "MONTHLY"},
    "BYSETPOS": {"DAILY"},
}
# BYEASTER is a dateutil extension, not RFC 5545, and its dates follow no 400-year cycle.
UNSUPPORTED_PARTS = ("BYEASTER",)
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# A rule that gives no meeting this many years after its first start never occurs: refused.
NEVER_YEARS = 10
# The Gregorian calendar repeats every 400 years (weekdays and leap years included).
CALENDAR_CYCLE_YEARS = 400
# Steps of one expansion at most (starts given or passed over): daily meetings from 2000 to the
# end of the planning horizon are well under it.
MAX_EXPANSION_STEPS = 200_000
HOLIDAY_COUNTRY = "VN"
_UNTIL = re.compile(r"UNTIL=([0-9TZ]+)", re.IGNORECASE)
_ORDINAL_DAY = re.compile(r"^[+-]?\d")


def _until_to_utc(match: re.Match[str], tz: ZoneInfo) -> str:
    """RFC 5545 §3.3.10: with a DTSTART in a zone, UNTIL must be UTC; accept local and convert."""
    raw = match.group(1).upper()
    if raw.endswith("Z"):
        return f"UNTIL={raw}"
    try:
        if "T" in raw:
            local = datetime.strptime(raw, "%Y%m%dT%H%M%S")
        else:  # a date: the whole of that day is still in the series
            local = datetime.combine(datetime.strptime(raw, "%Y%m%d").date(), time(23, 59, 59))
    except ValueError:
        raise Invalid(f"rrule: UNTIL value {raw!r} is not a date (YYYYMMDD[THHMMSS[Z]])") from None
    return "UNTIL=" + local.replace(tzinfo=tz).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def normalise_rrule(text: str, tz: str) -> str:
    """Validate an RRULE value ('RRULE:' prefix optional) and return its canonical form."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if not body or "\n" in body or ":" in body:
        raise Invalid("rrule: give one RRULE value such as 'FREQ=WEEKLY;BYDAY=MO'")
    parts = dict(p.split("=", 1) for p in body.upper().split(";") if "=" in p)
    freq = parts.get("FREQ")
    if freq not in ALLOWED_FREQS:
        raise Invalid(
            f"rrule: FREQ must be one of {', '.join(sorted(ALLOWED_FREQS))}; "
            "a series meets at most once a day"
        )
    if "COUNT" in parts and "UNTIL" in parts:
        raise Invalid("rrule: COUNT and UNTIL cannot both be given (RFC 5545 §3.3.10)")
    body = _UNTIL.sub(lambda m: _until_to_utc(m, zone(tz)), body.upper())
    try:
        rrulestr(body, dtstart=datetime(2000, 1, 3, tzinfo=zone(tz)))
    except (ValueError, TypeError, OverflowError) as exc:
        raise Invalid(f"rrule: {exc}") from None
    _check_parts(parts, freq)
    return body


def _numbers(text: str) -> list[int]:
    return [int(value) for value in text.split(",") if value.strip()]


def _check_parts(parts: dict[str, str], freq: str) -> None:
    """Refuse parts that make sub-daily meetings, and combinations that never give a day."""
    sub_daily = [name for name in SUB_DAILY_PARTS if name in parts]
    if sub_daily:
        raise Invalid(
            f"rrule: {', '.join(sub_daily)} would make several meetings a day; a series meets "
            "at most once a day, at the time of its start (dtstart)"
        )
    for name in UNSUPPORTED_PARTS:
        if name in parts:
            raise Invalid(f"rrule: {name} is not part of RFC 5545 and is not supported")
    for name, freqs in NOT_WITH.items():
        if name in parts and freq in freqs:
            raise Invalid(f"rrule: {name} cannot be used with FREQ={freq}")
    if freq in ("DAILY", "WEEKLY") and any(
        _ORDINAL_DAY.match(day.strip()) for day in parts.get("BYDAY", "").split(",")
    ):
        raise Invalid(
            f"rrule: BYDAY with a number (such as 1MO) needs FREQ=MONTHLY or YEARLY, not {freq}"
        )
    if "BYSETPOS" in parts:
        # the most days one set can hold: a week's chosen weekdays, a month, a year
        most = {"WEEKLY": len(parts.get("BYDAY", "MO").split(",")), "MONTHLY": 31}.get(freq, 366)
        if not any(0 < abs(position) <= most for position in _numbers(parts["BYSETPOS"])):
            raise Invalid(
                f"rrule: the rule never occurs: a FREQ={freq} set holds at most {most} day(s), "
                "fewer than BYSETPOS asks for"
            )
    if "BYMONTH" in parts and "BYMONTHDAY" in parts:
        months, days = _numbers(parts["BYMONTH"]), _numbers(parts["BYMONTHDAY"])
        if not any(abs(d) <= MONTH_DAYS[m - 1] for m in months if 1 <= m <= 12 for d in days):
            raise Invalid(
                "rrule: the rule never occurs: no month in BYMONTH has a day in BYMONTHDAY"
            )


def parse_exdate(value: str | date | datetime) -> date | datetime:
    """An EXDATE: a date excludes the whole day, a wall-clock date-time one occurrence."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None, second=0, microsecond=0)
    if isinstance(value, date):
        return value
    try:
        if "T" in value or " " in value:
            return datetime.fromisoformat(value).replace(tzinfo=None, second=0, microsecond=0)
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"exdates: {value!r} is not a date or a local date-time") from None


@lru_cache(maxsize=64)
def _holidays_for(years: tuple[int, ...]) -> holidays.HolidayBase:
    return holidays.country_holidays(HOLIDAY_COUNTRY, years=years, language="vi")


def holiday_name(day: date) -> str | None:
    """Vietnam's public holiday on `day` (Tết, observed and substituted days included)."""
    return _holidays_for((day.year,)).get(day)


@dataclass(frozen=True)
class Rule:
    """Everything that decides when a series' occurrences start."""

    rrule: str
    dtstart: datetime  # wall clock in tz
    tz: str
    exdates: tuple[date | datetime, ...] = ()
    skip_holidays: bool = False
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.dtstart.tzinfo is not None:
            raise ValueError("dtstart must be wall-clock time; the zone is `tz`")
        object.__setattr__(self, "_zone", zone(self.tz))

    def _dateutil_rule(self) -> rrule:
        start = self.dtstart.replace(tzinfo=self._zone)
        return rrulestr(self.rrule, dtstart=start)  # type: ignore[return-value]

    def local_starts(self) -> Iterator[datetime]:
        """Local starts, in order; refused past `MAX_EXPANSION_STEPS` (a rule checked by
        `check_occurs` gives its starts at bounded intervals, so this is a backstop)."""
        for step, local_start in enumerate(self._dateutil_rule()):
            if step >= MAX_EXPANSION_STEPS:
                raise Invalid(
                    f"rrule: the rule gives more than {MAX_EXPANSION_STEPS} starts; "
                    "choose a later start or a less frequent rule"
                )
            yield local_start

    def occurs_within(self, years: int) -> bool:
        """Whether the rule gives a start in the `years` after DTSTART, in bounded time.

        dateutil ends an expansion only at a start past UNTIL, at COUNT, or after year 9999:
        a rule whose days never match (BYSETPOS beyond its set, BYWEEKNO=53 with BYMONTH=6)
        runs to year 9999 first, for seconds. The question is asked instead of the same rule
        moved by whole 400-year cycles (the Gregorian calendar repeats: same weekdays, same
        leap years) to end just before year 9999, so the search stops within a cycle.
        """
        window_end = _years_later(self.dtstart, years)
        shift = (MAXYEAR - 1 - window_end.year) // CALENDAR_CYCLE_YEARS * CALENDAR_CYCLE_YEARS
        shift = max(shift, 0)
        base = self._dateutil_rule()
        until = base._until  # aware UTC, or None
        changes: dict[str, object] = {
            "dtstart": self.dtstart.replace(year=self.dtstart.year + shift)
        }
        if until is not None:
            local_until = until.astimezone(self._zone).replace(tzinfo=None)
            changes["until"] = local_until.replace(year=local_until.year + shift)
        moved = base.replace(**changes)
        try:
            first = next(iter(moved), None)
        except OverflowError:  # past year 9999: nothing in the window
            return False
        return first is not None and first <= window_end.replace(year=window_end.year + shift)

    def check_occurs(self) -> None:
        """Refuse a rule that gives no start in the `NEVER_YEARS` after DTSTART."""
        if not self.occurs_within(NEVER_YEARS):
            raise Invalid(
                f"rrule: the rule never occurs: it gives no meeting in the {NEVER_YEARS} years "
                "after the first start"
            )

    def excluded(self, local_start: datetime) -> bool:
        naive = local_start.replace(tzinfo=None)
        if naive.date() in self.exdates or naive in self.exdates:
            return True
        return self.skip_holidays and holiday_name(naive.date()) is not None

    def starts(
        self, *, after_at: datetime | None, until_at: datetime, limit: int
    ) -> list[datetime]:
        """UTC starts in (after_at, until_at], in order, skipping excluded ones; at most `limit`.

        Raises `Invalid` when the rule would give more than `limit` starts in that window.
        """
        result: list[datetime] = []
        for local_start in self.local_starts():
            start_at = local_start.astimezone(UTC)
            if start_at > until_at:
                break
            if after_at is not None and start_at <= after_at:
                continue
            if self.excluded(local_start):
                continue
            if len(result) == limit:
                raise Invalid(
                    f"the rule gives more than {limit} occurrences before "
                    f"{until_at:%Y-%m-%d}; add COUNT or UNTIL, or a less frequent rule"
                )
            result.append(start_at)
        return result

    def excluded_starts(self, *, until_at: datetime) -> Iterable[datetime]:
        """Local starts the rule gives but EXDATEs or holidays remove (for iCalendar EXDATE)."""
        for local_start in self.local_starts():
            if local_start.astimezone(UTC) > until_at:
                break
            if self.excluded(local_start):
                yield local_start


def _years_later(value: datetime, years: int) -> datetime:
    """The same wall clock `years` later (29 February becomes the 28th in a common year)."""
    try:
        return value.replace(year=value.year + years)
    except ValueError:
        return value.replace(year=value.year + years, day=28)


def default_horizon(now: datetime, horizon_days: int) -> datetime:
    return now + timedelta(days=horizon_days)
