"""Attendance API shapes."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from confbridge.attendance.models import AttendanceStatus
from confbridge.meetings.models import MeetingKind, MeetingMode, OccurrenceStatus


class CorrectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: AttendanceStatus
    reason: str = Field(
        min_length=3, max_length=500, examples=["Điểm cầu tham dự qua điện thoại do mất mạng"]
    )


class CorrectionRead(BaseModel):
    id: int
    occurrence_id: int
    site_id: int
    status: AttendanceStatus
    reason: str
    created_by: str
    created_at: datetime


class AttendanceRecord(BaseModel):
    site_id: int
    site_name: str
    unit_id: int
    unit_name: str
    is_chair: bool
    guest: bool = Field(
        default=False, description="a SIP caller that was not invited: not counted as invited"
    )
    status: AttendanceStatus = Field(description="after the latest correction, if any")
    computed_status: AttendanceStatus = Field(description="as computed from the SFU's events")
    connected_min: float
    connected_ratio: float = Field(description="share of the scheduled meeting, 0..1")
    media_min: float = Field(description="minutes of those with media from or to the hall")
    media_ratio: float = Field(description="share of the scheduled meeting with media, 0..1")
    first_join_at: datetime | None
    last_leave_at: datetime | None = Field(description="null: still connected at the end")
    last_leave_reason: str | None
    reconnects: int
    joined_late: bool
    left_early: bool
    rtt_median_ms: float | None
    loss_max: float | None
    correction: CorrectionRead | None = None


class AttendanceSummary(BaseModel):
    """Counts over the invited sites; SIP guests are counted apart."""

    invited: int
    present: int
    partial: int
    absent: int
    joined_late: int
    left_early: int
    corrected: int
    guests: int = Field(default=0, description="SIP callers that joined without an invitation")


class Presentation(BaseModel):
    """One site's content sharing (trình chiếu) in the meeting, from the SFU's events."""

    site_id: int
    site_name: str | None = Field(description="null: a site no longer in the directory")
    started_at: datetime
    ended_at: datetime | None = Field(description="null: still presenting")
    end_reason: str | None = Field(
        default=None, description="e.g. 'deleted' (the hall stopped), 'stopped by user:...'"
    )


class OccurrenceAttendance(BaseModel):
    occurrence_id: int
    series_id: int
    title: str
    kind: MeetingKind
    mode: MeetingMode
    status: OccurrenceStatus
    start_at: datetime
    end_at: datetime
    local_date: date = Field(description="the start's date in the series' time zone")
    duration_min: int
    ended: bool = Field(description="false: figures so far, while the meeting runs or before")
    summary: AttendanceSummary
    records: list[AttendanceRecord]
    presentations: list[Presentation] = Field(
        default_factory=list, description="who presented content, and when, oldest first"
    )
