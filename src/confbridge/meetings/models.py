"""Meeting series, their occurrences and the per-site bookings that conflicts are checked on."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from confbridge.db import Base, UTCDateTime
from confbridge.sites.models import Site, Unit
from confbridge.timeutil import utcnow


class MeetingKind(StrEnum):
    giao_ban = "giao_ban"
    so_ket = "so_ket"
    tong_ket = "tong_ket"
    tap_huan = "tap_huan"
    chuyen_de = "chuyen_de"
    khac = "khac"


class MeetingMode(StrEnum):
    online = "online"
    in_person = "in_person"
    hybrid = "hybrid"


class RecordPolicy(StrEnum):
    """Whether a series' meetings are recorded: from their start, when the chair asks, never."""

    always = "always"
    on_demand = "on_demand"
    never = "never"


class OccurrenceStatus(StrEnum):
    scheduled = "scheduled"
    cancelled = "cancelled"


class UnplannedStatus(StrEnum):
    pending = "pending"  # waiting for the secretariat: move it, or accept the skip
    skipped = "skipped"  # the secretariat accepted that it does not take place


series_sites = Table(
    "series_sites",
    Base.metadata,
    Column("series_id", ForeignKey("series.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("sites.id", ondelete="RESTRICT"), primary_key=True),
)

series_units = Table(
    "series_units",
    Base.metadata,
    Column("series_id", ForeignKey("series.id", ondelete="CASCADE"), primary_key=True),
    Column("unit_id", ForeignKey("units.id", ondelete="RESTRICT"), primary_key=True),
)


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(20))
    rrule: Mapped[str] = mapped_column(Text)
    # Wall-clock time in `tz`, as RFC 5545 DTSTART;TZID=... (section 3.3.5, form #3).
    dtstart: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    tz: Mapped[str] = mapped_column(String(64))
    duration_min: Mapped[int] = mapped_column(Integer)
    chair_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    skip_holidays: Mapped[bool] = mapped_column(Boolean, default=False)
    # ISO strings: a date ("2026-02-16") excludes that day, a local date-time one occurrence.
    exdates: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Key of the series in a schedule file, so that re-applying the file updates in place.
    source_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # Occurrences exist up to here (UTC); open-ended rules are extended as time passes.
    materialized_until_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # What a room system dials (`sip:<meeting_number>@<sip.domain>`) and the PIN it then keys
    # in; both are set at creation (`meetings.dial_numbers`). The PIN is never logged.
    meeting_number: Mapped[str] = mapped_column(String(9))
    pin: Mapped[str] = mapped_column(String(8))
    # The bridge above (e.g. the Government's) that each occurrence dials at its start.
    upstream_sip_uri: Mapped[str | None] = mapped_column(String(300))
    # `RecordPolicy`: may the chair record its meetings (sfu.recording), must they be.
    record: Mapped[str] = mapped_column(
        String(20), default=RecordPolicy.on_demand.value, server_default="on_demand"
    )
    # Recordings are deleted this many days after they end (`scheduler`); None: kept.
    recording_retention_days: Mapped[int | None] = mapped_column(Integer)
    # Set when a series with past occurrences is deleted: history stays, nothing new is planned.
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    chair_site: Mapped[Site] = relationship()
    sites: Mapped[list[Site]] = relationship(secondary=series_sites, order_by="Site.id")
    units: Mapped[list[Unit]] = relationship(secondary=series_units, order_by="Unit.id")
    occurrences: Mapped[list[Occurrence]] = relationship(
        back_populates="series",
        order_by="Occurrence.start_at",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    # A unique index, not a constraint: SQLite adds one without copying the table (a copy of
    # `series` would drop the original, and its occurrences with it, by ON DELETE CASCADE).
    __table_args__ = (Index("ix_series_meeting_number", "meeting_number", unique=True),)


class Occurrence(Base):
    __tablename__ = "occurrences"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"))
    # The start the rule gave (RFC 5545 RECURRENCE-ID); stays put when the occurrence is moved.
    recurrence_at: Mapped[datetime] = mapped_column(UTCDateTime())
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), default=OccurrenceStatus.scheduled.value)
    # RFC 5545 SEQUENCE: bumped on every move or cancellation so calendar clients update.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    # Overrides the series' upstream bridge for this occurrence.
    upstream_sip_uri: Mapped[str | None] = mapped_column(String(300))
    # When the meeting was ended (by the chair, the secretariat, or by itself after running
    # over): the room closes and nobody joins again. None: not ended (yet).
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    series: Mapped[Series] = relationship(back_populates="occurrences")
    bookings: Mapped[list[Booking]] = relationship(
        back_populates="occurrence",
        cascade="all, delete-orphan",
        passive_deletes=True,  # the database deletes them (a trigger, see `Booking`)
        primaryjoin="Occurrence.id == foreign(Booking.occurrence_id)",
    )

    @property
    def moved(self) -> bool:
        return self.start_at != self.recurrence_at

    __table_args__ = (
        UniqueConstraint("series_id", "recurrence_at", name="uq_occurrences_series_recurrence"),
        Index("ix_occurrences_start_at", "start_at"),
    )


class Booking(Base):
    """One site invited to one occurrence; times are copied so conflicts need one index.

    `occurrence_id` and `site_id` are references without FOREIGN KEY constraints: a national
    series writes 171,105 rows at once, and PostgreSQL checked a foreign key with a trigger
    call per row and key (about 1 s of a 1.5 s insert). Triggers made by migration 0013 keep
    the same rules once per statement: every referenced occurrence and site must exist (each
    is share-locked once, as a foreign key check locks it), deleting occurrences deletes their
    bookings (ON DELETE CASCADE), and a booked site cannot be deleted (RESTRICT).
    """

    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # False once the occurrence is cancelled: the slot is free again.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_chair: Mapped[bool] = mapped_column(Boolean, default=False)

    occurrence: Mapped[Occurrence] = relationship(
        back_populates="bookings", primaryjoin="Occurrence.id == foreign(Booking.occurrence_id)"
    )

    __table_args__ = (
        UniqueConstraint("occurrence_id", "site_id", name="uq_bookings_occurrence_site"),
        Index("ix_bookings_site_start", "site_id", "start_at"),
    )


# Without foreign keys, say what the constraints' triggers rely on: occurrences and sites are
# created before bookings and emptied after them (`MetaData.sorted_tables`).
Booking.__table__.add_is_dependent_on(Occurrence.__table__)
Booking.__table__.add_is_dependent_on(Site.__table__)


class BookingLock(Base):
    """A single row that every booking transaction updates first.

    Taking its row lock serialises conflict check + insert on PostgreSQL, and on SQLite the
    update takes the database write lock before anything is read.
    """

    __tablename__ = "booking_lock"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class UnplannedOccurrence(Base):
    """A start the rule gives that the planner could not book (a clash), kept so that nothing
    vanishes: listed on the series, alerted on, until it is moved (then it is an occurrence)
    or its skip is accepted (then it stays here, `skipped`)."""

    __tablename__ = "unplanned_occurrences"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"))
    # The start the rule gave (as Occurrence.recurrence_at).
    recurrence_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(20))
    # The bookings it clashed with, as the 409 of a booking names them.
    conflicts: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default=UnplannedStatus.pending.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(150))

    __table_args__ = (
        UniqueConstraint("series_id", "recurrence_at", name="uq_unplanned_series_recurrence"),
    )
