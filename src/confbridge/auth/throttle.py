"""Failed sign-ins counted per key (a username or a client address) in the database.

Too many failures of one key within a window lock that key for a while. Usernames are counted
whether or not such a user exists, so that a lock says nothing about which usernames exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from confbridge.auth.models import SignInThrottle
from confbridge.db import UTCDateTime

KEY_MAX_LENGTH = 200


@dataclass(frozen=True)
class Limit:
    """`max_failures` within `window_s` lock the key for `lock_s`."""

    max_failures: int
    window_s: int
    lock_s: int


def user_key(username: str) -> str:
    return ("user:" + username.strip().casefold())[:KEY_MAX_LENGTH]


def address_key(address: str) -> str:
    return ("addr:" + address)[:KEY_MAX_LENGTH]


def wait_s(*, session: Session, key: str, now: datetime) -> int:
    """0 if `key` may try now, else the whole seconds until its lock ends."""
    row = session.get(SignInThrottle, key)
    if row is None or row.locked_until is None or row.locked_until <= now:
        return 0
    return max(1, math.ceil((row.locked_until - now).total_seconds()))


def failed(*, session: Session, key: str, limit: Limit, now: datetime) -> bool:
    """Count a failure of `key`; True when it starts a lock."""
    window_start = now - timedelta(seconds=limit.window_s)
    table = SignInThrottle.__table__
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stale = table.c.window_started_at <= window_start
    # One statement, so that concurrent failures (other threads, other processes) all count.
    statement = insert(table).values(key=key, failures=1, window_started_at=now, locked_until=None)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "failures": case((stale, 1), else_=table.c.failures + 1),
            "window_started_at": case(
                (stale, literal(now, UTCDateTime())), else_=table.c.window_started_at
            ),
        },
    )
    session.execute(statement)
    row = session.get(SignInThrottle, key, populate_existing=True)
    assert row is not None
    if row.failures < limit.max_failures:
        return False
    # Locked: the count starts again when the lock ends.
    row.locked_until = now + timedelta(seconds=limit.lock_s)
    row.failures = 0
    row.window_started_at = row.locked_until
    session.flush()
    return True


def clear(*, session: Session, key: str) -> None:
    """Forget the failures of `key` (after a successful sign-in, or an administrator's reset)."""
    session.execute(delete(SignInThrottle).where(SignInThrottle.key == key))


def purge(*, session: Session, now: datetime, window_s: int) -> None:
    """Drop the rows that no longer count: window over and not locked."""
    session.execute(
        delete(SignInThrottle).where(
            SignInThrottle.window_started_at <= now - timedelta(seconds=window_s),
            or_(SignInThrottle.locked_until.is_(None), SignInThrottle.locked_until <= now),
        )
    )
