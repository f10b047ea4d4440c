"""A meeting with its halls' terminal tokens, for the meeting record's tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update

from confbridge.db import Database
from confbridge.meetings.models import Occurrence
from confbridge.settings import Settings
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from tests.support.factories import open_occurrence


@dataclass
class Meeting:
    """An occurrence and the Authorization headers of terminals: the chair's (hq), an invited
    site's (p1) and a site that is not invited (p2)."""

    occurrence_id: int
    series_id: int
    hq: dict[str, str]
    p1: dict[str, str]
    outsider: dict[str, str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def open_meeting(database: Database, settings: Settings, sites: dict[str, Site]) -> Meeting:
    """A briefing on now chaired by hq, inviting p1 (not p2)."""
    occurrence_id, tokens = open_occurrence(database, settings, sites, invited=("p1",))
    with database.session() as session:
        site = session.get(Site, sites["p2"].id)
        occurrence = session.get(Occurrence, occurrence_id)
        assert site is not None and occurrence is not None
        _terminal, outsider = terminal_service.create_with_token(session=session, site=site)
        series_id = occurrence.series_id
        session.commit()
    return Meeting(
        occurrence_id, series_id, bearer(tokens["hq"]), bearer(tokens["p1"]), bearer(outsider)
    )


def end_past_retention(database: Database, occurrence_id: int, retention_days: int) -> None:
    """Move the occurrence back in time so that it ended `retention_days` + 1 days ago."""
    long_ago = utcnow() - timedelta(days=retention_days + 1)
    with database.session() as session:
        session.execute(
            update(Occurrence)
            .where(Occurrence.id == occurrence_id)
            .values(start_at=long_ago - timedelta(hours=1), end_at=long_ago)
        )
        session.commit()
