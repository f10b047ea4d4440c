"""RRULE validation and expansion: EXDATEs, Vietnamese holidays, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from confbridge.errors import Invalid
from confbridge.meetings.recurrence import Rule, holiday_name, normalise_rrule

FAR = datetime(2027, 12, 31, tzinfo=UTC)


def test_normalise_rrule_accepts_prefix_and_converts_local_until() -> None:
    assert normalise_rrule("RRULE:FREQ=WEEKLY;BYDAY=MO", "Asia/Ho_Chi_Minh") == (
        "FREQ=WEEKLY;BYDAY=MO"
    )
    # RFC 5545 §3.3.10: UNTIL must be UTC with a zoned DTSTART; a local date means its last second.
    assert normalise_rrule("FREQ=DAILY;UNTIL=20260131", "Asia/Ho_Chi_Minh") == (
        "FREQ=DAILY;UNTIL=20260131T165959Z"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "FREQ=MINUTELY",
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=WEEKLY;COUNT=2;UNTIL=20260101",
        "FREQ=WEEKLY;UNTIL=2026",
        "DTSTART:20260101T000000\nRRULE:FREQ=DAILY",
        "garbage",
    ],
)
def test_normalise_rrule_refuses_bad_rules(text: str) -> None:
    with pytest.raises(Invalid, match="rrule"):
        normalise_rrule(text, "Asia/Ho_Chi_Minh")


def test_rule_weekly_starts_in_utc() -> None:
    rule = Rule(
        rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=3",
        dtstart=datetime(2026, 3, 2, 7, 30),
        tz="Asia/Ho_Chi_Minh",
    )
    starts = rule.starts(after_at=None, until_at=FAR, limit=100)
    assert starts == [datetime(2026, 3, d, 0, 30, tzinfo=UTC) for d in (2, 9, 16)]


def test_rule_skips_tet_and_substituted_days() -> None:
    # Tết 2026: 16–20 February; 31 August 2026 is a substituted day off.
    assert holiday_name(date(2026, 2, 17)) is not None
    assert holiday_name(date(2026, 8, 31)) is not None
    rule = Rule(
        rrule="FREQ=DAILY",
        dtstart=datetime(2026, 2, 14, 8, 0),
        tz="Asia/Ho_Chi_Minh",
        skip_holidays=True,
    )
    days = [
        s.date()
        for s in rule.starts(after_at=None, until_at=datetime(2026, 2, 22, tzinfo=UTC), limit=100)
    ]
    assert days == [date(2026, 2, d) for d in (14, 15, 21)]


def test_rule_keeps_holidays_when_asked() -> None:
    rule = Rule(
        rrule="FREQ=DAILY;COUNT=3",
        dtstart=datetime(2026, 2, 16, 8, 0),
        tz="Asia/Ho_Chi_Minh",
        skip_holidays=False,
    )
    assert len(rule.starts(after_at=None, until_at=FAR, limit=10)) == 3


def test_rule_exdates_by_date_and_by_datetime() -> None:
    rule = Rule(
        rrule="FREQ=DAILY;COUNT=4",
        dtstart=datetime(2026, 3, 2, 8, 0),
        tz="Asia/Ho_Chi_Minh",
        exdates=(date(2026, 3, 3), datetime(2026, 3, 5, 8, 0)),
    )
    days = [s.day for s in rule.starts(after_at=None, until_at=FAR, limit=10)]
    assert days == [2, 4]


def test_rule_follows_dst_in_other_zones() -> None:
    rule = Rule(rrule="FREQ=WEEKLY;COUNT=2", dtstart=datetime(2026, 3, 2, 9, 0), tz="Europe/Paris")
    first, second = rule.starts(after_at=None, until_at=FAR, limit=10)
    assert (first.hour, second.hour) == (8, 8)  # CET both weeks
    summer = Rule(
        rrule="FREQ=WEEKLY;COUNT=2", dtstart=datetime(2026, 3, 23, 9, 0), tz="Europe/Paris"
    ).starts(after_at=None, until_at=FAR, limit=10)
    assert [s.hour for s in summer] == [8, 7]  # the clocks change on 29 March


def test_rule_too_many_occurrences_is_refused() -> None:
    rule = Rule(rrule="FREQ=DAILY", dtstart=datetime(2026, 1, 1, 8, 0), tz="Asia/Ho_Chi_Minh")
    with pytest.raises(Invalid, match="more than 10"):
        rule.starts(after_at=None, until_at=FAR, limit=10)


@pytest.mark.parametrize(
    "text",
    [
        "FREQ=DAILY;BYHOUR=7,8",
        "FREQ=WEEKLY;BYDAY=MO;BYMINUTE=0,30",
        "FREQ=DAILY;BYSECOND=1",
        "FREQ=HOURLY",
        "FREQ=MINUTELY;COUNT=3",
        "FREQ=SECONDLY",
    ],
)
def test_normalise_rrule_refuses_sub_daily_rules(text: str) -> None:
    with pytest.raises(Invalid, match="once a day"):
        normalise_rrule(text, "Asia/Ho_Chi_Minh")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "never occurs"),
        ("FREQ=MONTHLY;BYMONTH=4,6;BYMONTHDAY=31,-31", "never occurs"),
        ("FREQ=DAILY;BYSETPOS=-366", "BYSETPOS cannot be used with FREQ=DAILY"),
        ("FREQ=WEEKLY;BYDAY=MO,TU;BYSETPOS=3", "never occurs"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=32", "never occurs"),
        ("FREQ=WEEKLY;BYDAY=1MO", "needs FREQ=MONTHLY or YEARLY"),
        ("FREQ=WEEKLY;BYMONTHDAY=3", "cannot be used with FREQ=WEEKLY"),
        ("FREQ=YEARLY;BYEASTER=0", "not part of RFC 5545"),
    ],
)
def test_normalise_rrule_refuses_rules_that_never_occur_or_break_rfc_5545(
    text: str, needle: str
) -> None:
    with pytest.raises(Invalid, match=needle):
        normalise_rrule(text, "Asia/Ho_Chi_Minh")


NEVER = [
    "FREQ=YEARLY;BYSETPOS=-366;BYMONTH=2",
    "FREQ=YEARLY;BYWEEKNO=53;BYMONTH=6",
    "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6",
    "FREQ=MONTHLY;BYDAY=5MO;BYMONTHDAY=1",
    "FREQ=DAILY;INTERVAL=7;BYDAY=TU",
    "FREQ=YEARLY;INTERVAL=400;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=DAILY;UNTIL=20200101T000000Z",
]


def _count_periods(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the periods (days, weeks, months, years) dateutil looks at."""
    from dateutil import rrule as dateutil_rrule

    counts = {"periods": 0}
    for name in ("ydayset", "mdayset", "wdayset", "ddayset"):
        original = getattr(dateutil_rrule._iterinfo, name)

        def counting(self: object, *args: int, _original: object = original) -> object:
            counts["periods"] += 1
            return _original(self, *args)  # type: ignore[operator]

        monkeypatch.setattr(dateutil_rrule._iterinfo, name, counting)
    return counts


@pytest.mark.parametrize("text", NEVER)
def test_rule_that_never_occurs_is_found_out_within_one_calendar_cycle(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """dateutil would walk such a rule to year 9999 (seconds for a daily rule); the check
    looks at the periods of at most one 400-year cycle plus the window."""
    counts = _count_periods(monkeypatch)
    rule = Rule(rrule=text, dtstart=datetime(2026, 1, 5, 8, 0), tz="Asia/Ho_Chi_Minh")
    with pytest.raises(Invalid, match="never occurs"):
        rule.check_occurs()
    periods_per_year = {"DAILY": 366, "WEEKLY": 53, "MONTHLY": 12, "YEARLY": 1}
    freq = text.split(";")[0].removeprefix("FREQ=")
    assert counts["periods"] <= (400 + 10 + 1) * periods_per_year[freq]


@pytest.mark.parametrize(
    "text",
    ["FREQ=WEEKLY;BYDAY=MO", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=MONTHLY;BYDAY=-1FR"],
)
def test_rule_that_occurs_is_found_at_once(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    counts = _count_periods(monkeypatch)
    Rule(rrule=text, dtstart=datetime(2026, 1, 5, 8, 0), tz="Asia/Ho_Chi_Minh").check_occurs()
    assert counts["periods"] <= 4 * 366


def test_rule_expansion_has_a_step_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from confbridge.meetings import recurrence

    monkeypatch.setattr(recurrence, "MAX_EXPANSION_STEPS", 50)
    rule = Rule(rrule="FREQ=DAILY", dtstart=datetime(2026, 1, 5, 8, 0), tz="Asia/Ho_Chi_Minh")
    with pytest.raises(Invalid, match="more than 50 starts"):
        rule.starts(after_at=None, until_at=FAR, limit=10_000)
