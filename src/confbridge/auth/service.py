"""Users, passwords, access tokens, terminal tokens and the audit log."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, joinedload

from confbridge.auth.models import AuditEntry, Role, User
from confbridge.db import utcnow
from confbridge.errors import Conflict, Unauthorized
from confbridge.sites.models import Terminal

JWT_ALGORITHM = "HS256"
TERMINAL_TOKEN_PREFIX = "cbt_"
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a signed-in user or a site's terminal."""

    user: User | None = None
    terminal: Terminal | None = None

    @property
    def actor(self) -> str:
        if self.user is not None:
            return f"user:{self.user.username}"
        assert self.terminal is not None
        return f"terminal:{self.terminal.id}"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def get(*, session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def get_by_username(*, session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def list_(*, session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def count(*, session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def create(
    *, session: Session, username: str, password: str, role: Role, full_name: str = ""
) -> User:
    if get_by_username(session=session, username=username) is not None:
        raise Conflict(f"user {username!r} already exists")
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role.value,
        full_name=full_name,
    )
    session.add(user)
    session.flush()
    return user


def set_password(*, session: Session, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    session.flush()


def authenticate(*, session: Session, username: str, password: str) -> User:
    user = get_by_username(session=session, username=username)
    if user is None or not user.active or not verify_password(user.password_hash, password):
        raise Unauthorized("wrong username or password")
    return user


def issue_access_token(*, user: User, secret_key: str, ttl_min: int) -> str:
    now = utcnow()
    claims = {
        "sub": str(user.id),
        "role": user.role,
        "typ": "user",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=ttl_min)).timestamp()),
    }
    return jwt.encode(claims, secret_key, algorithm=JWT_ALGORITHM)


def new_terminal_token() -> tuple[str, str]:
    """A fresh terminal token and the hash to store; the token itself is never stored."""
    token = TERMINAL_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_terminal_token(token)


def hash_terminal_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Built once: terminals poll their agenda, and building the query cost more than running it.
# The site comes in the same query, since the agenda names it.
_TERMINAL_BY_TOKEN_HASH = (
    select(Terminal)
    .where(Terminal.token_hash == bindparam("token_hash"))
    .options(joinedload(Terminal.site, innerjoin=True))
)


def resolve_bearer(*, session: Session, token: str, secret_key: str) -> Principal:
    """Turn a bearer token into a principal, or raise `Unauthorized` saying why."""
    if token.startswith(TERMINAL_TOKEN_PREFIX):
        # Checked against the database on every request, so a revoked token stops at once.
        terminal = session.scalar(
            _TERMINAL_BY_TOKEN_HASH, {"token_hash": hash_terminal_token(token)}
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
    if claims.get("typ") != "user" or not str(claims.get("sub", "")).isdigit():
        raise Unauthorized("invalid access token")
    user = session.get(User, int(claims["sub"]))
    if user is None or not user.active:
        raise Unauthorized("the account no longer exists or is disabled")
    return Principal(user=user)


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
            actor=actor, action=action, entity=entity, entity_id=entity_id, detail=detail or {}
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
    create(session=session, username="admin", password=password, role=Role.admin)
    return generated
