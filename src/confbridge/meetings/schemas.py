"""Meetings API shapes."""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from confbridge.meetings.models import (
    MeetingKind,
    MeetingMode,
    OccurrenceStatus,
    RecordPolicy,
    UnplannedStatus,
)
from confbridge.pagination import Id
from confbridge.sip_uri import MeetingNumber, Pin, SipUri
from confbridge.text import SingleLine

Title = Field(min_length=1, max_length=300)
MAX_INVITED = 20_000
# Meetings are planned for this century and the next; anything else is a typo.
MIN_YEAR, MAX_YEAR = 2000, 2199


def _text_only(value: Any) -> Any:
    """Refuse numbers (pydantic would read them as Unix timestamps)."""
    if not isinstance(value, str | date):
        raise ValueError("give an ISO date or date-time string, e.g. 2026-01-05T07:30")
    return value


def _with_time(value: Any) -> Any:
    if isinstance(value, str) and "T" not in value and " " not in value.strip():
        raise ValueError("needs a time of day, e.g. 2026-01-05T07:30")
    return _text_only(value)


def _plausible_year(value: date) -> date:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"year must be between {MIN_YEAR} and {MAX_YEAR}")
    return value


StartTime = Annotated[datetime, BeforeValidator(_with_time), AfterValidator(_plausible_year)]
ExDate = Annotated[date | datetime, BeforeValidator(_text_only), AfterValidator(_plausible_year)]
# How long a series' recordings are kept after they end (up to ten years); None: kept.
RetentionDays = Annotated[
    int | None,
    Field(default=None, ge=1, le=3660, description="days a recording is kept; null: kept"),
]


class SeriesBase(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeriesCreate(SeriesBase):
    title: SingleLine = Title
    kind: MeetingKind
    mode: MeetingMode = MeetingMode.online
    rrule: str = Field(max_length=500, examples=["FREQ=WEEKLY;BYDAY=MO"])
    dtstart: StartTime = Field(
        description="first start, wall-clock time in `tz` (an offset, if given, is converted)"
    )
    tz: str | None = Field(default=None, max_length=64, description="IANA zone")
    duration_min: int = Field(ge=1, le=24 * 60)
    chair_site_id: Id
    site_ids: list[Id] = Field(default_factory=list, max_length=MAX_INVITED)
    unit_ids: list[Id] = Field(default_factory=list, max_length=MAX_INVITED)
    exdates: list[ExDate] = Field(default_factory=list, max_length=1000)
    skip_holidays: bool = True
    meeting_number: MeetingNumber | None = Field(
        default=None,
        description="what room systems dial (6-9 digits, not starting with 0); "
        "left out: a free 7-digit number",
        examples=["2468135"],
    )
    pin: Pin | None = Field(
        default=None, description="4-8 digits keyed in after dialling; left out: 6 random digits"
    )
    upstream_sip_uri: SipUri | None = Field(
        default=None,
        max_length=300,
        description="the bridge above (e.g. the Government's) each occurrence dials at its start",
    )
    record_past: bool = Field(
        default=False,
        description="record meetings that already took place (ended before now); without it "
        "a booking with such meetings is refused (422)",
    )
    record: RecordPolicy = Field(
        default=RecordPolicy.on_demand,
        description="always: recorded from the first hall that joins; on_demand: the chair "
        "starts and stops recording; never: a start is refused",
    )


class SeriesUpdate(SeriesBase):
    title: SingleLine | None = Field(default=None, min_length=1, max_length=300)
    kind: MeetingKind | None = None
    mode: MeetingMode | None = None
    rrule: str | None = Field(default=None, max_length=500)
    dtstart: StartTime | None = None
    tz: str | None = Field(default=None, max_length=64)
    duration_min: int | None = Field(default=None, ge=1, le=24 * 60)
    chair_site_id: Id | None = None
    site_ids: list[Id] | None = Field(default=None, max_length=MAX_INVITED)
    unit_ids: list[Id] | None = Field(default=None, max_length=MAX_INVITED)
    exdates: list[ExDate] | None = Field(default=None, max_length=1000)
    skip_holidays: bool | None = None
    meeting_number: MeetingNumber | None = None
    pin: Pin | None = None
    upstream_sip_uri: SipUri | None = Field(
        default=None, max_length=300, description="null: no bridge above"
    )
    record: RecordPolicy | None = None
    recording_retention_days: RetentionDays = None


class UnplannedRead(BaseModel):
    """A meeting of the series the planner could not book (a clash)."""

    date: dt.date = Field(description="the date the rule gave, in the series' time zone")
    start_at: datetime = Field(description="the start the rule gave")
    reason: str = Field(description="clash: another meeting holds one of its sites then")
    conflicts: list[dict[str, Any]] = Field(description="the bookings it clashes with")
    status: UnplannedStatus = Field(
        description="pending: to be moved or skipped; skipped: accepted that it does not take place"
    )
    resolved_at: datetime | None = None
    resolved_by: str | None = None


class SeriesRead(BaseModel):
    id: int
    title: str
    kind: MeetingKind
    mode: MeetingMode
    rrule: str
    dtstart: datetime
    tz: str
    duration_min: int
    chair_site_id: int
    site_ids: list[int]
    unit_ids: list[int]
    exdates: list[str]
    skip_holidays: bool
    materialized_until_at: datetime
    ended_at: datetime | None
    occurrence_count: int
    meeting_number: str = Field(description="what room systems dial")
    pin: str | None = Field(description="keyed in after dialling; null: not shown to this user")
    sip_address: str = Field(description="sip:<meeting_number>@<sip.domain>")
    upstream_sip_uri: str | None = Field(description="the bridge above, dialled at each start")
    record: RecordPolicy = Field(description="whether its meetings may be recorded")
    recording_retention_days: int | None = Field(
        default=None, description="recordings are deleted this long after they end; null: kept"
    )
    unplanned: list[UnplannedRead] = Field(
        default_factory=list, description="meetings the planner could not book"
    )
    created_at: datetime
    updated_at: datetime


class OccurrenceRead(BaseModel):
    id: int
    series_id: int
    title: str
    kind: MeetingKind
    mode: MeetingMode
    chair_site_id: int
    recurrence_at: datetime
    start_at: datetime
    end_at: datetime
    status: OccurrenceStatus
    moved: bool
    ended_at: datetime | None = Field(
        default=None, description="when the meeting was ended (null: not ended)"
    )
    site_count: int
    upstream_sip_uri: str | None = Field(
        description="this occurrence's bridge above, overriding the series'"
    )


class OccurrenceDetail(OccurrenceRead):
    site_ids: list[int]


class OccurrenceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_at: Annotated[AwareDatetime, AfterValidator(_plausible_year)] | None = Field(
        default=None, description="new start with its UTC offset, e.g. 2026-01-05T09:00:00+07:00"
    )
    end_at: Annotated[AwareDatetime, AfterValidator(_plausible_year)] | None = Field(
        default=None,
        description="new end with its UTC offset; on a live meeting a later end extends it "
        "and an end not after now ends it now",
    )
    duration_min: int | None = Field(
        default=None, ge=1, le=24 * 60, description="new length from the (new) start"
    )
    status: OccurrenceStatus | None = None
    upstream_sip_uri: SipUri | None = Field(
        default=None, max_length=300, description="null: the series' bridge above"
    )
    record_past: bool = Field(
        default=False, description="record a meeting that took place (it ends before now)"
    )
    confirm: bool = Field(
        default=False, description="move or cancel a meeting that has attendance on purpose"
    )
    reason: SingleLine | None = Field(
        default=None, max_length=500, description="why a meeting with attendance is changed"
    )

    @model_validator(mode="after")
    def _one_end(self) -> OccurrenceUpdate:
        if self.end_at is not None and self.duration_min is not None:
            raise ValueError("give end_at or duration_min, not both")
        return self


class AgendaItem(BaseModel):
    occurrence_id: int
    series_id: int
    title: str
    kind: MeetingKind
    mode: MeetingMode
    start_at: datetime
    end_at: datetime
    closes_at: datetime = Field(
        description="the latest the meeting runs until: its end plus the time it may run over"
    )
    is_chair: bool


class Agenda(BaseModel):
    site_id: int
    site_name: str
    items: list[AgendaItem]


class UnplannedAction(BaseModel):
    """Resolve an unplanned meeting: book it at another start, or accept the skip."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["move", "skip"]
    start_at: Annotated[AwareDatetime, AfterValidator(_plausible_year)] | None = Field(
        default=None, description="for move: the new start with its UTC offset"
    )


class UnplannedResolved(BaseModel):
    series: SeriesRead
    occurrence: OccurrenceRead | None = Field(
        default=None, description="the meeting booked by a move"
    )
