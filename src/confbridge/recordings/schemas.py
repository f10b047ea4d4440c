"""Recordings over the API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class RecordingRequest(BaseModel):
    """`start` or `stop` the occurrence's recording."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["start", "stop"]


class RecordingRead(BaseModel):
    """One recording; `ended_at`, `bytes`, `sha256` and its chapters (WebVTT) once it is
    finished; `failure` when its worker could not write all of it."""

    id: str
    started_at: datetime
    ended_at: datetime | None
    bytes: int | None
    sha256: str | None
    download_url: str | None
    chapters_url: str | None = None
    failure: str | None = None


class RecordingAccessRead(BaseModel):
    """One download or playback of a recording (from the audit log)."""

    at: datetime
    actor: str
    action: Literal["recording_download", "recording_play"]
    address: str | None
