"""RFC 5545 recurrence: validate an RRULE, expand it with dateutil, drop EXDATEs and holidays."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from dateutil.rrule import rrule, rrulestr

from confbridge.errors import Invalid

# Meetings are at most daily events; finer rules are almost certainly a mistake.
ALLOWED_FREQS = {"YEARLY", "MONTHLY", "WEEKLY", "DAILY"}
HOLIDAY_COUNTRY = "VN"
_UNTIL = re.compile(r"UNTIL=([0-9TZ]+)", re.IGNORECASE)


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown IANA time zone {tz!r} (e.g. 'Asia/Ho_Chi_Minh')") from None


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
        raise Invalid(f"rrule: FREQ must be one of {', '.join(sorted(ALLOWED_FREQS))}")
    if "COUNT" in parts and "UNTIL" in parts:
        raise Invalid("rrule: COUNT and UNTIL cannot both be given (RFC 5545 §3.3.10)")
    body = _UNTIL.sub(lambda m: _until_to_utc(m, zone(tz)), body.upper())
    try:
        rrulestr(body, dtstart=datetime(2000, 1, 3, tzinfo=zone(tz)))
    except (ValueError, TypeError) as exc:
        raise Invalid(f"rrule: {exc}") from None
    return body


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
        for local_start in self._dateutil_rule():
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
        for local_start in self._dateutil_rule():
            if local_start.astimezone(UTC) > until_at:
                break
            if self.excluded(local_start):
                yield local_start


def default_horizon(now: datetime, horizon_days: int) -> datetime:
    return now + timedelta(days=horizon_days)
