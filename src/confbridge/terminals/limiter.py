"""Wrong pairing codes per client address: too many in a window and the address must wait."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

# Every address together may fail this many times more than one address: a wider guessing
# campaign from many addresses is slowed down too.
GLOBAL_FACTOR = 20


class PairingLimiter:
    """Counts failed pairing attempts in memory (per control-plane process).

    A code has about 39 bits and lives 15 minutes, so a few attempts per address and window
    leave guessing hopeless; a restart forgets the counts, which is acceptable for that reason.
    """

    def __init__(self, max_failures: int, window_s: float) -> None:
        self._max = max_failures
        self._window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque[float]:
        times = self._failures[key]
        while times and times[0] <= now - self._window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return deque()
        return times

    def retry_after_s(self, address: str, now: float | None = None) -> int:
        """0 if `address` may try now, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for key, limit in ((address, self._max), ("*", self._max * GLOBAL_FACTOR)):
                times = self._trim(key, now)
                if len(times) >= limit:
                    return max(1, int(times[0] + self._window_s - now + 0.999))
        return 0

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._failures[address].append(now)
            self._failures["*"].append(now)
