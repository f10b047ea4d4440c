"""Who may call: users and roles, sign-in sessions and limits, terminals, node keys; the audit log.

Terminals and SFU nodes are principals like users: their bearer tokens (node keys) are their
credentials, so the tables that hold the hashes live here, where tokens are resolved, and no
floor above `auth` has to be asked who a token belongs to. Which site a terminal stands in is
the sites floor's business; the `Terminal.site` relationship names `Site` without importing it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from confbridge.db import Base, UTCDateTime
from confbridge.timeutil import utcnow


class Role(StrEnum):
    admin = "admin"
    secretariat = "secretariat"
    it = "it"
    viewer = "viewer"


# The role a user is shown by, when it holds several: the first of these it holds.
ROLE_RANK = (Role.admin, Role.secretariat, Role.it, Role.viewer)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set by an administrator's password reset: the user must choose a new password first.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    # SHA-256 of the calendar feed token (`?feed=` on calendar URLs); the token is not stored.
    feed_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)

    # Loaded with the user (one more query): every request checks roles and scope.
    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user",
        lazy="selectin",
        cascade="all, delete-orphan",
        order_by="Membership.id",
    )

    @property
    def roles(self) -> frozenset[str]:
        """Every role the user holds somewhere."""
        return frozenset(m.role for m in self.memberships)

    @property
    def role(self) -> str:
        """The user's main role (the strongest held anywhere), for display and coarse checks;
        what it may do where is the business of `auth.scope`."""
        held = self.roles
        return next((r.value for r in ROLE_RANK if r.value in held), "")

    def has_role(self, *roles: Role | str) -> bool:
        """Whether the user holds one of `roles` (or admin) for some unit."""
        wanted = {str(r) for r in roles} | {Role.admin.value}
        return bool(self.roles & wanted)


class Membership(Base):
    """A role for a unit's subtree; `unit_id` NULL is the root: the whole installation.

    `unit_id` names the sites floor's table by name only (like `Terminal.site_id`).
    """

    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("units.id", ondelete="RESTRICT"), default=None
    )
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User] = relationship(back_populates="memberships")

    __table_args__ = (
        Index("ix_memberships_user_id", "user_id"),
        Index("ix_memberships_unit_id", "unit_id"),
    )


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
    # the client address of the request that did it (None: the command line, the planner)
    address: Mapped[str | None] = mapped_column(String(64), default=None)

    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)


class SfuNodeEnrolment(Base):
    """A node's own credential: enrolled by an admin (or by `serve` for its local workers).

    Only a hash of the key is stored; the key is shown once. Revoking deletes the row (the
    audit log keeps the story), and the node's heartbeats and events are refused from then on.
    """

    __tablename__ = "sfu_node_enrolments"

    node_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # A worker started by `serve` on this machine (its key is rotated at every start).
    local: Mapped[bool] = mapped_column(Boolean, default=False)
    # May register loopback URLs (a worker on the control plane's own machine).
    allow_loopback: Mapped[bool] = mapped_column(Boolean, default=False)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    enrolled_by: Mapped[str] = mapped_column(String(120), default="")
    # Restarts of a local worker by `serve`'s supervisor since the key was issued.
    restarts: Mapped[int] = mapped_column(Integer, default=0)


class Terminal(Base):
    __tablename__ = "terminals"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # SHA-256 of the token: tokens are long random strings, so a fast hash is enough.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When a device last exchanged a pairing code for this terminal's token.
    paired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # `Site` lives on the sites floor, above this one: SQLAlchemy finds it by name in the
    # registry of mapped classes, so this module never imports it.
    site: Mapped[Site] = relationship(back_populates="terminals")  # noqa: F821

    __table_args__ = (Index("ix_terminals_site_id", "site_id"),)


class GrantRevocation(Base):
    """Join grants issued to a terminal token that a new pairing replaced are void until
    `expires_at` (revoked terminals need no row: their `revoked_at` says it).

    Workers get every revocation in force with their heartbeat answer. `terminal_id` has no
    foreign key on purpose: the revocation must outlive a deleted terminal.
    """

    __tablename__ = "grant_revocations"

    id: Mapped[int] = mapped_column(primary_key=True)
    terminal_id: Mapped[int] = mapped_column(Integer)
    credential_id: Mapped[str] = mapped_column(String(32))
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # every grant of that token has expired by then (the longest grant lifetime, and leeway)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_grant_revocations_expires_at", "expires_at"),)
