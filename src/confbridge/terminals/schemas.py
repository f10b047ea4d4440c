"""API models of terminals: creation with a pairing code, pairing, heartbeats, status."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from confbridge.pagination import Id


class TerminalStatus(StrEnum):
    online = "online"  # a heartbeat within `terminals.offline_after_s`
    offline = "offline"
    revoked = "revoked"


class TerminalCreate(BaseModel):
    site_id: Id
    name: str = Field(default="", max_length=200)


class PairingCodeRead(BaseModel):
    """A one-time pairing code: typed on the terminal, or opened as `pairing_url`."""

    terminal_id: int
    code: str = Field(description="8 characters; shown once, stored hashed")
    pairing_url: str = Field(description="the kiosk page with the code, e.g. for a QR code")
    expires_at: datetime


class TerminalRead(BaseModel):
    id: int
    site_id: int
    site_name: str
    name: str
    status: TerminalStatus
    created_at: datetime
    paired_at: datetime | None
    revoked_at: datetime | None
    last_seen_at: datetime | None
    kind: str | None = None
    version: str | None = None
    ip: str | None = None
    camera: bool | None = None
    microphone: bool | None = None
    occurrence_id: int | None = None
    last_error: str | None = None


class TerminalCreatedWithCode(BaseModel):
    terminal: TerminalRead
    pairing: PairingCodeRead


class PairRequest(BaseModel):
    code: str = Field(min_length=1, max_length=32, description="the pairing code, any case")


class Paired(BaseModel):
    """The device keeps `token`: it is its credential from now on (shown once)."""

    terminal_id: int
    site_id: int
    site_name: str
    token: str
    heartbeat_interval_s: int


class TerminalMe(BaseModel):
    """What a terminal learns about itself."""

    terminal_id: int
    name: str
    site_id: int
    site_name: str
    heartbeat_interval_s: int


class HeartbeatIn(BaseModel):
    """A terminal's report, every `terminals.heartbeat_interval_s`."""

    kind: Literal["agent", "kiosk", "other"] = "other"
    version: str = Field(default="", max_length=50)
    ip: str | None = Field(default=None, max_length=64, description="as the terminal sees it")
    camera: bool = False
    microphone: bool = False
    occurrence_id: Id | None = Field(default=None, description="the meeting it is in, if any")
    last_error: str | None = Field(default=None, max_length=500)


class HeartbeatAck(BaseModel):
    status: TerminalStatus
    next_in_s: int


class SpeakerRead(BaseModel):
    """Who holds the floor of an occurrence the terminal's site is in."""

    occurrence_id: int
    speaker_site_id: int | None
    speaker_site_name: str | None
    hand_raised: bool
    muted: bool
    end_at: datetime | None = Field(
        default=None, description="the meeting's end (moved by an extension or an end now)"
    )
    closes_at: datetime | None = Field(
        default=None, description="when the terminal leaves: the end plus the time it may run over"
    )
    ended: bool = Field(default=False, description="the meeting has ended: leave now")
    recording: bool = Field(
        default=False, description="the meeting is being recorded (the hall shows it)"
    )
