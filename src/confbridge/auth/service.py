"""Users, passwords, sign-in, sessions, access tokens, terminal and feed tokens, the audit log."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import jwt
from sqlalchemy import Select, bindparam, delete, func, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session, joinedload

from confbridge.auth import passwords, throttle
from confbridge.auth import scope as scope_service
from confbridge.auth.models import (
    AuditEntry,
    GrantRevocation,
    Membership,
    Role,
    SfuNodeEnrolment,
    Terminal,
    User,
    UserSession,
)
from confbridge.auth.scope import Scope
from confbridge.client_address import current_address
from confbridge.errors import (
    Conflict,
    Forbidden,
    Invalid,
    Unauthorized,
)
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import NODE_KEY_PREFIX
from confbridge_kernel.contracts import GrantRevocation as GrantRevocationMessage

JWT_ALGORITHM = "HS256"
TERMINAL_TOKEN_PREFIX = "cbt_"
FEED_TOKEN_PREFIX = "cbf_"
# Hex digits of a terminal's credential id in its join grants (96 bits).
CREDENTIAL_ID_CHARS = 24
# A revocation is kept this much longer than the longest grant lifetime: workers accept a
# grant up to 30 s after its expiry (clock leeway), and heartbeats take a few seconds.
REVOCATION_MARGIN = timedelta(minutes=2)
# The stored token hash of a terminal no device has paired with yet (a SHA-256 hex digest
# never starts so): no token opens it, and it held no grant that pairing would have to void.
UNPAIRED_TOKEN_HASH_PREFIX = "unpaired-"
SESSION_API = "api"
SESSION_WEB = "web"
# The token type (`typ` claim) of each kind of session: an API token is not a web cookie.
TOKEN_TYPES = {SESSION_API: "user", SESSION_WEB: "web"}
FAILED_SIGN_IN = "wrong username or password"
FIRST_ADMIN = "admin"

# Kept here under their old names: other domains and tests hash and check through this module.
hash_password = passwords.hash_password
verify_password = passwords.verify_password


@dataclass(frozen=True)
class Principal:
    """Who is calling: a signed-in user (and the session it signed in with) or a terminal."""

    user: User | None = None
    terminal: Terminal | None = None
    session_id: str | None = None

    @property
    def actor(self) -> str:
        if self.user is not None:
            return f"user:{self.user.username}"
        assert self.terminal is not None
        return f"terminal:{self.terminal.id}"


# The password hash of accounts the directory signs in: no password matches it, and it marks
# them, so that their sign-in goes to the directory.
DIRECTORY_HASH = "!directory"


def get(*, session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def get_by_username(*, session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def count(*, session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


@dataclass(frozen=True)
class MembershipIn:
    """A role over a unit's subtree; `unit_id` None is the root (the whole installation)."""

    unit_id: int | None
    role: Role


def list_(*, session: Session, scope: Scope | None = None) -> list[User]:
    """Users by name; with `scope`, those with a membership inside it (not at the root)."""
    query = select(User).order_by(User.username)
    if scope is not None and not scope.whole:
        inside = select(Membership.user_id).where(scope.clause(Membership.unit_id))
        query = query.where(User.id.in_(inside))
    return list(session.scalars(query))


def create(
    *,
    session: Session,
    username: str,
    password: str,
    role: Role | None = None,
    memberships: Sequence[MembershipIn] | None = None,
    full_name: str = "",
) -> User:
    """A new user with `memberships`, or with `role` at the root (the whole installation)."""
    if get_by_username(session=session, username=username) is not None:
        raise Conflict(f"user {username!r} already exists")
    passwords.check_policy(password, username=username)
    wanted = _memberships_in(session, role=role, memberships=memberships)
    user = User(username=username, password_hash=hash_password(password), full_name=full_name)
    user.memberships = [Membership(unit_id=m.unit_id, role=m.role.value) for m in wanted]
    session.add(user)
    session.flush()
    return user


def _memberships_in(
    session: Session, *, role: Role | None, memberships: Sequence[MembershipIn] | None
) -> list[MembershipIn]:
    """The memberships asked for, without repeats; every unit must exist."""
    wanted = list(memberships) if memberships is not None else []
    if role is not None:
        wanted.append(MembershipIn(unit_id=None, role=role))
    if not wanted:
        raise Invalid("memberships: give at least one (unit_id, role)")
    unique = list(dict.fromkeys(wanted))
    unknown = scope_service.missing_units(
        session=session, unit_ids={m.unit_id for m in unique if m.unit_id is not None}
    )
    if unknown:
        raise Invalid(f"memberships: unknown unit ids: {', '.join(map(str, sorted(unknown)))}")
    return unique


def memberships_of(user: User) -> list[MembershipIn]:
    return [MembershipIn(unit_id=m.unit_id, role=Role(m.role)) for m in user.memberships]


def check_may_manage(*, session: Session, admin_scope: Scope, user: User) -> None:
    """Refuse unless every membership of `user` lies inside the administrator's scope."""
    if admin_scope.whole:
        return
    tops = [m.unit_id for m in user.memberships]
    theirs = scope_service.scope_of_units(session=session, unit_ids=tops)
    if not tops or not theirs.within(admin_scope):
        raise Forbidden(
            f"user {user.username!r} has roles outside your units; ask an administrator above"
        )


def check_may_grant(*, admin_scope: Scope, memberships: Sequence[MembershipIn]) -> None:
    """Refuse memberships outside the administrator's scope (the root needs a root admin)."""
    outside = [m for m in memberships if not admin_scope.covers(m.unit_id)]
    if outside:
        where = ", ".join(
            "the root" if m.unit_id is None else f"unit {m.unit_id}" for m in outside[:10]
        )
        raise Forbidden(f"memberships: you may give roles only in your own units, not in {where}")


def set_password(*, session: Session, user: User, password: str, must_change: bool = False) -> None:
    """Give `user` a new password (checked against the policy) and end all its sessions."""
    passwords.check_policy(password, username=user.username)
    user.password_hash = hash_password(password)
    user.must_change_password = must_change
    revoke_sessions(session=session, user_id=user.id, now=utcnow())
    session.flush()


def change_password(
    *, session: Session, user: User, current_password: str, new_password: str
) -> None:
    """The user's own change: the current password first, then a new, different one."""
    if not verify_password(user.password_hash, current_password):
        raise Invalid("the current password is wrong", rule="current_wrong")
    if new_password == current_password:
        raise Invalid("the new password must differ from the current one", rule="unchanged")
    set_password(session=session, user=user, password=new_password)
    record(
        session=session,
        actor=f"user:{user.username}",
        action="password_changed",
        entity="user",
        entity_id=user.id,
    )


def _root_admins(session: Session, *, without: int | None = None) -> int:
    """Active administrators of the whole installation (but user `without`)."""
    query = (
        select(func.count(func.distinct(User.id)))
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.unit_id.is_(None),
            Membership.role == Role.admin.value,
            User.active.is_(True),
        )
    )
    if without is not None:
        query = query.where(User.id != without)
    return session.scalar(query) or 0


def describe(memberships: Sequence[MembershipIn]) -> list[str]:
    return [f"{m.role.value}@{'root' if m.unit_id is None else m.unit_id}" for m in memberships]


def update(
    *,
    session: Session,
    user: User,
    actor: User | str,
    role: Role | None = None,
    memberships: Sequence[MembershipIn] | None = None,
    active: bool | None = None,
    full_name: str | None = None,
) -> dict[str, Any]:
    """An administrator's change of memberships (`role`: one role at the root), name or
    standing; returns what changed.

    Disabling ends the user's sessions. The last active administrator of the whole
    installation cannot lose that role or be disabled (nobody could manage everything any
    more), nor can administrators lock themselves out.
    """
    changes: dict[str, Any] = {}
    new_memberships = None
    if role is not None or memberships is not None:
        new_memberships = _memberships_in(session, role=role, memberships=memberships)
        before = memberships_of(user)
        if set(new_memberships) != set(before):
            changes["memberships"] = [describe(before), describe(new_memberships)]
    if active is not None and active != user.active:
        changes["active"] = [user.active, active]
    if full_name is not None and full_name != user.full_name:
        changes["full_name"] = [user.full_name, full_name]
    was_root_admin = user.active and any(
        m.unit_id is None and m.role == Role.admin.value for m in user.memberships
    )
    keeps_root_admin = active is not False and (
        new_memberships is None
        or any(m.unit_id is None and m.role == Role.admin for m in new_memberships)
    )
    losing_admin = was_root_admin and not keeps_root_admin
    if active is False and isinstance(actor, User) and actor.id == user.id:
        raise Conflict("you cannot disable your own account; ask another administrator")
    if losing_admin and isinstance(actor, User) and actor.id == user.id:
        raise Conflict("you cannot demote or disable your own account; ask another administrator")
    if losing_admin and _root_admins(session, without=user.id) == 0:
        raise Conflict("this is the last active administrator; make another user admin first")
    if new_memberships is not None and "memberships" in changes:
        user.memberships = [
            Membership(unit_id=m.unit_id, role=m.role.value) for m in new_memberships
        ]
    if active is not None:
        user.active = active
    if full_name is not None:
        user.full_name = full_name
    if active is False and "active" in changes:
        revoke_sessions(session=session, user_id=user.id, now=utcnow())
    if changes:
        record(
            session=session,
            actor=_actor_name(actor),
            action="user_updated",
            entity="user",
            entity_id=user.id,
            detail={"username": user.username, "changes": changes},
        )
    session.flush()
    return changes


def reset_password(
    *, session: Session, user: User, actor: User | str, password: str | None = None
) -> str | None:
    """Set a given password, or a generated one-time password (returned, to be shown once).

    Either way the user must choose a new password at the next sign-in. The user's sessions
    and calendar feed token end, and a sign-in lock on the username is lifted.
    """
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(12)
    set_password(session=session, user=user, password=password, must_change=True)
    user.feed_token_hash = None
    throttle.clear(session=session, key=throttle.user_key(user.username))
    record(
        session=session,
        actor=_actor_name(actor),
        action="password_reset",
        entity="user",
        entity_id=user.id,
        detail={"username": user.username, "generated": generated is not None},
    )
    session.flush()
    return generated


def _actor_name(actor: User | str) -> str:
    return f"user:{actor.username}" if isinstance(actor, User) else actor


# --- sign-in ------------------------------------------------------------------------------------


# --- sessions -----------------------------------------------------------------------------------


def start_session(*, session: Session, user: User, kind: str, ttl: timedelta) -> UserSession:
    """A new session of `user` (its id goes into the token or cookie)."""
    now = utcnow()
    # Expired sessions of this user are of no use any more; sign-in is a good time to go.
    session.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= now)
    )
    row = UserSession(
        id=secrets.token_hex(16), user_id=user.id, kind=kind, created_at=now, expires_at=now + ttl
    )
    session.add(row)
    session.flush()
    return row


def revoke_session(*, session: Session, session_id: str) -> None:
    session.execute(
        sql_update(UserSession)
        .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def revoke_sessions(*, session: Session, user_id: int, now: datetime) -> int:
    """End every live session of the user; returns how many."""
    result = session.execute(
        sql_update(UserSession)
        .where(
            UserSession.user_id == user_id,
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > now,
        )
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


_SESSION_WITH_USER = (
    select(UserSession, User)
    .join(User, User.id == UserSession.user_id)
    .where(UserSession.id == bindparam("session_id"))
)


def session_user(
    *, session: Session, session_id: str, user_id: int, kind: str, now: datetime
) -> User | None:
    """The user of a live session (not revoked, not expired, of this kind, active account)."""
    found = session.execute(_SESSION_WITH_USER, {"session_id": session_id}).first()
    if found is None:
        return None
    row, user = found
    if row.user_id != user_id or row.kind != kind or row.revoked_at is not None:
        return None
    if row.expires_at <= now or not user.active:
        return None
    return user


def issue_access_token(*, user: User, session_id: str, secret_key: str, ttl_min: int) -> str:
    now = utcnow()
    claims = {
        "sub": str(user.id),
        "sid": session_id,
        "role": user.role,
        "typ": TOKEN_TYPES[SESSION_API],
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=ttl_min)).timestamp()),
    }
    return jwt.encode(claims, secret_key, algorithm=JWT_ALGORITHM)


# --- calendar feed tokens -----------------------------------------------------------------------


def new_feed_token(*, session: Session, user: User) -> str:
    """A new calendar feed token for `user` (shown once; it replaces the previous one)."""
    token = FEED_TOKEN_PREFIX + secrets.token_urlsafe(32)
    user.feed_token_hash = hash_terminal_token(token)
    session.flush()
    return token


def revoke_feed_token(*, session: Session, user: User) -> bool:
    """Forget the user's feed token; False when there was none."""
    had = user.feed_token_hash is not None
    user.feed_token_hash = None
    session.flush()
    return had


def feed_token_matches(*, user: User, token: str) -> bool:
    """Whether `token` is the user's current feed token."""
    stored = user.feed_token_hash
    return stored is not None and hmac.compare_digest(stored, hash_terminal_token(token))


def resolve_feed_token(*, session: Session, token: str) -> User:
    """The user whose calendars `token` reads, or `Unauthorized` saying why not."""
    if not token.startswith(FEED_TOKEN_PREFIX):
        raise Unauthorized("this is not a calendar feed token (they start with 'cbf_')")
    user = session.scalar(select(User).where(User.feed_token_hash == hash_terminal_token(token)))
    if user is None:
        raise Unauthorized("unknown or revoked calendar feed token; create a new subscription link")
    if not user.active:
        raise Unauthorized("the account of this calendar feed is disabled")
    return user


def check_password_fresh(user: User) -> None:
    """Raise `Forbidden` while the user must still replace a password set by an administrator."""
    if user.must_change_password:
        raise Forbidden(
            "change your password first (PUT /api/v1/me/password): it was set by an administrator"
        )


def new_terminal_token() -> tuple[str, str]:
    """A fresh terminal token and the hash to store; the token itself is never stored."""
    token = TERMINAL_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_terminal_token(token)


def hash_terminal_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def credential_id(terminal: Terminal) -> str:
    """Names the terminal's current token in its join grants, so that workers can refuse the
    grants of a token that was revoked or replaced. One-way: grants are readable by anyone
    who holds them, and reveal nothing of the token or its stored hash."""
    digest = hashlib.sha256(b"confbridge-grant-holder:" + terminal.token_hash.encode())
    return digest.hexdigest()[:CREDENTIAL_ID_CHARS]


def grant_revocations(
    *, session: Session, now: datetime, grant_ttl_s: int
) -> list[GrantRevocationMessage]:
    """Every grant revocation in force, for the workers' heartbeat answers: the tokens of
    terminals revoked within the longest grant lifetime (however they were revoked, site
    archiving included), and tokens replaced by a new pairing. Rows past their expiry are
    deleted on the way: no grant they name is accepted any more."""
    keep = timedelta(seconds=grant_ttl_s) + REVOCATION_MARGIN
    revoked = session.scalars(
        select(Terminal).where(Terminal.revoked_at > now - keep).order_by(Terminal.id)
    )
    found = [
        GrantRevocationMessage(
            terminal_id=terminal.id,
            credential_id=credential_id(terminal),
            until=terminal.revoked_at + keep,  # type: ignore[operator]
        )
        for terminal in revoked
        if not terminal.token_hash.startswith(UNPAIRED_TOKEN_HASH_PREFIX)
    ]
    session.execute(
        delete(GrantRevocation)
        .where(GrantRevocation.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    replaced = session.scalars(
        select(GrantRevocation).where(GrantRevocation.expires_at > now).order_by(GrantRevocation.id)
    )
    found += [
        GrantRevocationMessage(
            terminal_id=row.terminal_id, credential_id=row.credential_id, until=row.expires_at
        )
        for row in replaced
    ]
    return found


def hash_node_key(key: str) -> str:
    """Keys are 256 random bits: a plain SHA-256 is enough to store them (no guessing)."""
    return hashlib.sha256(key.encode()).hexdigest()


def authenticate_node(*, session: Session, key: str) -> SfuNodeEnrolment | None:
    """The enrolment whose key this is, if any."""
    if not key.startswith(NODE_KEY_PREFIX):
        return None
    return session.scalar(
        select(SfuNodeEnrolment).where(SfuNodeEnrolment.key_hash == hash_node_key(key))
    )


@cache
def _terminal_by_token_hash() -> Select[tuple[Terminal]]:
    """Built once: terminals poll their agenda, and building the query cost more than running
    it. The site comes in the same query, since the agenda names it. Built at first use, not at
    import: `Terminal.site` needs the sites floor's models, which import this floor's."""
    return (
        select(Terminal)
        .where(Terminal.token_hash == bindparam("token_hash"))
        .options(joinedload(Terminal.site, innerjoin=True))
    )


def resolve_bearer(*, session: Session, token: str, secret_key: str) -> Principal:
    """Turn a bearer token into a principal, or raise `Unauthorized` saying why."""
    if token.startswith(TERMINAL_TOKEN_PREFIX):
        # Checked against the database on every request, so a revoked token stops at once.
        terminal = session.scalar(
            _terminal_by_token_hash(), {"token_hash": hash_terminal_token(token)}
        )
        if terminal is None or terminal.revoked_at is not None:
            raise Unauthorized("unknown or revoked terminal token")
        return Principal(terminal=terminal)
    try:
        claims = jwt.decode(token, secret_key, algorithms=[JWT_ALGORITHM])
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the access token has expired; sign in again") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid access token") from None
    subject, session_id = str(claims.get("sub", "")), claims.get("sid")
    if claims.get("typ") != TOKEN_TYPES[SESSION_API] or not subject.isdigit():
        raise Unauthorized("invalid access token")
    if not isinstance(session_id, str):
        raise Unauthorized("the access token is from an older version; sign in again")
    user = session_user(
        session=session, session_id=session_id, user_id=int(subject), kind=SESSION_API, now=utcnow()
    )
    if user is None:
        raise Unauthorized(
            "the session has ended (signed out, password changed, or account disabled); "
            "sign in again"
        )
    return Principal(user=user, session_id=session_id)


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    entity: str,
    entity_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append an audit entry in the caller's transaction."""
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            entity=entity,
            entity_id=entity_id,
            detail=detail or {},
            address=current_address.get(),
        )
    )


def ensure_first_admin(*, session: Session, password: str | None) -> str | None:
    """Create the `admin` user when there are no users; return a generated password, if any.

    The generated password is returned once so the caller can print it once.
    """
    if count(session=session) > 0:
        return None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    create(session=session, username=FIRST_ADMIN, password=password, role=Role.admin)
    return generated


def first_admin_password_problem(password: str | None) -> str | None:
    """Why `password` cannot be the first admin's password (None: it can, or none is given)."""
    if not password:
        return None
    try:
        passwords.check_policy(password, username=FIRST_ADMIN)
    except Invalid as exc:
        return exc.message
    return None
