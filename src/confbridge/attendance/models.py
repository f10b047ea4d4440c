"""Attendance per occurrence and site (điểm danh), computed from SFU events, and corrections.

`attendance` is a materialised table: one row per invited site of an ended occurrence, computed
from the occurrence's `sfu_events` (see `attendance.service.refresh`), so that a year of reports
reads rows instead of replaying millions of events. `attendance_runs` says which occurrence was
computed for which start and end; `attendance_pending` lists occurrences that received events
since (filled by a database trigger on `sfu_events`, created in migration 0003), so late events
from a worker's spool are folded in by the server loop's next round (`confbridge.scheduler`),
or by a read that comes first.

Corrections never overwrite what was computed: each one is a row of `attendance_corrections`,
and `attendance.corrected_status` only points at the latest correction's status.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from confbridge.db import Base, UTCDateTime
from confbridge.timeutil import utcnow


class AttendanceStatus(StrEnum):
    present = "present"  # có mặt
    partial = "partial"  # tham dự một phần
    absent = "absent"  # vắng mặt


class Attendance(Base):
    """One invited site at one ended occurrence, as computed from the SFU's events."""

    __tablename__ = "attendance"

    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="RESTRICT"), primary_key=True
    )
    # As computed from events; never changed by a correction.
    status: Mapped[str] = mapped_column(String(10))
    # The latest correction's status, if any (the corrections themselves are kept apart).
    corrected_status: Mapped[str | None] = mapped_column(String(10))
    # Seconds connected within the scheduled [start, end) of the occurrence.
    connected_s: Mapped[int] = mapped_column(Integer)
    # Seconds of those with media flowing from or to the hall (what `status` is judged on).
    media_s: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    first_join_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # None when the site was still connected when the meeting ended.
    last_leave_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_leave_reason: Mapped[str | None] = mapped_column(String(100))
    reconnects: Mapped[int] = mapped_column(Integer)
    joined_late: Mapped[bool] = mapped_column(Boolean)
    left_early: Mapped[bool] = mapped_column(Boolean)
    rtt_median_ms: Mapped[float | None] = mapped_column(Float)
    loss_max: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_attendance_site_occurrence", "site_id", "occurrence_id"),)


class AttendanceRun(Base):
    """When an occurrence's attendance was computed, and for which scheduled times."""

    __tablename__ = "attendance_runs"

    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), primary_key=True
    )
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    records: Mapped[int] = mapped_column(Integer)


class AttendancePending(Base):
    """An occurrence that received join/leave/stats events since its attendance was computed.

    Written by the `sfu_events_attendance_pending` trigger; no foreign key, as events may name
    occurrences this database does not know.
    """

    __tablename__ = "attendance_pending"

    occurrence_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class AttendanceCorrection(Base):
    """A secretariat correction of one site's attendance (e.g. the hall joined by phone)."""

    __tablename__ = "attendance_corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_attendance_corrections_occurrence_site", "occurrence_id", "site_id"),
    )
