"""The sites invited to the occurrences that start soon: one query for the checks made before
a meeting (a hall's terminal online: `confbridge.monitor`; a room system answering OPTIONS:
`confbridge.sip.readiness`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.meetings.models import Booking, MeetingMode, Occurrence, OccurrenceStatus, Series
from confbridge.sites.models import Site


@dataclass(frozen=True)
class InvitedSite:
    """One invited site of an occurrence that starts within the lead time or is on now."""

    occurrence_id: int
    site_id: int
    site_name: str
    sip_uri: str | None  # a room system: its readiness is SIP OPTIONS, not a terminal
    start_at: datetime
    title: str
    tz: str
    mode: str

    @property
    def subject(self) -> str:
        """The alerts' subject for this site in this occurrence."""
        return f"occurrence:{self.occurrence_id}/site:{self.site_id}"

    @property
    def online(self) -> bool:
        """The meeting is held over the bridge (online or hybrid), not in person only."""
        return self.mode != MeetingMode.in_person.value


def invited_soon(*, session: Session, now: datetime, lead: timedelta) -> list[InvitedSite]:
    """Active bookings of scheduled occurrences that start by `now + lead` and end after
    `now`."""
    rows = session.execute(
        select(
            Booking.occurrence_id,
            Site.id,
            Site.name,
            Site.sip_uri,
            Occurrence.start_at,
            Series.title,
            Series.tz,
            Series.mode,
        )
        .join(Occurrence, Occurrence.id == Booking.occurrence_id)
        .join(Series, Series.id == Occurrence.series_id)
        .join(Site, Site.id == Booking.site_id)
        .where(
            Booking.active.is_(True),
            Occurrence.status == OccurrenceStatus.scheduled.value,
            Occurrence.start_at <= now + lead,
            Occurrence.end_at > now,
        )
        .order_by(Occurrence.start_at, Booking.occurrence_id, Site.id)
    ).all()
    return [InvitedSite(*row) for row in rows]
