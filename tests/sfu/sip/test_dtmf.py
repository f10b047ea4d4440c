"""RFC 4733 digits: each key press once, however often its end packet is repeated."""

from __future__ import annotations

import pytest

from sfu.sip.dtmf import DtmfReceiver, encode_event, normalise_digits, parse_event


def test_dtmf_event_payload_round_trip() -> None:
    event = parse_event(encode_event("#", end=True, duration=800, volume=7))
    assert (event.digit, event.end, event.volume, event.duration) == ("#", True, 7, 800)
    assert parse_event(bytes((16, 0x80, 0, 10))).digit is None  # flash: not a DTMF key
    with pytest.raises(ValueError):
        parse_event(b"\x01\x02")


def test_dtmf_receiver_counts_retransmitted_ends_once() -> None:
    receiver = DtmfReceiver()
    heard: list[str] = []
    for timestamp, digit in ((1000, "*"), (3000, "9")):
        for duration in (160, 320, 480):
            heard += receiver.receive(timestamp, encode_event(digit, end=False, duration=duration))
        for _ in range(3):  # the end packet, sent three times (RFC 4733 §2.5.1.4)
            heard += receiver.receive(timestamp, encode_event(digit, end=True, duration=640))
    assert heard == ["*", "9"]


def test_dtmf_receiver_reports_a_press_whose_end_was_lost() -> None:
    receiver = DtmfReceiver()
    assert receiver.receive(1000, encode_event("5", end=False, duration=160)) == []
    assert receiver.receive(5000, encode_event("6", end=False, duration=160)) == ["5"]
    assert receiver.receive(5000, encode_event("6", end=True, duration=480)) == ["6"]
    assert receiver.receive(1000, encode_event("5", end=True, duration=480)) == []  # late: once
    assert receiver.receive(7000, b"\x00") == []  # truncated


def test_dtmf_digits_from_sip_info_are_checked() -> None:
    assert normalise_digits("12*#ab") == "12*#AB"
    with pytest.raises(ValueError):
        normalise_digits("12x")
