"""Password hashing with a bounded number of hashes at once, and the password policy.

Each Argon2 hash takes 64 MiB for its duration (argon2-cffi's defaults, RFC 9106's second
recommended setting). Unbounded, 40 concurrent sign-ins took a process from 137 MB to 1.1 GB; so
at most `MAX_CONCURRENT_HASHES` run at once in a process, a few more callers may wait briefly,
and the others are turned away at once with "busy, retry shortly".
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from confbridge.errors import Invalid, Unavailable

MAX_CONCURRENT_HASHES = 2
# Callers waiting for a hashing slot hold a server thread each; beyond this many, refuse.
MAX_WAITING_HASHES = 16
HASH_WAIT_S = 5.0
BUSY_RETRY_AFTER_S = 2

MIN_LENGTH = 12
MAX_LENGTH = 200
# Passwords of the allowed length that appear at the top of leaked-password lists, or that
# someone setting up this system is likely to try (compared without case).
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123123123123",
        "111111111111",
        "000000000000",
        "abc123456789",
        "abcd12345678",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "qwertyuiop12",
        "qwerty123456",
        "qwertyuiopas",
        "asdfghjkl123",
        "password1234",
        "password@123",
        "password12345",
        "passw0rd1234",
        "administrator",
        "admin1234567",
        "admin@123456",
        "adminadmin12",
        "iloveyou1234",
        "welcome12345",
        "letmein12345",
        "changeme1234",
        "change-me-in-production",
        "matkhau12345",
        "matkhau123456",
        "matkhau@1234",
        "vietnam12345",
        "vietnam123456",
        "hanoi1234567",
        "confbridge12",
        "confbridge123",
        "confbridge1234",
    }
)

_hasher = PasswordHasher()


class HashingPool:
    """At most `max_concurrent` hashes at once; up to `max_waiting` callers wait `wait_s`."""

    def __init__(self, max_concurrent: int, max_waiting: int, wait_s: float) -> None:
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._max_waiting = max_waiting
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._waiting = 0
        self._running = 0
        self.peak = 0  # the most hashes that ran at once, for tests and curiosity

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a hashing slot, or raise `Unavailable` (503, retry shortly) when too busy."""
        with self._lock:
            if self._waiting >= self._max_waiting:
                raise _busy()
            self._waiting += 1
        try:
            acquired = self._slots.acquire(timeout=self._wait_s)
        finally:
            with self._lock:
                self._waiting -= 1
        if not acquired:
            raise _busy()
        with self._lock:
            self._running += 1
            self.peak = max(self.peak, self._running)
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
            self._slots.release()


def _busy() -> Unavailable:
    return Unavailable(
        "the server is busy checking passwords; try again in a moment",
        retry_after_s=BUSY_RETRY_AFTER_S,
    )


# One per process: the memory bound is per process.
pool = HashingPool(MAX_CONCURRENT_HASHES, MAX_WAITING_HASHES, HASH_WAIT_S)


def hash_password(password: str) -> str:
    with pool.slot():
        return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches; a malformed hash is simply no match."""
    with pool.slot():
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("no user has this password")


def verify_nobody(password: str) -> bool:
    """Spend the time a real check takes, for a username that does not exist (always False).

    Without it an unknown username was answered in 2.5 ms and a wrong password in 126 ms,
    which told anyone which usernames exist.
    """
    dummy = _dummy_hash()
    verify_password(dummy, password)
    return False


def check_policy(password: str, *, username: str) -> None:
    """Raise `Invalid` saying why, unless `password` is acceptable for `username`."""
    # `rule` lets the web pages say the same in the reader's language.
    if len(password) < MIN_LENGTH:
        raise Invalid(
            f"the password is too short: it needs at least {MIN_LENGTH} characters",
            rule="too_short",
        )
    if len(password) > MAX_LENGTH:
        raise Invalid(f"the password is too long: at most {MAX_LENGTH} characters", rule="too_long")
    if len(set(password)) == 1:
        raise Invalid("the password may not repeat a single character", rule="one_character")
    folded = password.casefold()
    if username and folded == username.casefold():
        raise Invalid("the password may not be the username", rule="username")
    if folded in COMMON_PASSWORDS:
        raise Invalid("the password is too common; choose another one", rule="common")
