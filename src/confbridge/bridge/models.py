"""Events reported by SFU workers, stored once each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from confbridge.db import Base, UTCDateTime
from confbridge.timeutil import utcnow


class SfuEventRecord(Base):
    """One `contracts.SfuEvent` as received; its id (made by the worker) is the primary key.

    `occurrence_id` has no foreign key on purpose: a worker may report on a room the control
    plane no longer knows (restored from an older backup), and those events are kept.
    """

    __tablename__ = "sfu_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    node_id: Mapped[str] = mapped_column(String(100))
    room: Mapped[str] = mapped_column(String(100))
    occurrence_id: Mapped[int] = mapped_column(BigInteger)
    site_id: Mapped[int | None] = mapped_column(BigInteger)
    peer_id: Mapped[str | None] = mapped_column(String(64))
    direction: Mapped[str | None] = mapped_column(String(10))
    # The rest of the event: `stats`, `floor` and `detail`.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_sfu_events_occurrence_at", "occurrence_id", "at"),
        # the monitor reads the latest stats of every live meeting
        Index("ix_sfu_events_type_at", "type", "at"),
    )
