"""Occurrences to place rooms for."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Occurrence
from confbridge.settings import MeetingSettings
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow


def make_occurrences(session: Session, sites: dict[str, Site], *, count: int) -> list[Occurrence]:
    """`count` daily occurrences of a briefing chaired by `hq`, the first one on now."""
    start = (utcnow() - timedelta(minutes=1)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    series = meeting_service.create(
        session=session,
        series_in={
            "title": "Giao ban",
            "kind": "giao_ban",
            "mode": "online",
            "rrule": f"FREQ=DAILY;COUNT={count}",
            "dtstart": start.replace(tzinfo=None).isoformat(timespec="minutes"),
            "duration_min": 60,
            "chair_site_id": sites["hq"].id,
            "site_ids": [sites["p1"].id, sites["p2"].id],
            "skip_holidays": False,
        },
        settings=MeetingSettings(),
        now=utcnow(),
    )
    session.commit()
    return list(series.occurrences)
