"""iCalendar (RFC 5545) feeds: one per series (RRULE form), one per site (expanded events)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vRecur
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.meetings.models import Booking, Occurrence, OccurrenceStatus, Series
from confbridge.meetings.recurrence import Rule, parse_exdate
from confbridge.sip_uri import sip_address
from confbridge.sites.models import Site
from confbridge.text import one_line

PRODID = "-//ConfBridge//Lịch họp trực tuyến//VI"
UID_DOMAIN = "confbridge"
KIND_LABELS = {
    "giao_ban": "Họp giao ban",
    "so_ket": "Sơ kết",
    "tong_ket": "Tổng kết",
    "tap_huan": "Tập huấn",
    "chuyen_de": "Họp chuyên đề",
    "khac": "Cuộc họp",
}
MODE_LABELS = {"online": "Trực tuyến", "in_person": "Trực tiếp", "hybrid": "Kết hợp"}
# Holidays and EXDATEs are listed this far past the planned occurrences, for clients that
# expand the RRULE further than ConfBridge has planned.
EXDATE_LOOKAHEAD = timedelta(days=366)
SITE_FEED_PAST = timedelta(days=90)


def _calendar(name: str, tz: str) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    # icalendar escapes CR/LF in known text properties but fails on them in X- ones, and passes
    # other control characters through: names stored before they were checked are cleaned.
    calendar.add("x-wr-calname", one_line(name))
    calendar.add("x-wr-timezone", tz)
    return calendar


def occurrence_uid(series_id: int, recurrence_at: datetime) -> str:
    return f"occ-{series_id}-{recurrence_at.astimezone(UTC):%Y%m%dT%H%M%SZ}@{UID_DOMAIN}"


def series_uid(series_id: int) -> str:
    return f"series-{series_id}@{UID_DOMAIN}"


def dial_in_line(series: Series, *, sip_domain: str, show_pin: bool) -> str:
    """How a room system joins: "Gọi SIP / SIP: sip:<number>@<domain> — PIN <pin>"; without
    the PIN for readers that may not see it (it opens the meeting to any caller)."""
    line = f"Gọi SIP / SIP: {sip_address(series.meeting_number, sip_domain)}"
    return f"{line} — PIN {series.pin}" if show_pin else line


# Text other domains add to an event's description (the meeting record: content and agenda),
# given the session and the series id; they register with `add_description_source`.
DescriptionSource = Callable[[Session, int], str]
_description_sources: list[DescriptionSource] = []


def add_description_source(source: DescriptionSource) -> None:
    """Have calendar events describe what `source` says of their series (once per source)."""
    if source not in _description_sources:
        _description_sources.append(source)


def _more_description(session: Session, series_id: int) -> str:
    parts = [source(session, series_id) for source in _description_sources]
    return "".join(f"\n{part}" for part in parts if part)


def _describe(
    event: Event, series: Series, chair_name: str, dial_line: str, more: str = ""
) -> None:
    chair_name = one_line(chair_name)
    event.add("summary", one_line(series.title))
    event.add("location", chair_name)
    event.add("categories", [KIND_LABELS.get(series.kind, series.kind)])
    event.add(
        "description",
        f"{KIND_LABELS.get(series.kind, series.kind)} · {MODE_LABELS.get(series.mode, series.mode)}"
        f" · Chủ trì: {chair_name}\n{dial_line}{more}",
    )


def _ended_rule(series: Series) -> str:
    """The stored RRULE, cut at `ended_at` for an ended series (COUNT gives way to UNTIL)."""
    if series.ended_at is None:
        return series.rrule
    parts = [p for p in series.rrule.split(";") if not p.startswith(("COUNT=", "UNTIL="))]
    until = series.ended_at
    for part in series.rrule.split(";"):
        if part.startswith("UNTIL="):
            until = min(until, datetime.strptime(part[6:], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
    return ";".join([*parts, f"UNTIL={until:%Y%m%dT%H%M%SZ}"])


def series_calendar(
    *, session: Session, series: Series, now: datetime, sip_domain: str, show_pin: bool
) -> bytes:
    """One VEVENT with the RRULE, EXDATEs for every start that will not take place, and one
    override (RECURRENCE-ID) per moved occurrence."""
    tz = ZoneInfo(series.tz)
    dial_line = dial_in_line(series, sip_domain=sip_domain, show_pin=show_pin)
    chair = session.get(Site, series.chair_site_id)
    chair_name = chair.name if chair else ""
    rule_text = _ended_rule(series)
    more = _more_description(session, series.id)
    calendar = _calendar(series.title, series.tz)
    occurrences = list(series.occurrences)
    taking_place = {o.recurrence_at for o in occurrences if o.status != OccurrenceStatus.cancelled}
    by_recurrence = {o.recurrence_at: o for o in occurrences}
    rule = Rule(
        rrule=rule_text,
        dtstart=series.dtstart,
        tz=series.tz,
        exdates=tuple(parse_exdate(e) for e in series.exdates),
        skip_holidays=series.skip_holidays,
    )

    master = Event()
    master.add("uid", series_uid(series.id))
    master.add("dtstamp", now)
    master.add("last-modified", series.updated_at)
    master.add("dtstart", series.dtstart.replace(tzinfo=tz))
    master.add("duration", timedelta(minutes=series.duration_min))
    master.add("rrule", vRecur.from_ical(rule_text))
    _describe(master, series, chair_name, dial_line, more)

    planned_until = series.materialized_until_at
    excluded: list[datetime] = []
    rule_starts: set[datetime] = set()
    for local_start in rule.local_starts():
        start_at = local_start.astimezone(UTC)
        if start_at > planned_until + EXDATE_LOOKAHEAD:
            break
        rule_starts.add(start_at)
        if start_at <= planned_until:
            if start_at not in taking_place:
                excluded.append(local_start)
        elif rule.excluded(local_start):
            excluded.append(local_start)
    if excluded:
        master.add("exdate", excluded)
    calendar.add_component(master)

    for recurrence_at, occurrence in sorted(by_recurrence.items()):
        if occurrence.status == OccurrenceStatus.cancelled:
            continue
        if recurrence_at in rule_starts and not occurrence.moved:
            continue
        event = Event()
        if recurrence_at in rule_starts:  # a moved occurrence of the rule
            event.add("uid", series_uid(series.id))
            event.add("recurrence-id", recurrence_at.astimezone(tz))
        else:  # left over from an earlier rule: its own event
            event.add("uid", occurrence_uid(series.id, recurrence_at))
        event.add("dtstamp", now)
        event.add("sequence", occurrence.sequence)
        event.add("dtstart", occurrence.start_at.astimezone(tz))
        event.add("dtend", occurrence.end_at.astimezone(tz))
        _describe(event, series, chair_name, dial_line, more)
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical()


def site_calendar(
    *, session: Session, site: Site, tz: str, now: datetime, sip_domain: str, show_pin: bool
) -> bytes:
    """Every occurrence the site is invited to, as its own event; cancelled ones say so."""
    zone = ZoneInfo(tz)
    calendar = _calendar(site.name, tz)
    rows = session.execute(
        select(Occurrence, Series, Site.name)
        .join(Booking, Booking.occurrence_id == Occurrence.id)
        .join(Series, Series.id == Occurrence.series_id)
        .join(Site, Site.id == Series.chair_site_id)
        .where(Booking.site_id == site.id, Occurrence.end_at > now - SITE_FEED_PAST)
        .order_by(Occurrence.start_at)
    ).all()
    more: dict[int, str] = {}
    for occurrence, series, chair_name in rows:
        event = Event()
        event.add("uid", occurrence_uid(series.id, occurrence.recurrence_at))
        event.add("dtstamp", now)
        event.add("sequence", occurrence.sequence)
        event.add("dtstart", occurrence.start_at.astimezone(zone))
        event.add("dtend", occurrence.end_at.astimezone(zone))
        cancelled = occurrence.status == OccurrenceStatus.cancelled
        event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        dial_line = dial_in_line(series, sip_domain=sip_domain, show_pin=show_pin)
        if series.id not in more:
            more[series.id] = _more_description(session, series.id)
        _describe(event, series, chair_name, dial_line, more[series.id])
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical()
