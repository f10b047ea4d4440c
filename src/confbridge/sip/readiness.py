"""Before a meeting, the room systems it will call must answer: from
`terminals.readiness_lead_min` before the start, each invited site with a `sip_uri` is sent
OPTIONS every minute; one that does not answer gets a `room_system_unreachable` alert (as a
hall without a terminal online gets `terminal_offline`), resolved when it answers again or
the meeting ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from confbridge.alerts import service as alert_service
from confbridge.alerts.service import AlertIn, AlertKind, Severity
from confbridge.db import Database
from confbridge.meetings.invited import InvitedSite, invited_soon
from confbridge.settings import Settings
from confbridge.timeutil import utcnow, zone

log = logging.getLogger(__name__)
CHECK_INTERVAL_S = 60.0
ANSWER_TIMEOUT_S = 8.0


@dataclass(frozen=True)
class Expected:
    """An invited room system of an occurrence that starts soon."""

    invited: InvitedSite
    uri: str

    @property
    def subject(self) -> str:
        return self.invited.subject


def expected_room_systems(database: Database, settings: Settings, now: datetime) -> list[Expected]:
    """The invited sites with a `sip_uri`, from `terminals.readiness_lead_min` before the
    start to the end (the same sites and window as the terminals' check in the monitor)."""
    lead = timedelta(minutes=settings.terminals.readiness_lead_min)
    with database.session() as session:
        invited = invited_soon(session=session, now=now, lead=lead)
    return [Expected(item, item.sip_uri) for item in invited if item.sip_uri is not None]


def record(
    database: Database, *, expected: list[Expected], answered: set[str], now: datetime
) -> None:
    """Raise an alert for each expected room system that did not answer before the start;
    resolve those that answered, and those whose meeting is over."""
    with database.session() as session:
        open_subjects = alert_service.open_subjects(
            session=session, kind=AlertKind.room_system_unreachable
        )
        current = set()
        for item in expected:
            current.add(item.subject)
            if item.uri in answered:
                if item.subject in open_subjects:
                    alert_service.resolve(
                        session=session,
                        kind=AlertKind.room_system_unreachable,
                        subject=item.subject,
                        now=now,
                    )
            elif item.subject not in open_subjects and now < item.invited.start_at:
                alert_service.raise_(
                    session=session, alert_in=_alert(item, now), now=now, deliver=True
                )
        for subject in open_subjects - current:
            alert_service.resolve(
                session=session, kind=AlertKind.room_system_unreachable, subject=subject, now=now
            )
        session.commit()


def _alert(item: Expected, now: datetime) -> AlertIn:
    invited = item.invited
    local_start = invited.start_at.astimezone(zone(invited.tz))
    minutes = max(0, round((invited.start_at - now).total_seconds() / 60))
    return AlertIn(
        kind=AlertKind.room_system_unreachable,
        severity=Severity.warning,
        subject=item.subject,
        occurrence_id=invited.occurrence_id,
        site_id=invited.site_id,
        message=f"Thiết bị phòng họp SIP của điểm cầu {invited.site_name} ({item.uri}) không "
        f'trả lời; cuộc họp "{invited.title}" bắt đầu lúc {local_start:%H:%M %d/%m/%Y} '
        f"(còn {minutes} phút)",
        message_en=f"The SIP room system of site {invited.site_name} ({item.uri}) does not "
        f'answer OPTIONS; "{invited.title}" starts at {local_start:%H:%M %d/%m/%Y} '
        f"({invited.tz}), in {minutes} min",
        details={"sip_uri": item.uri, "starts_at": invited.start_at.isoformat()},
    )


async def check_once(
    database: Database, settings: Settings, ping: Callable[[str], Awaitable[bool]]
) -> list[Expected]:
    """Ping every expected room system once (all at the same time) and record the answers."""
    now = utcnow()
    expected = await asyncio.to_thread(expected_room_systems, database, settings, now)
    uris = sorted({item.uri for item in expected})
    results = await asyncio.gather(*(ping(uri) for uri in uris))
    answered = {uri for uri, ok in zip(uris, results, strict=True) if ok}
    await asyncio.to_thread(record, database, expected=expected, answered=answered, now=now)
    return expected


async def keep_checking(
    database: Database, settings: Settings, ping: Callable[[str], Awaitable[bool]]
) -> None:
    while True:
        try:
            await check_once(database, settings, ping)
        except Exception:
            log.exception("checking the room systems failed")
        await asyncio.sleep(CHECK_INTERVAL_S)
