"""Meetings API shapes."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from confbridge.meetings.models import MeetingKind, MeetingMode, OccurrenceStatus
from confbridge.pagination import Id

Title = Field(min_length=1, max_length=300)
MAX_INVITED = 20_000


class SeriesBase(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeriesCreate(SeriesBase):
    title: str = Title
    kind: MeetingKind
    mode: MeetingMode = MeetingMode.online
    rrule: str = Field(max_length=500, examples=["FREQ=WEEKLY;BYDAY=MO"])
    dtstart: datetime = Field(
        description="first start, wall-clock time in `tz` (an offset, if given, is converted)"
    )
    tz: str | None = Field(default=None, max_length=64, description="IANA zone")
    duration_min: int = Field(ge=1, le=24 * 60)
    chair_site_id: Id
    site_ids: list[Id] = Field(default_factory=list, max_length=MAX_INVITED)
    unit_ids: list[Id] = Field(default_factory=list, max_length=MAX_INVITED)
    exdates: list[date | datetime] = Field(default_factory=list, max_length=1000)
    skip_holidays: bool = True


class SeriesUpdate(SeriesBase):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    kind: MeetingKind | None = None
    mode: MeetingMode | None = None
    rrule: str | None = Field(default=None, max_length=500)
    dtstart: datetime | None = None
    tz: str | None = Field(default=None, max_length=64)
    duration_min: int | None = Field(default=None, ge=1, le=24 * 60)
    chair_site_id: Id | None = None
    site_ids: list[Id] | None = Field(default=None, max_length=MAX_INVITED)
    unit_ids: list[Id] | None = Field(default=None, max_length=MAX_INVITED)
    exdates: list[date | datetime] | None = Field(default=None, max_length=1000)
    skip_holidays: bool | None = None


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
    site_count: int


class OccurrenceDetail(OccurrenceRead):
    site_ids: list[int]


class OccurrenceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_at: AwareDatetime | None = Field(
        default=None, description="new start with its UTC offset, e.g. 2026-01-05T09:00:00+07:00"
    )
    status: OccurrenceStatus | None = None


class AgendaItem(BaseModel):
    occurrence_id: int
    series_id: int
    title: str
    kind: MeetingKind
    mode: MeetingMode
    start_at: datetime
    end_at: datetime
    is_chair: bool


class Agenda(BaseModel):
    site_id: int
    site_name: str
    items: list[AgendaItem]
