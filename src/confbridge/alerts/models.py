"""Stored alerts: each open alert is unique per kind and subject."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from confbridge.db import Base, UTCDateTime
from confbridge.timeutil import utcnow


class Alert(Base):
    """Something IT staff should look at; `open_key` is set while it is open (unique), so
    several control-plane processes raising the same alert store it once."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    severity: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(200))
    node_id: Mapped[str | None] = mapped_column(String(100), default=None)
    occurrence_id: Mapped[int | None] = mapped_column(Integer, default=None)
    site_id: Mapped[int | None] = mapped_column(Integer, default=None)
    message: Mapped[str] = mapped_column(String(500))  # Vietnamese
    message_en: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(150), default=None)
    open_key: Mapped[str | None] = mapped_column(String(240), unique=True, default=None)
    # webhook delivery: pending → delivered, or failed after the last attempt
    delivery_state: Mapped[str] = mapped_column(String(10), default="pending")
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_delivery_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    delivery_claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_delivery_error: Mapped[str | None] = mapped_column(String(300), default=None)

    __table_args__ = (
        Index("ix_alerts_raised_at", "raised_at"),
        Index("ix_alerts_delivery", "delivery_state", "next_delivery_at"),
    )
