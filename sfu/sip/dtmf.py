"""DTMF digits of a SIP leg: RFC 4733 telephone-events in RTP, and digits relayed as SIP INFO.

A key press is one event whose packets share an RTP timestamp; the sender repeats the last
packet (the E bit set) up to three times (RFC 4733 §2.5.1.4), so a digit is reported once per
timestamp. An event whose end packets were all lost is reported when the next one starts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from struct import Struct

from confbridge_kernel.sip_legs import DTMF_DIGITS

_EVENT = Struct("!BBH")
# RFC 4733 §3.2: events 0-9, *, #, A-D are the DTMF keys; others (flash, tones) are ignored.
_DIGITS_BY_EVENT = dict(enumerate("0123456789*#ABCD"))
_EVENTS_BY_DIGIT = {digit: event for event, digit in _DIGITS_BY_EVENT.items()}
_REMEMBERED_EVENTS = 16
assert set(DTMF_DIGITS) == set(_EVENTS_BY_DIGIT)


@dataclass(frozen=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 payload."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        """The DTMF key, or None for another kind of event."""
        return _DIGITS_BY_EVENT.get(self.event)


def parse_event(payload: bytes) -> TelephoneEvent:
    """Read a telephone-event payload; ValueError if it is shorter than 4 bytes."""
    if len(payload) < _EVENT.size:
        raise ValueError("a telephone-event payload has 4 bytes")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def encode_event(digit: str, *, end: bool, duration: int, volume: int = 10) -> bytes:
    """The payload of one telephone-event packet for `digit` (a sender's side, for tests and
    tools)."""
    event = _EVENTS_BY_DIGIT[digit.upper()]
    return _EVENT.pack(event, (0x80 if end else 0) | (volume & 0x3F), duration & 0xFFFF)


class DtmfReceiver:
    """Turns a leg's telephone-event packets into digits, each press once."""

    def __init__(self) -> None:
        self._done: deque[int] = deque(maxlen=_REMEMBERED_EVENTS)
        self._pending: tuple[int, str] | None = None  # (timestamp, digit) begun, not ended

    def receive(self, timestamp: int, payload: bytes) -> list[str]:
        """The digits completed by this packet (usually none or one)."""
        try:
            event = parse_event(payload)
        except ValueError:
            return []
        digit = event.digit
        if digit is None or timestamp in self._done:
            return []
        digits = []
        pending = self._pending
        if pending is not None and pending[0] != timestamp:
            # the previous press never ended (its end packets were lost): it still counts
            self._done.append(pending[0])
            digits.append(pending[1])
        self._pending = None
        if event.end:
            self._done.append(timestamp)
            digits.append(digit)
        else:
            self._pending = (timestamp, digit)
        return digits


def normalise_digits(digits: str) -> str:
    """Digits as SIP INFO gives them, upper case; ValueError for anything else."""
    upper = digits.upper()
    if not upper or any(ch not in DTMF_DIGITS for ch in upper):
        raise ValueError(f"DTMF digits are {DTMF_DIGITS}")
    return upper
