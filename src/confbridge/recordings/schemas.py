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
    """One recording; `ended_at`, `bytes` and `sha256` once it is finished."""

    id: str
    started_at: datetime
    ended_at: datetime | None
    bytes: int | None
    sha256: str | None
    download_url: str | None
