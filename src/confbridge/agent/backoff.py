"""Capped exponential back-off with jitter, for rejoining and reconnecting; and the wait a
server asked for (`Retry-After`), which takes its place."""

from __future__ import annotations

import random

INITIAL_DELAY_S = 1.0
MAX_DELAY_S = 30.0
JITTER_RATIO = 0.2
MAX_RETRY_AFTER_S = 300.0
"""A `Retry-After` longer than this is taken as this (a misconfigured server must not park a
hall for hours)."""


def retry_after_delay_s(retry_after_s: float) -> float:
    """How long to wait when the server said `Retry-After`: at least that long, plus up to
    20 % so that the halls it turned away do not all come back at the same instant."""
    base = min(max(retry_after_s, 0.0), MAX_RETRY_AFTER_S)
    return base * (1 + JITTER_RATIO * random.random()) + JITTER_RATIO * random.random()


class Backoff:
    """1 s, 2 s, 4 s ... up to `max_s`, each ±20 % so that halls do not rejoin in lockstep."""

    def __init__(self, initial_s: float = INITIAL_DELAY_S, max_s: float = MAX_DELAY_S) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.attempts = 0

    def next_delay_s(self) -> float:
        base = min(self.initial_s * 2**self.attempts, self.max_s)
        self.attempts += 1
        return base * (1 + JITTER_RATIO * (2 * random.random() - 1))

    def reset(self) -> None:
        self.attempts = 0


def retry_delay_s(backoff: Backoff, error: Exception | None) -> float:
    """The wait before the next attempt: what the control plane or the media server asked
    for (an error's `retry_after_s`, from a 503 with `Retry-After`; jittered) instead of the
    back-off, which then does not grow."""
    told = getattr(error, "retry_after_s", None)
    if isinstance(told, int | float):
        return retry_after_delay_s(told)
    return backoff.next_delay_s()
