"""Report shapes: actual figures beside their targets."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class GroupBy(StrEnum):
    month = "month"
    quarter = "quarter"
    unit = "unit"
    kind = "kind"


class TargetResult(BaseModel):
    """One target and how the group stands against it."""

    key: str
    metric: str
    label_vi: str
    label_en: str
    kinds: list[str]
    target: float = Field(description="the minimum ratio, 0..1")
    numerator: int = Field(
        description="held online or hybrid and verified on the bridge / communes connected"
    )
    denominator: int = Field(description="held / communes")
    actual: float | None = Field(description="numerator / denominator; null when nothing counts")
    met: bool | None = Field(description="actual ≥ target; null when there is no actual")


class OnlineRatioRow(BaseModel):
    group: str = Field(description="2026-01, 2026-Q1, a unit id or a meeting kind")
    label: str
    held: int = Field(description="occurrences held (ended, not cancelled)")
    online: int = Field(description="held, booked online")
    hybrid: int = Field(description="held, booked hybrid")
    in_person: int
    ratio: float | None = Field(description="(online + hybrid) / held: as booked")
    online_verified: int = Field(
        description="online meetings held on the bridge: the chair and an invited site had "
        "media for reports.verified_min_ratio of the meeting"
    )
    hybrid_verified: int = Field(description="hybrid meetings held on the bridge, likewise")
    ratio_verified: float | None = Field(
        description="(online_verified + hybrid_verified) / held: what targets are judged on"
    )
    communes: int
    communes_connected: int
    targets: list[TargetResult]


class UnitRef(BaseModel):
    id: int
    name: str


class OnlineRatioReport(BaseModel):
    from_date: date
    to_date: date
    unit: UnitRef | None
    group_by: GroupBy
    generated_at: datetime
    rows: list[OnlineRatioRow]
    total: OnlineRatioRow


class SiteAttendanceRow(BaseModel):
    site_id: int
    site_name: str
    unit_id: int
    unit_name: str
    invited: int = Field(description="online and hybrid occurrences held it was invited to")
    present: int
    partial: int
    absent: int
    corrected: int
    joined_late: int
    left_early: int
    connected_min: float
    rate: float | None = Field(description="present / invited, after corrections")


class AttendanceReport(BaseModel):
    from_date: date
    to_date: date
    unit: UnitRef | None
    generated_at: datetime
    occurrences: int = Field(description="online and hybrid occurrences held in the period")
    invited: int
    present: int
    partial: int
    absent: int
    rate: float | None
    rows: list[SiteAttendanceRow]
