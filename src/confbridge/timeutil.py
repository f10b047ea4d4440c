"""Time helpers every floor shares: the current instant, IANA zones, and reading instants from
query strings (dates are local days, naive times are local wall clock)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from confbridge.errors import Invalid

# Windows asked for stay within these years: near year 1 or 9999 a zone's offset, or the day
# added to an end date, leaves what `datetime` can hold.
MIN_QUERY_YEAR, MAX_QUERY_YEAR = 1900, 2999


def utcnow() -> datetime:
    """Now, as an aware UTC instant (what every instant column holds)."""
    return datetime.now(UTC)


def zone(tz: str) -> ZoneInfo:
    """The IANA zone named `tz`; an unknown name is refused as invalid input."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown IANA time zone {tz!r} (e.g. 'Asia/Ho_Chi_Minh')") from None


def check_year(value: date, name: str) -> None:
    """Refuse a date far outside any meeting (a typo, or a probe for an overflow)."""
    if not MIN_QUERY_YEAR <= value.year <= MAX_QUERY_YEAR:
        raise Invalid(f"{name}: the year must be between {MIN_QUERY_YEAR} and {MAX_QUERY_YEAR}")


def parse_instant(value: str, *, tz: str, name: str, end_of_day: bool = False) -> datetime:
    """'2026-01-05' is that local day (its end when `end_of_day`); offsets are honoured."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            check_year(day, name)
            local = datetime.combine(day + timedelta(days=1) if end_of_day else day, time())
            return local.replace(tzinfo=zone(tz)).astimezone(UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(
            f"{name}: {value!r} is not a date (2026-01-05) or a date-time (2026-01-05T07:30+07:00)"
        ) from None
    check_year(parsed, name)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone(tz))
    return parsed.astimezone(UTC)


def parse_window(
    from_: str | None, to: str | None, *, tz: str, now: datetime, default_days: int = 35
) -> tuple[datetime, datetime]:
    """A [from, to) window; by default from the start of today for `default_days`."""
    if from_ is not None:
        start = parse_instant(from_, tz=tz, name="from")
    else:
        today = now.astimezone(zone(tz)).date()
        start = datetime.combine(today, time(), tzinfo=zone(tz)).astimezone(UTC)
    end = (
        parse_instant(to, tz=tz, name="to", end_of_day=True)
        if to is not None
        else start + timedelta(days=default_days)
    )
    if end <= start:
        raise Invalid("to: must be after from")
    return start, end
