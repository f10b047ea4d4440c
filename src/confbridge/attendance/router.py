"""Attendance of one occurrence, and its corrections, over HTTP."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response, status
from sqlalchemy.orm import Session

from confbridge.attendance import export as attendance_export
from confbridge.attendance import service as attendance_service
from confbridge.attendance.models import AttendanceCorrection, AttendanceStatus
from confbridge.attendance.schemas import (
    AttendanceRecord,
    AttendanceSummary,
    CorrectionCreate,
    CorrectionRead,
    OccurrenceAttendance,
    Presentation,
)
from confbridge.auth.dependencies import ReadScope, SecretariatScope
from confbridge.auth.scope import WHOLE, Scope
from confbridge.deps import SessionDep, SettingsDep
from confbridge.exports import (
    FILE_RESPONSES,
    ExportFormat,
    FormatQuery,
    file_response,
    parse_format,
    render,
)
from confbridge.meetings import access as meeting_access
from confbridge.pagination import IdPath
from confbridge.settings import Settings
from confbridge.sites.access import visible_site
from confbridge.timeutil import utcnow, zone

router = APIRouter(tags=["attendance"])


def correction_read(correction: AttendanceCorrection) -> CorrectionRead:
    return CorrectionRead(
        id=correction.id,
        occurrence_id=correction.occurrence_id,
        site_id=correction.site_id,
        status=AttendanceStatus(correction.status),
        reason=correction.reason,
        created_by=correction.created_by,
        created_at=correction.created_at,
    )


def record_read(item: attendance_service.SiteAttendance, duration_s: float) -> AttendanceRecord:
    figures = item.figures
    return AttendanceRecord(
        site_id=figures.site_id,
        site_name=item.site_name,
        unit_id=item.unit_id,
        unit_name=item.unit_name,
        is_chair=item.is_chair,
        guest=item.is_guest,
        status=item.status,
        computed_status=figures.status,
        connected_min=round(figures.connected_s / 60, 1),
        connected_ratio=round(figures.connected_s / duration_s, 4) if duration_s else 0.0,
        media_min=round(figures.media_s / 60, 1),
        media_ratio=round(figures.media_s / duration_s, 4) if duration_s else 0.0,
        first_join_at=figures.first_join_at,
        last_leave_at=figures.last_leave_at,
        last_leave_reason=figures.last_leave_reason,
        reconnects=figures.reconnects,
        joined_late=figures.joined_late,
        left_early=figures.left_early,
        rtt_median_ms=figures.rtt_median_ms,
        loss_max=figures.loss_max,
        correction=correction_read(item.correction) if item.correction else None,
    )


def occurrence_attendance(
    *,
    session: Session,
    occurrence_id: int,
    settings: Settings,
    now: datetime,
    scope: Scope = WHOLE,
) -> OccurrenceAttendance:
    """The attendance of every invited site of one occurrence (those of `scope`), with a
    summary of them."""
    occurrence, items = attendance_service.for_occurrence(
        session=session, occurrence_id=occurrence_id, rule=settings.reports.attendance, now=now
    )
    if not scope.whole:
        # a meeting of several units shows each its own sites (SIP guests: whole scopes only)
        items = [i for i in items if scope.covers(i.unit_id)]
    duration_s = (occurrence.end_at - occurrence.start_at).total_seconds()
    records = [record_read(item, duration_s) for item in items]
    invited = [r for r in records if not r.guest]
    series = occurrence.series

    def count(wanted: AttendanceStatus) -> int:
        return sum(r.status is wanted for r in invited)

    return OccurrenceAttendance(
        occurrence_id=occurrence.id,
        series_id=series.id,
        title=series.title,
        kind=series.kind,
        mode=series.mode,
        status=occurrence.status,
        start_at=occurrence.start_at,
        end_at=occurrence.end_at,
        local_date=occurrence.start_at.astimezone(zone(series.tz)).date(),
        duration_min=round(duration_s / 60),
        ended=occurrence.end_at <= now,
        summary=AttendanceSummary(
            invited=len(invited),
            present=count(AttendanceStatus.present),
            partial=count(AttendanceStatus.partial),
            absent=count(AttendanceStatus.absent),
            joined_late=sum(r.joined_late for r in invited),
            left_early=sum(r.left_early for r in invited),
            corrected=sum(r.correction is not None for r in invited),
            guests=len(records) - len(invited),
        ),
        records=records,
        presentations=[
            Presentation(**vars(p))
            for p in attendance_service.presentations(session=session, occurrence_id=occurrence.id)
        ],
    )


@router.get(
    "/occurrences/{occurrence_id}/attendance",
    response_model=OccurrenceAttendance,
    responses=FILE_RESPONSES,
)
def get_attendance(
    occurrence_id: IdPath,
    reader: ReadScope,
    session: SessionDep,
    settings: SettingsDep,
    format_: FormatQuery = "json",
) -> OccurrenceAttendance | Response:
    """Who attended: every invited site of your units, from the SFU's events, with
    corrections applied."""
    export_format = parse_format(format_)
    now = utcnow()
    meeting_access.visible_occurrence(
        session=session, occurrence_id=occurrence_id, scope=reader.scope
    )
    result = occurrence_attendance(
        session=session,
        occurrence_id=occurrence_id,
        settings=settings,
        now=now,
        scope=reader.scope,
    )
    session.commit()  # attendance computed on first read is kept
    if export_format is ExportFormat.json:
        return result
    document = attendance_export.occurrence_attendance_document(
        result, tz=settings.meetings.default_tz, generated_at=now
    )
    return file_response(*render(document, export_format.value))


@router.post(
    "/occurrences/{occurrence_id}/attendance/{site_id}/corrections",
    response_model=AttendanceRecord,
    status_code=status.HTTP_201_CREATED,
)
def correct_attendance(
    occurrence_id: IdPath,
    site_id: IdPath,
    body: CorrectionCreate,
    editor: SecretariatScope,
    reader: ReadScope,
    session: SessionDep,
    settings: SettingsDep,
) -> AttendanceRecord:
    """Correct the attendance of one of your units' sites with a reason; the computed
    figures stay beside it."""
    user = editor.user
    meeting_access.visible_occurrence(
        session=session, occurrence_id=occurrence_id, scope=reader.scope
    )
    visible_site(session=session, site_id=site_id, scope=editor.scope)
    now = utcnow()
    attendance_service.correct(
        session=session,
        occurrence_id=occurrence_id,
        site_id=site_id,
        status=body.status,
        reason=body.reason,
        actor=f"user:{user.username}",
        rule=settings.reports.attendance,
        now=now,
    )
    session.commit()
    result = occurrence_attendance(
        session=session, occurrence_id=occurrence_id, settings=settings, now=now
    )
    return next(r for r in result.records if r.site_id == site_id)


@router.get(
    "/occurrences/{occurrence_id}/attendance/{site_id}/corrections",
    response_model=list[CorrectionRead],
)
def list_corrections(
    occurrence_id: IdPath, site_id: IdPath, reader: ReadScope, session: SessionDep
) -> list[CorrectionRead]:
    """Every correction of one site's attendance, oldest first."""
    meeting_access.visible_occurrence(
        session=session, occurrence_id=occurrence_id, scope=reader.scope
    )
    visible_site(session=session, site_id=site_id, scope=reader.scope)
    corrections = attendance_service.list_corrections(
        session=session, occurrence_id=occurrence_id, site_id=site_id
    )
    return [correction_read(c) for c in corrections]
