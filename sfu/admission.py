"""Admission of new WHIP/WHEP sessions: a worker under a join storm takes joins at the rate it
can handle and turns the rest away with `503` and `Retry-After`.

Answering an offer (SDP parsing, the answer, ICE gathering) costs about 7 ms of CPU in one
piece, and the ICE checks and DTLS handshake that follow about 3 ms more, all on the event loop
that forwards media and answers consent checks. Hundreds of them at once starve forwarding, so
`JoinGate` paces them:

- at most `max_handshakes` sessions between their offer and their connection (or failure, or
  `HANDSHAKE_HOLD_S`) at a time;
- at most `rate_per_s` new sessions a second (a token bucket holding `burst`);
- none while the event loop runs late by more than `max_lag_s` (`LoopLag`, smoothed): the
  machine is busier than the rates assume, and established peers come first;
- a join that cannot start at once waits up to `queue_s` in a first-come queue; then, or when
  the queue is full, it is refused (`Busy`). `Retry-After` spreads the refused halls over the
  seconds in which the gate expects to take them, and the clients add jitter.

A priority join (a relay between media servers, the chair's publisher, the second session of a
hall already admitted) skips queue, rate and lag but still counts as a handshake.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from contextlib import suppress

from sfu.errors import SfuError

HANDSHAKE_HOLD_S = 10.0
"""A session holds its handshake slot at most this long (a hall that never connects must not
keep a slot until the worker's 30 s connect timeout)."""
QUEUE_POLL_S = 0.01
LAG_TICK_S = 0.02
LAG_SMOOTHING = 0.2
"""Weight of the newest tick in the smoothed lag (an exponential moving average)."""
MIN_RETRY_AFTER_S = 1
MAX_RETRY_AFTER_S = 60


class Busy(SfuError):
    """Refused for now: the worker is taking joins as fast as it can; come back later."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            503,
            f"this media server is admitting other halls just now; try again in {retry_after_s} s",
        )
        self.retry_after_s = retry_after_s


class LoopLag:
    """How late the event loop runs: a timer every `LAG_TICK_S`, its lateness smoothed."""

    def __init__(self) -> None:
        self.lag_s = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sfu-loop-lag")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_TICK_S
            await asyncio.sleep(LAG_TICK_S)
            late = max(0.0, loop.time() - due)
            self.lag_s += LAG_SMOOTHING * (late - self.lag_s)


class Ticket:
    """One admitted session's handshake slot; `release()` once it connected or ended."""

    def __init__(self, gate: JoinGate | None) -> None:
        self._gate = gate
        self._timer: asyncio.TimerHandle | None = None
        if gate is not None:
            self._timer = asyncio.get_running_loop().call_later(HANDSHAKE_HOLD_S, self.release)

    def release(self) -> None:
        """Give the slot back (idempotent)."""
        gate, self._gate = self._gate, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if gate is not None:
            gate._released()


class JoinGate:
    """Paces the start of new sessions (see the module's docstring). `max_handshakes` 0: off."""

    def __init__(
        self,
        *,
        max_handshakes: int,
        rate_per_s: float,
        burst: int,
        queue_s: float,
        max_lag_s: float,
        lag: LoopLag | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_handshakes = max_handshakes
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self.queue_s = queue_s
        self.max_lag_s = max_lag_s
        self.lag = lag or LoopLag()
        self._clock = clock
        self._tokens = float(self.burst)
        self._filled_at = clock()
        self._in_flight = 0
        self._queue: deque[object] = deque()
        # halls refused lately, expected back at the gate's rate: later ones are told later
        self._owed = 0.0
        self._owed_at = clock()
        self.admitted = 0
        self.refused = 0
        # refusals by what held the gate shut at that moment (`holdup`)
        self.refused_by: Counter[str] = Counter()

    @property
    def enabled(self) -> bool:
        return self.max_handshakes > 0

    @property
    def in_flight(self) -> int:
        """Sessions admitted and not yet connected (or ended)."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self.enabled and self.max_lag_s > 0:
            self.lag.start()

    async def close(self) -> None:
        await self.lag.close()

    async def admit(
        self, *, priority: bool = False, promoted: Callable[[], bool] | None = None
    ) -> Ticket:
        """A handshake slot for a new session, waiting for one up to `queue_s`; raises `Busy`.
        `promoted`, asked while the join waits, makes it a priority join once true."""
        if not self.enabled:
            return Ticket(None)
        if priority:
            return self._take(token=False)
        if not self._queue and self._ready():
            return self._take(token=True)
        if len(self._queue) >= max(1, math.ceil(self.rate_per_s * self.queue_s)):
            raise self._refuse("queue full")
        place = object()
        self._queue.append(place)
        deadline = self._clock() + self.queue_s
        try:
            while True:
                await asyncio.sleep(QUEUE_POLL_S)
                if promoted is not None and promoted():
                    return self._take(token=False)
                if self._queue[0] is place and self._ready():
                    return self._take(token=True)
                if self._clock() >= deadline:
                    raise self._refuse(self.holdup() or "queue")
        finally:
            self._queue.remove(place)

    def _ready(self) -> bool:
        return self.holdup() is None

    def holdup(self) -> str | None:
        """What keeps a join from starting now: "handshakes" (as many as allowed under way),
        "rate" (no token left), "loop lag"; None: nothing."""
        self._refill()
        if self._in_flight >= self.max_handshakes:
            return "handshakes"
        if self._tokens < 1:
            return "rate"
        if self.max_lag_s > 0 and self.lag.lag_s > self.max_lag_s:
            return "loop lag"
        return None

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._filled_at) * self.rate_per_s)
        self._filled_at = now

    def _take(self, *, token: bool) -> Ticket:
        if token:
            self._tokens -= 1
        self._in_flight += 1
        self.admitted += 1
        return Ticket(self)

    def _released(self) -> None:
        self._in_flight -= 1

    def retry_after_s(self) -> int:
        """When a hall refused now should come back: after the halls ahead of it (waiting,
        in handshake, refused lately and not yet back) at the gate's rate."""
        now = self._clock()
        self._owed = max(0.0, self._owed - (now - self._owed_at) * self.rate_per_s)
        self._owed_at = now
        ahead = len(self._queue) + self._in_flight + self._owed
        self._owed += 1
        seconds = math.ceil((ahead + 1) / max(self.rate_per_s, 0.01))
        return min(MAX_RETRY_AFTER_S, max(MIN_RETRY_AFTER_S, seconds))

    def _refuse(self, reason: str) -> Busy:
        self.refused += 1
        self.refused_by[reason] += 1
        return Busy(self.retry_after_s())
