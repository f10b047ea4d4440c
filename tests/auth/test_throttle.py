"""Failed sign-ins counted per key in the database: windows, locks, purging."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from confbridge.auth import throttle
from confbridge.auth.models import SignInThrottle
from confbridge.timeutil import utcnow

LIMIT = throttle.Limit(max_failures=3, window_s=60, lock_s=300)


def test_throttle_locks_at_the_limit_and_counts_again_after_the_lock(session: Session) -> None:
    now = utcnow()
    key = throttle.user_key("  VanPhong ")
    assert key == "user:vanphong"
    assert [throttle.failed(session=session, key=key, limit=LIMIT, now=now) for _ in range(3)] == [
        False,
        False,
        True,
    ]
    assert throttle.wait_s(session=session, key=key, now=now) == 300
    assert throttle.wait_s(session=session, key=key, now=now + timedelta(seconds=299.5)) == 1
    after = now + timedelta(seconds=300)
    assert throttle.wait_s(session=session, key=key, now=after) == 0
    assert not throttle.failed(session=session, key=key, limit=LIMIT, now=after)


def test_throttle_window_starts_again_when_it_is_over(session: Session) -> None:
    now = utcnow()
    key = throttle.address_key("10.0.0.7")
    for _ in range(2):
        throttle.failed(session=session, key=key, limit=LIMIT, now=now)
    later = now + timedelta(seconds=61)
    # The two old failures no longer count: two more do not lock.
    assert not throttle.failed(session=session, key=key, limit=LIMIT, now=later)
    assert not throttle.failed(session=session, key=key, limit=LIMIT, now=later)
    assert throttle.failed(session=session, key=key, limit=LIMIT, now=later)


def test_throttle_purge_and_clear_drop_rows(session: Session) -> None:
    now = utcnow()
    throttle.failed(session=session, key="user:cu", limit=LIMIT, now=now - timedelta(seconds=120))
    throttle.failed(session=session, key="user:moi", limit=LIMIT, now=now)
    for _ in range(3):
        throttle.failed(session=session, key="user:khoa", limit=LIMIT, now=now)
    throttle.purge(session=session, now=now, window_s=60)
    keys = set(session.scalars(select(SignInThrottle.key)))
    assert keys == {"user:moi", "user:khoa"}  # the old one went; the locked one stays
    throttle.clear(session=session, key="user:khoa")
    assert session.scalar(select(func.count()).select_from(SignInThrottle)) == 1
