"""Password hashing within a bounded pool, and the password policy."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from confbridge.auth import passwords
from confbridge.errors import Invalid, Unavailable


def test_hashing_pool_runs_at_most_its_size_and_turns_away_the_overflow() -> None:
    pool = passwords.HashingPool(max_concurrent=2, max_waiting=3, wait_s=5.0)
    running = 0
    most = 0
    lock = threading.Lock()
    together = threading.Barrier(10)

    def hold(_index: int) -> str:
        nonlocal running, most
        together.wait()
        try:
            with pool.slot():
                with lock:
                    running += 1
                    most = max(most, running)
                time.sleep(0.5)
                with lock:
                    running -= 1
            return "done"
        except Unavailable as exc:
            assert exc.extra["retry_after_s"] == passwords.BUSY_RETRY_AFTER_S
            return "busy"

    with ThreadPoolExecutor(max_workers=10) as executor:
        outcomes = list(executor.map(hold, range(10)))
    assert most == 2 and pool.peak == 2
    # Two ran at once, three waited their turn, the other five were turned away at once.
    assert outcomes.count("done") == 5 and outcomes.count("busy") == 5


def test_hashing_pool_gives_up_waiting_after_its_wait() -> None:
    pool = passwords.HashingPool(max_concurrent=1, max_waiting=5, wait_s=0.1)
    release = threading.Event()

    def holder() -> None:
        with pool.slot():
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(Unavailable), pool.slot():
        pass
    assert time.monotonic() - started < 1
    release.set()
    thread.join()
    with pool.slot():  # free again
        pass


def test_verify_nobody_is_never_a_match() -> None:
    assert passwords.verify_nobody("no user has this password") is False


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("ngan-qua", "too_short"),
        ("x" * 201, "too_long"),
        ("zzzzzzzzzzzzzzzz", "one_character"),
        ("Nguyen.Van.An", "username"),
        ("PASSWORD1234", "common"),
        ("change-me-in-production", "common"),
    ],
)
def test_policy_refuses_weak_passwords(password: str, rule: str) -> None:
    with pytest.raises(Invalid) as refused:
        passwords.check_policy(password, username="nguyen.van.an")
    assert refused.value.extra["rule"] == rule


def test_policy_accepts_a_long_enough_password() -> None:
    passwords.check_policy("giao-ban-thu-hai-8h", username="nguyen.van.an")
