"""Recurrence in words, both ways."""

from __future__ import annotations

from datetime import time

import pytest

from confbridge.web.i18n import translations
from confbridge.web.recurrence_words import RecurrenceWordsError, describe, parse

TZ = "Asia/Ho_Chi_Minh"


@pytest.mark.parametrize(
    ("words", "rrule"),
    [
        ("hằng tuần vào thứ Hai", "FREQ=WEEKLY;BYDAY=MO"),
        ("Hàng tuần vào Thứ 2", "FREQ=WEEKLY;BYDAY=MO"),
        ("weekly on Monday", "FREQ=WEEKLY;BYDAY=MO"),
        ("hằng tháng vào thứ Sáu đầu tiên", "FREQ=MONTHLY;BYDAY=1FR"),
        ("monthly on the first Friday", "FREQ=MONTHLY;BYDAY=1FR"),
        ("thứ Sáu cuối cùng hằng tháng", "FREQ=MONTHLY;BYDAY=-1FR"),
        ("hằng tháng vào thứ Hai tuần thứ 3", "FREQ=MONTHLY;BYDAY=3MO"),
        ("hằng tháng vào ngày 15", "FREQ=MONTHLY;BYMONTHDAY=15"),
        ("ngày cuối tháng", "FREQ=MONTHLY;BYMONTHDAY=-1"),
        ("cách 2 tuần vào thứ Ba, thứ Năm", "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH"),
        (
            "every 2 weeks on Tuesday until 2027-01-31",
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;UNTIL=20270131",
        ),
        ("ngày làm việc đến ngày 31/12/2026", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;UNTIL=20261231"),
        ("hằng ngày, 10 lần", "FREQ=DAILY;COUNT=10"),
        ("hằng năm", "FREQ=YEARLY"),
        ("FREQ=WEEKLY;BYDAY=WE", "FREQ=WEEKLY;BYDAY=WE"),
    ],
)
def test_parse_words_to_rrule(words: str, rrule: str) -> None:
    assert parse(words).rrule == rrule


def test_parse_reads_a_time_of_day() -> None:
    assert parse("hằng tuần vào thứ Hai lúc 7h30").at == time(7, 30)
    assert parse("weekly on Friday at 14:00").at == time(14, 0)
    assert parse("hằng tuần vào thứ Hai").at is None


@pytest.mark.parametrize(
    ("words", "not_understood"),
    [
        ("thỉnh thoảng", "thỉnh thoảng"),  # echoed as typed, with its accents
        ("hằng tuần vào thứ Hai và bla", "bla"),
        ("weekly on the first Monday", "1MO"),
        ("hằng tuần lúc 25:00", "25:00"),
        ("", ""),
    ],
)
def test_parse_refuses_words_it_does_not_know(words: str, not_understood: str) -> None:
    with pytest.raises(RecurrenceWordsError) as caught:
        parse(words)
    assert not_understood in caught.value.words


@pytest.mark.parametrize("language", ["vi", "en"])
@pytest.mark.parametrize(
    "rrule",
    [
        "FREQ=WEEKLY;BYDAY=MO",
        "FREQ=MONTHLY;BYDAY=1FR",
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYDAY=2TU",
        "FREQ=MONTHLY;BYDAY=3MO",
        "FREQ=MONTHLY;BYMONTHDAY=15",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH",
        "FREQ=DAILY;COUNT=10",
        "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
        "FREQ=WEEKLY;BYDAY=MO;UNTIL=20261231T165959Z",
        "FREQ=DAILY;COUNT=1",
    ],
)
def test_describe_reads_back_to_the_same_rule(rrule: str, language: str) -> None:
    words = describe(rrule, translations(language).gettext, tz=TZ, language=language)
    assert words is not None
    expected = rrule.replace("UNTIL=20261231T165959Z", "UNTIL=20261231")
    assert parse(words).rrule == expected, words


def test_describe_in_vietnamese() -> None:
    gettext = translations("vi").gettext
    assert describe("FREQ=WEEKLY;BYDAY=MO", gettext, tz=TZ, language="vi") == (
        "hằng tuần vào thứ Hai"
    )
    assert describe("FREQ=MONTHLY;BYDAY=1FR", gettext, tz=TZ, language="vi") == (
        "hằng tháng vào thứ Sáu đầu tiên"
    )


def test_describe_gives_up_on_parts_without_words() -> None:
    assert describe("FREQ=MONTHLY;BYSETPOS=1;BYDAY=MO", str, tz=TZ, language="en") is None
    assert describe("FREQ=HOURLY", str, tz=TZ, language="en") is None


@pytest.mark.parametrize(
    "words",
    ["một lần", "Không lặp lại", "chỉ họp một lần", "1 lần", "họp một lần lúc 14:00", "once",
     "does not repeat", "one-off"],
)  # fmt: skip
def test_parse_a_meeting_that_does_not_repeat(words: str) -> None:
    assert parse(words).rrule == "FREQ=DAILY;COUNT=1"


def test_parse_once_a_week_is_not_a_single_meeting() -> None:
    assert parse("mỗi tuần một lần vào thứ Hai").rrule == "FREQ=WEEKLY;BYDAY=MO"
    assert parse("hằng tuần vào thứ Hai, 1 lần").rrule == "FREQ=WEEKLY;BYDAY=MO;COUNT=1"


def test_describe_a_single_meeting() -> None:
    gettext = translations("vi").gettext
    assert describe("FREQ=DAILY;COUNT=1", gettext, tz=TZ, language="vi") == "không lặp lại"
