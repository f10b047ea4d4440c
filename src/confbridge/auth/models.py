"""Users, roles, sign-in sessions, sign-in limits and the audit log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from confbridge.db import Base, UTCDateTime, utcnow


class Role(StrEnum):
    admin = "admin"
    secretariat = "secretariat"
    it = "it"
    viewer = "viewer"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set by an administrator's password reset: the user must choose a new password first.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    # SHA-256 of the calendar feed token (`?feed=` on calendar URLs); the token is not stored.
    feed_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)


class UserSession(Base):
    """One sign-in: an API access token or a web cookie carries its id (`sid`).

    A token is honoured only while its row is neither revoked nor expired, so signing out,
    a password change and disabling the account end it at once.
    """

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # "api" or "web"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (Index("ix_user_sessions_user_id", "user_id"),)


class SignInThrottle(Base):
    """Failed sign-ins of one username or one client address within the current window.

    Kept in the database so that every control-plane process and replica sees the same
    counts, and a restart does not reset them.
    """

    __tablename__ = "sign_in_throttles"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # "user:<name>", "addr:<ip>"
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (Index("ix_sign_in_throttles_window_started_at", "window_started_at"),)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int | None]
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)
