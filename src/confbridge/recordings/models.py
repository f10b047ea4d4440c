"""One recording of an occurrence's programme, written by the worker that held its room."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from confbridge.db import Base, UTCDateTime


class Recording(Base):
    """The file is written on `node_id` (under its recordings directory); `ended_at`, `bytes`
    and `sha256` are filled when the worker finishes it. Where an object store is configured,
    the finished file is then copied there (`storage_key`) and removed from the worker."""

    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    started_by: Mapped[str] = mapped_column(String(200))
    # `RecordingChapter`s as JSON, by `start_ms`: the worker's, and the agenda items marked
    # current while it recorded (`recordings.chapters`)
    chapters: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    failure: Mapped[str | None] = mapped_column(String(500))  # why the file is incomplete
    storage_key: Mapped[str | None] = mapped_column(String(200))  # its name in the object store

    __table_args__ = (Index("ix_recordings_occurrence_started", "occurrence_id", "started_at"),)
