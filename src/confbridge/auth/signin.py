"""Signing in: local passwords and the directory, with limits per user and per address."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from confbridge.auth import directory as directory_service
from confbridge.auth import passwords, throttle
from confbridge.auth import scope as scope_service
from confbridge.auth.models import (
    Membership,
    Role,
    User,
)
from confbridge.auth.service import (
    DIRECTORY_HASH,
    FAILED_SIGN_IN,
    MembershipIn,
    describe,
    get_by_username,
    record,
    update,
    verify_password,
)
from confbridge.errors import (
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from confbridge.settings import AuthSettings, LdapSettings


class AccountDisabled(Unauthorized):
    """The right password for a disabled account."""


class DirectoryDown(Unavailable):
    """The directory could not check a directory user's password."""


class NoDirectoryRole(Unauthorized):
    """The directory knows the user, but none of its groups gives a role here."""


@dataclass(frozen=True)
class SignInLimits:
    """How many failed sign-ins lock a username, or an address, and for how long."""

    per_user: throttle.Limit
    per_address: throttle.Limit

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> SignInLimits:
        window, lock = settings.failure_window_s, settings.lockout_s
        return cls(
            per_user=throttle.Limit(settings.max_failures_per_user, window, lock),
            per_address=throttle.Limit(settings.max_failures_per_address, window, lock),
        )


def sign_in(
    *,
    session: Session,
    username: str,
    password: str,
    address: str,
    via: str,
    limits: SignInLimits,
    now: datetime,
    directory: LdapSettings | None = None,
) -> User:
    """Check a username and password, within the limits of failed attempts.

    Raises `TooManyRequests` while the username or the address is locked (without checking
    the password), `Unauthorized` for a wrong username or password, a disabled account.
    Failures are counted and audited in the session: the caller commits them also when it
    answers with the error. Known and unknown usernames take the same time and are counted
    alike, so neither the timing nor a lock tells which usernames exist.
    """
    user_key, address_key = throttle.user_key(username), throttle.address_key(address)
    _refuse_while_locked(session=session, user_key=user_key, address_key=address_key, now=now)
    user = get_by_username(session=session, username=username)
    detail = {"username": username[:80], "address": address, "via": via}
    local = user is not None and user.password_hash != DIRECTORY_HASH
    if local:
        assert user is not None
        matches = verify_password(user.password_hash, password)
    elif directory is not None and directory.url:
        user, matches = _directory_sign_in(
            session=session, username=username, password=password, settings=directory, detail=detail
        )
    else:
        matches = passwords.verify_nobody(password)
    if matches and user is not None and user.active:
        throttle.clear(session=session, key=user_key)
        record(
            session=session,
            actor=f"user:{user.username}",
            action="sign_in",
            entity="user",
            entity_id=user.id,
            detail=detail,
        )
        return user
    if matches and user is not None:
        # The right password for a disabled account: only its owner learns that it is disabled.
        record(
            session=session,
            actor="anonymous",
            action="sign_in_failed",
            entity="user",
            entity_id=user.id,
            detail={**detail, "reason": "disabled"},
        )
        raise AccountDisabled("this account is disabled; ask an administrator")
    _count_failure(
        session=session,
        user=user,
        user_key=user_key,
        address_key=address_key,
        limits=limits,
        detail=detail,
        now=now,
    )
    raise Unauthorized(FAILED_SIGN_IN)


def _directory_sign_in(
    *,
    session: Session,
    username: str,
    password: str,
    settings: LdapSettings,
    detail: dict[str, Any],
) -> tuple[User | None, bool]:
    """Check the password with the directory; on success, the local account of the directory
    user (made at its first sign-in) with the memberships its groups give now."""
    user = get_by_username(session=session, username=username)
    try:
        found = directory_service.authenticate(
            settings=settings, username=username, password=password
        )
    except directory_service.DirectoryUnavailable as exc:
        record(
            session=session,
            actor="anonymous",
            action="sign_in_failed",
            entity="user",
            entity_id=user.id if user is not None else None,
            detail={**detail, "reason": "directory_unavailable", "error": str(exc)[:200]},
        )
        raise DirectoryDown(
            "the directory cannot be reached; try again later (local accounts still sign in)"
        ) from None
    if found is None:
        return user, False
    wanted = []
    for code, role in directory_service.mapped_memberships(settings=settings, user=found):
        unit_id = (
            None if code is None else scope_service.unit_id_by_code(session=session, code=code)
        )
        if code is None or unit_id is not None:
            wanted.append(MembershipIn(unit_id=unit_id, role=Role(role)))
    if not wanted:
        record(
            session=session,
            actor="anonymous",
            action="sign_in_failed",
            entity="user",
            entity_id=user.id if user is not None else None,
            detail={**detail, "reason": "no_directory_role"},
        )
        raise NoDirectoryRole("your directory groups give you no role here; ask an administrator")
    if user is None:
        user = User(username=username, password_hash=DIRECTORY_HASH, full_name=found.full_name)
        user.memberships = [Membership(unit_id=m.unit_id, role=m.role.value) for m in wanted]
        session.add(user)
        session.flush()
        record(
            session=session,
            actor="directory",
            action="user_created",
            entity="user",
            entity_id=user.id,
            detail={"username": username, "memberships": describe(wanted), "dn": found.dn},
        )
    else:
        update(session=session, user=user, actor="directory", memberships=wanted)
    return user, True


def _refuse_while_locked(
    *, session: Session, user_key: str, address_key: str, now: datetime
) -> None:
    """`TooManyRequests` while the username or the address is locked, with the longer wait."""
    user_wait = throttle.wait_s(session=session, key=user_key, now=now)
    address_wait = throttle.wait_s(session=session, key=address_key, now=now)
    if user_wait or address_wait:
        wait = max(user_wait, address_wait)
        whose = "this account" if user_wait >= address_wait else "your address"
        raise TooManyRequests(
            f"too many failed sign-ins for {whose}; try again in {_minutes(wait)}",
            retry_after_s=wait,
        )


def _count_failure(
    *,
    session: Session,
    user: User | None,
    user_key: str,
    address_key: str,
    limits: SignInLimits,
    detail: dict[str, Any],
    now: datetime,
) -> None:
    """Count a failed sign-in against the username and the address; audit it and each lock
    it sets off."""
    throttle.purge(session=session, now=now, window_s=limits.per_user.window_s)
    locked = []
    if throttle.failed(session=session, key=user_key, limit=limits.per_user, now=now):
        locked.append(("username", limits.per_user.lock_s))
    if throttle.failed(session=session, key=address_key, limit=limits.per_address, now=now):
        locked.append(("address", limits.per_address.lock_s))
    record(
        session=session,
        actor="anonymous",
        action="sign_in_failed",
        entity="user",
        entity_id=user.id if user is not None else None,
        detail={**detail, "reason": "unknown_user" if user is None else "wrong_password"},
    )
    for what, lock_s in locked:
        until = now + timedelta(seconds=lock_s)
        record(
            session=session,
            actor="anonymous",
            action="sign_in_locked",
            entity="user",
            entity_id=user.id if user is not None else None,
            detail={**detail, "locked": what, "until": until.isoformat()},
        )


def _minutes(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    return f"{(seconds + 59) // 60} min"
