"""Sites API shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from confbridge.pagination import Id
from confbridge.sip_uri import SipUri
from confbridge.sites.models import UnitKind
from confbridge.text import SingleLine

Name = Field(min_length=1, max_length=200)


class UnitCreate(BaseModel):
    name: SingleLine = Name
    kind: UnitKind
    parent_id: Id | None = None
    code: str | None = Field(default=None, min_length=1, max_length=40)


class UnitRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: UnitKind
    parent_id: int | None
    code: str | None


class UnitDetail(UnitRead):
    children: list[UnitRead]
    site_ids: list[int]


SipUriField = Field(
    default=None,
    max_length=300,
    description="the room system's SIP address (sip: or sips:, user@host[:port]); "
    "stored in lower case without the default port",
    examples=["sip:halong-p1@rooms.halong.gov.vn"],
)


class SiteCreate(BaseModel):
    name: SingleLine = Name
    unit_id: Id
    sip_uri: SipUri | None = SipUriField


class SiteUpdate(BaseModel):
    name: SingleLine | None = Field(default=None, min_length=1, max_length=200)
    unit_id: Id | None = None
    sip_uri: SipUri | None = Field(
        default=None, max_length=300, description="null removes the room system's address"
    )


class SiteRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    unit_id: int
    archived_at: datetime | None
    sip_uri: str | None = Field(description="the room system's SIP address")
    guest: bool = Field(description="a SIP caller that is no site's room system (a guest)")


class TerminalCreate(BaseModel):
    name: str = Field(default="", max_length=200)


class TerminalCreated(BaseModel):
    id: int
    site_id: int
    name: str
    token: str = Field(description="shown once; only its hash is stored")


class ImportSummary(BaseModel):
    province: str
    units_created: int
    sites_created: int
    unchanged: int
