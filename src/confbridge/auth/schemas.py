"""Auth API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from confbridge.auth.models import Role
from confbridge.auth.passwords import MAX_LENGTH, MIN_LENGTH


# The policy itself (not all one character, not the username, not a common password) is
# checked by the service, with a message that says which rule failed.
def _new_password(**options: Any) -> Any:
    return Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH, **options)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class MembershipItem(BaseModel):
    """A role over a unit and every unit below it; `unit_id` null is the whole installation."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")

    unit_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    role: Role


# Letters without accents, digits and . _ @ -: names that every directory and log accepts.
USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{2,80}$"


class UserCreate(BaseModel):
    """A new user: `memberships`, or `role` alone for a role over the whole installation.

    Without `password`, a one-time password is generated, returned once, and must be changed
    at the first sign-in."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=2, max_length=80, pattern=USERNAME_PATTERN)
    password: str | None = _new_password(default=None)
    role: Role | None = None
    memberships: list[MembershipItem] | None = Field(default=None, max_length=100)
    full_name: str = Field(default="", max_length=200)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str
    # the strongest role held anywhere ("" when none); `memberships` say where
    role: str
    memberships: list[MembershipItem]
    active: bool
    must_change_password: bool
    created_at: datetime


class UserCreated(UserRead):
    # the generated one-time password (shown once), or null when one was given
    password: str | None = None


class UserUpdate(BaseModel):
    """An administrator's change; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    # `role` alone: that role over the whole installation; `memberships`: replace them all
    role: Role | None = None
    memberships: list[MembershipItem] | None = Field(default=None, max_length=100)
    # false disables the account (its sessions end at once); users are never deleted, so the
    # audit log keeps their names.
    active: bool | None = None
    full_name: str | None = Field(default=None, max_length=200)


class PasswordReset(BaseModel):
    """A given password, or none: a one-time password is generated and returned once."""

    model_config = ConfigDict(extra="forbid")

    password: str | None = _new_password(default=None)


class PasswordResetDone(BaseModel):
    user: UserRead
    # the generated one-time password (shown once), or null when one was given
    password: str | None
    must_change_password: bool


class FeedToken(BaseModel):
    feed_token: str = Field(
        description="append as ?feed=<token> to a calendar.ics URL; shown once, stored hashed"
    )


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=MAX_LENGTH)
    new_password: str = _new_password()


class Me(BaseModel):
    kind: str  # "user" or "terminal"
    user: UserRead | None = None
    terminal_id: int | None = None
    site_id: int | None = None
