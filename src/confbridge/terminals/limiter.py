"""Limits on guessing pairing codes: per client address, tighter during a wide campaign.

A code is 8 symbols of 31 (about 8.5 × 10^11 values), works once and lives 15 minutes. A wrong
guess names no code, so failures cannot be counted per code; what bounds the chance of hitting
a live code is the number of guesses, and that is limited here:

- per address: `max_failures` wrong codes per `window_s`, then the address waits until the
  oldest leaves the window (IPv6 addresses count per /64, the block one subscriber gets);
- per campaign: once every address together has failed `CAMPAIGN_FACTOR × max_failures` times
  in the window, any address that has failed at all in the window waits until its failures
  leave it: one guess per address and window instead of `max_failures`.

Nobody is locked out for someone else's guesses: a device that types its code right is never
refused for another address's failures, and outside a campaign an address can mistype
`max_failures - 1` times. An attempt counts before the code is checked, so concurrent requests
cannot slip past the limit; a right or malformed code gives its attempt back.

Counts live in memory, per control-plane process (`serve --processes N` allows N times as
many guesses); a restart forgets them. Both are acceptable for codes that expire in minutes.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

# Failures of every address together, as a multiple of the per-address limit, from which a
# guessing campaign is assumed (200 with the default 10).
CAMPAIGN_FACTOR = 20
# Addresses followed at most; beyond it the one that failed longest ago is forgotten, so a
# campaign from very many addresses cannot exhaust memory.
MAX_TRACKED_ADDRESSES = 100_000
# The window of the campaign count is kept in this many buckets.
CAMPAIGN_BUCKETS = 30
IPV6_SUBSCRIBER_PREFIX = 64


def address_key(address: str) -> str:
    """What one limit applies to: the IPv4 address, or the /64 of an IPv6 address."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_SUBSCRIBER_PREFIX}", strict=False))
    return str(parsed)


@dataclass(frozen=True)
class Attempt:
    """One pairing attempt: refused (`retry_after_s` > 0), or counted as a failure until it
    is given back."""

    key: str
    at: float
    retry_after_s: int = 0


class PairingLimiter:
    """Counts wrong pairing codes per address and in all; thread-safe."""

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        *,
        campaign_failures: int | None = None,
        max_tracked: int = MAX_TRACKED_ADDRESSES,
    ) -> None:
        self._max = max_failures
        self._window_s = window_s
        self._campaign = campaign_failures or max_failures * CAMPAIGN_FACTOR
        self._max_tracked = max_tracked
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        # [bucket start, failures in it], oldest first
        self._buckets: deque[list[float]] = deque()
        self._bucket_s = window_s / CAMPAIGN_BUCKETS
        self._lock = threading.Lock()

    # counting

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self._window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def _campaign_failures(self, now: float) -> int:
        while self._buckets and self._buckets[0][0] + self._bucket_s <= now - self._window_s:
            self._buckets.popleft()
        return int(sum(count for _start, count in self._buckets))

    def _count(self, key: str, now: float) -> None:
        times = self._failures.setdefault(key, deque())
        times.append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > self._max_tracked:
            self._failures.popitem(last=False)
        if not self._buckets or now >= self._buckets[-1][0] + self._bucket_s:
            self._buckets.append([now, 0])
        self._buckets[-1][1] += 1

    def campaign(self, now: float | None = None) -> bool:
        """Whether failures of every address together are at the campaign level now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._campaign_failures(now) >= self._campaign

    # attempts

    def begin(self, address: str, now: float | None = None) -> Attempt:
        """Refuse `address` for now, or count its attempt as a failure until `give_back`."""
        now = time.monotonic() if now is None else now
        key = address_key(address)
        with self._lock:
            times = self._recent(key, now)
            if len(times) >= self._max:
                return Attempt(key, now, self._wait_s(times[0], now))
            if times and self._campaign_failures(now) >= self._campaign:
                return Attempt(key, now, self._wait_s(times[-1], now))
            self._count(key, now)
        return Attempt(key, now)

    def give_back(self, attempt: Attempt) -> None:
        """The attempt guessed nothing (the code was right, or not a code at all)."""
        if attempt.retry_after_s:
            return
        with self._lock:
            times = self._failures.get(attempt.key)
            if times is not None and attempt.at in times:
                times.remove(attempt.at)
                if not times:
                    del self._failures[attempt.key]
            for bucket in reversed(self._buckets):
                if bucket[0] <= attempt.at:
                    bucket[1] = max(0, bucket[1] - 1)
                    break

    def _wait_s(self, oldest: float, now: float) -> int:
        """Whole seconds until a failure at `oldest` leaves the window (at least 1)."""
        return max(1, int(oldest + self._window_s - now + 0.999))
