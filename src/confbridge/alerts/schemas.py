"""API models of alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AlertRead(BaseModel):
    id: int
    kind: str
    severity: str
    subject: str
    open: bool
    node_id: str | None
    occurrence_id: int | None
    site_id: int | None
    message: str
    message_en: str
    details: dict[str, Any]
    raised_at: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    delivery_state: str
    delivery_attempts: int
    last_delivery_error: str | None
