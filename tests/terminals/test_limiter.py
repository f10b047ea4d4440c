"""The pairing limiter: per address, tighter in a campaign, never locking out a right code."""

from __future__ import annotations

import threading

from confbridge.terminals.limiter import PairingLimiter, address_key

WINDOW_S = 300.0


def fail(limiter: PairingLimiter, address: str, now: float) -> int:
    """One wrong code from `address`; the seconds it was told to wait (0: it could try)."""
    return limiter.begin(address, now=now).retry_after_s


def test_limiter_address_waits_after_max_failures_until_the_oldest_leaves_the_window() -> None:
    limiter = PairingLimiter(3, WINDOW_S)
    assert [fail(limiter, "192.0.2.1", t) for t in (0, 10, 20)] == [0, 0, 0]
    assert fail(limiter, "192.0.2.1", 30) == 270
    assert fail(limiter, "192.0.2.2", 30) == 0  # another address is not affected
    assert fail(limiter, "192.0.2.1", 300.5) == 0  # the first failure left the window


def test_limiter_right_or_malformed_codes_are_given_back() -> None:
    limiter = PairingLimiter(2, WINDOW_S)
    for t in range(5):
        limiter.give_back(limiter.begin("192.0.2.1", now=t))
    assert fail(limiter, "192.0.2.1", 6) == 0
    assert fail(limiter, "192.0.2.1", 7) == 0
    assert fail(limiter, "192.0.2.1", 8) > 0


def test_limiter_campaign_allows_one_guess_per_address_but_spares_right_codes() -> None:
    limiter = PairingLimiter(10, WINDOW_S)  # a campaign from 200 failures
    for index in range(20):
        for t in range(10):
            assert fail(limiter, f"203.0.113.{index}", t) == 0
    assert limiter.campaign(now=20)
    # a new address gets one try; once it failed, it waits until that failure leaves
    assert fail(limiter, "198.51.100.1", 20) == 0
    assert fail(limiter, "198.51.100.1", 21) == 299
    # a device with its right code is never refused for the others' failures
    device = limiter.begin("198.51.100.2", now=21)
    assert device.retry_after_s == 0
    limiter.give_back(device)
    # the campaign ends once its failures leave the window
    assert not limiter.campaign(now=WINDOW_S + 30)
    assert fail(limiter, "198.51.100.3", WINDOW_S + 30) == 0
    assert fail(limiter, "198.51.100.3", WINDOW_S + 31) == 0


def test_limiter_ipv6_counts_per_64_block() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    limiter = PairingLimiter(2, WINDOW_S)
    assert fail(limiter, "2001:db8:1:2::1", 0) == 0
    assert fail(limiter, "2001:db8:1:2::2", 1) == 0
    assert fail(limiter, "2001:db8:1:2::3", 2) > 0


def test_limiter_concurrent_attempts_cannot_pass_the_limit() -> None:
    limiter = PairingLimiter(10, WINDOW_S)
    allowed: list[int] = []  # 1 for each attempt let through
    start = threading.Barrier(50)

    def attempt() -> None:
        start.wait()
        allowed.append(0 if limiter.begin("192.0.2.1", now=1.0).retry_after_s else 1)

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 10


def test_limiter_forgets_the_oldest_addresses_beyond_its_bound() -> None:
    limiter = PairingLimiter(1, WINDOW_S, max_tracked=100)
    for index in range(1000):
        fail(limiter, f"10.0.{index // 256}.{index % 256}", 1.0)
    assert fail(limiter, "10.0.3.231", 2.0) > 0  # among the newest 100: still waiting
    assert fail(limiter, "10.0.0.0", 2.0) == 0  # the oldest was forgotten
