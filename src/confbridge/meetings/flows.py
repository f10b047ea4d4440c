"""Planning ahead, and the alerts for the meetings it could not place (meetings + alerts);
retiring a site no meeting needs any more (meetings + sites)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from confbridge.alerts import service as alert_service
from confbridge.alerts.service import AlertIn, AlertKind, Severity
from confbridge.errors import Conflict
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings import unplanned
from confbridge.meetings.models import Series, UnplannedOccurrence
from confbridge.settings import Settings
from confbridge.sites import service as site_service
from confbridge.sites.models import Site


def unplanned_subject(item: UnplannedOccurrence) -> str:
    """The alert's subject: one alert per unplanned meeting."""
    return f"series:{item.series_id}:{item.recurrence_at:%Y%m%dT%H%M%SZ}"


def _alert_of(item: UnplannedOccurrence, series: Series) -> AlertIn:
    day = unplanned.local_date(item, series)
    clashes = item.conflicts or []
    others = sorted({str(c.get("series_title", "")) for c in clashes if c.get("series_title")})
    with_vi = f" (trùng với: {', '.join(others)[:200]})" if others else ""
    with_en = f" (it clashes with: {', '.join(others)[:200]})" if others else ""
    return AlertIn(
        kind=AlertKind.occurrence_unplanned,
        severity=Severity.warning,
        subject=unplanned_subject(item),
        # the chair's site: the alert belongs to the scope of the unit that books the meeting
        site_id=series.chair_site_id,
        message=f"Không xếp được lịch cuộc họp “{series.title[:150]}” ngày "
        f"{day:%d/%m/%Y}{with_vi}: hãy dời sang giờ khác hoặc xác nhận bỏ qua",
        message_en=f"The meeting “{series.title[:150]}” of {day:%d/%m/%Y} could not be "
        f"planned{with_en}: move it or accept the skip",
        details={
            "series_id": series.id,
            "date": day.isoformat(),
            "start_at": item.recurrence_at.isoformat(),
            "reason": item.reason,
            "conflicts": clashes[:10],
        },
    )


def sync_unplanned_alerts(*, session: Session, deliver: bool, now: datetime) -> None:
    """An open `occurrence_unplanned` alert for each unplanned meeting still waiting, and none
    for the others (moved, skipped, or no longer given by the rule): idempotent."""
    waiting = {
        unplanned_subject(item): (item, series)
        for item, series in unplanned.pending_unplanned(session=session)
    }
    open_now = alert_service.open_subjects(session=session, kind=AlertKind.occurrence_unplanned)
    for subject in open_now - waiting.keys():
        alert_service.resolve(
            session=session, kind=AlertKind.occurrence_unplanned, subject=subject, now=now
        )
    for subject, (item, series) in waiting.items():
        if subject not in open_now:
            alert_service.raise_(
                session=session, alert_in=_alert_of(item, series), now=now, deliver=deliver
            )


def plan_ahead(
    *, session: Session, settings: Settings, now: datetime
) -> list[unplanned.ExtensionResult]:
    """Plan open-ended series up to the horizon; alert on what could not be placed."""
    results = unplanned.extend_horizons(session=session, settings=settings.meetings, now=now)
    sync_unplanned_alerts(session=session, deliver=bool(settings.alerts.webhook_url), now=now)
    return results


def archive_site(*, session: Session, site: Site) -> None:
    """Retire a site (its terminals revoked); refused while it chairs a series, is invited to
    one, or is booked for a coming meeting."""
    busy = occurrence_service.site_commitments(session=session, site_id=site.id)
    if busy:
        raise Conflict(
            f"site {site.id} is still used by {len(busy)} series; remove it from them first",
            series=busy,
        )
    site_service.mark_archived(session=session, site=site)
