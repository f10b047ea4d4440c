"""Pairing codes and the latest reported state of each terminal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from confbridge.db import Base, UTCDateTime
from confbridge.timeutil import utcnow


class PairingCode(Base):
    """A one-time code that exchanges for a terminal's long-lived token.

    Only an HMAC of the code is stored; a code works once and until `expires_at`.
    """

    __tablename__ = "terminal_pairing_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    terminal_id: Mapped[int] = mapped_column(ForeignKey("terminals.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(150), default="")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (Index("ix_terminal_pairing_codes_terminal_id", "terminal_id"),)


class TerminalState(Base):
    """What a terminal said in its latest heartbeat (one row per terminal)."""

    __tablename__ = "terminal_states"

    terminal_id: Mapped[int] = mapped_column(
        ForeignKey("terminals.id", ondelete="CASCADE"), primary_key=True
    )
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(20), default="")  # agent | kiosk
    version: Mapped[str] = mapped_column(String(50), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    camera: Mapped[bool] = mapped_column(Boolean, default=False)
    microphone: Mapped[bool] = mapped_column(Boolean, default=False)
    occurrence_id: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
