"""Dial-in: which meeting a room system reaches by its meeting number, and as which site.

The SIP gateway asks this when a call comes in (`find_dial_in`), then, once the caller has
keyed in the PIN, which invited site the caller is (`match_site`); a caller that is none of
them joins as a guest (`sites.service.sip_guest_site`). Nothing here speaks SIP or HTTP.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.errors import DomainError
from confbridge.meetings.dial_numbers import series_with_number
from confbridge.meetings.models import Booking, Occurrence, OccurrenceStatus, Series
from confbridge.sip_uri import MEETING_NUMBER_RE, address_key
from confbridge.sites.models import Site
from confbridge.timeutil import zone

RefusalReason = Literal["unknown", "not_open", "cancelled", "ended"]


class DialInRefused(DomainError):
    """A call that reaches no meeting now; `reason` is for the gateway (which announcement to
    play, which SIP answer to give), the message for people (Vietnamese, then English)."""

    def __init__(
        self, message: str, *, reason: RefusalReason, opens_at: datetime | None = None
    ) -> None:
        extra = {"reason": reason}
        if opens_at is not None:
            extra["opens_at"] = opens_at.isoformat()
        super().__init__(message, **extra)
        self.reason: RefusalReason = reason
        self.opens_at = opens_at
        self.status_code = 404 if reason == "unknown" else 409


@dataclass(frozen=True)
class DialIn:
    """The meeting a number reaches now: its occurrence, series and invited sites."""

    occurrence: Occurrence
    series: Series
    sites: list[Site]  # invited, chair included; each with its `sip_uri`, if any
    chair_site_id: int

    @property
    def upstream_sip_uri(self) -> str | None:
        """The bridge above for this occurrence: its own, else the series'."""
        return self.occurrence.upstream_sip_uri or self.series.upstream_sip_uri

    def pin_matches(self, pin: str) -> bool:
        """Whether `pin` is the meeting's PIN (in constant time)."""
        return hmac.compare_digest(pin.encode(), self.series.pin.encode())


def _opens_text(opens_at: datetime, tz: str, now: datetime) -> tuple[str, str]:
    local = opens_at.astimezone(zone(tz))
    day = f"{local:%d/%m}" if local.year == now.astimezone(zone(tz)).year else f"{local:%d/%m/%Y}"
    return f"{local:%H:%M}", day


def _open_occurrences(
    session: Session, series: Series, now: datetime, early: timedelta, overrun: timedelta
) -> list[Occurrence]:
    query = (
        select(Occurrence)
        .where(
            Occurrence.series_id == series.id,
            Occurrence.start_at <= now + early,
            Occurrence.end_at > now - overrun,  # a meeting running over is still open
            Occurrence.ended_at.is_(None),
        )
        .order_by(Occurrence.start_at, Occurrence.id)
    )
    return list(session.scalars(query))


def _next_occurrence(session: Session, series: Series, now: datetime) -> Occurrence | None:
    query = (
        select(Occurrence)
        .where(
            Occurrence.series_id == series.id,
            Occurrence.start_at > now,
            Occurrence.status == OccurrenceStatus.scheduled.value,
        )
        .order_by(Occurrence.start_at)
        .limit(1)
    )
    return session.scalar(query)


def _invited_sites(session: Session, occurrence_id: int) -> list[Site]:
    query = (
        select(Site)
        .join(Booking, Booking.site_id == Site.id)
        .where(Booking.occurrence_id == occurrence_id)
        .order_by(Booking.is_chair.desc(), Site.id)
    )
    return list(session.scalars(query))


def find_dial_in(
    session: Session,
    *,
    meeting_number: str,
    now: datetime,
    early_min: int,
    overrun_grace_min: int = 0,
) -> DialIn:
    """The occurrence of the series numbered `meeting_number` that is open at `now` (from
    `early_min` minutes before its start until it ends: ended, or its end plus
    `overrun_grace_min` while it runs over), or `DialInRefused` saying why not."""
    number = meeting_number.strip()
    series = series_with_number(session, number) if MEETING_NUMBER_RE.match(number) else None
    if series is None:
        raise DialInRefused(
            f"Không có cuộc họp nào mang số {number[:20]} / no meeting has the number "
            f"{number[:20]}",
            reason="unknown",
        )
    early = timedelta(minutes=early_min)
    overrun = timedelta(minutes=overrun_grace_min)
    open_now = _open_occurrences(session, series, now, early, overrun)
    scheduled = [o for o in open_now if o.status == OccurrenceStatus.scheduled.value]
    if scheduled:
        occurrence = scheduled[0]
        return DialIn(
            occurrence=occurrence,
            series=series,
            sites=_invited_sites(session, occurrence.id),
            chair_site_id=series.chair_site_id,
        )
    if open_now:
        raise DialInRefused(
            f"Cuộc họp '{series.title}' giờ này đã bị hủy / this meeting has been cancelled",
            reason="cancelled",
        )
    following = _next_occurrence(session, series, now)
    if following is None or (series.ended_at is not None and series.ended_at <= now):
        raise DialInRefused(
            f"Chuỗi cuộc họp '{series.title}' đã kết thúc / the meeting series has ended",
            reason="ended",
        )
    opens_at = following.start_at - early
    time_text, day_text = _opens_text(opens_at, series.tz, now)
    raise DialInRefused(
        f"Cuộc họp mở lúc {time_text} ngày {day_text} / the meeting opens at {time_text} "
        f"on {day_text}",
        reason="not_open",
        opens_at=opens_at,
    )


def match_site(dial_in: DialIn, caller_uri: str) -> Site | None:
    """The invited site whose room system is `caller_uri` (display name, parameters, host case
    and the default port ignored), or None: the caller is a guest."""
    key = address_key(caller_uri)
    if key is None:
        return None
    for site in dial_in.sites:
        if site.sip_uri is not None and address_key(site.sip_uri) == key:
            return site
    return None
