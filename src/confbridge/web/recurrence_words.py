"""Recurrence in words, in Vietnamese or English, to an RFC 5545 RRULE and back.

Understood (accents and case do not matter; "hàng" and "hằng" both work):

- hằng ngày / daily; ngày làm việc / weekdays (Monday to Friday);
- hằng tuần vào thứ Hai, thứ Năm / weekly on Monday and Thursday; cách 2 tuần / every 2 weeks;
- hằng tháng vào thứ Sáu đầu tiên / monthly on the first Friday; ... cuối cùng / last;
  ... tuần thứ 3 / the third ...; hằng tháng vào ngày 15 / monthly on day 15; ngày cuối tháng;
- hằng năm / yearly;
- an end: đến ngày 31/12/2026 / until 2026-12-31, or 10 lần / 10 times;
- a time of day: lúc 7:30, 7h30, 7 giờ 30 / at 07:30 (it then replaces the start time);
- once: một lần, không lặp lại / once, does not repeat (a single meeting: FREQ=DAILY;COUNT=1).

A raw RRULE value (FREQ=...) is taken as it is. Words the parser does not know are refused,
naming them, rather than guessed around.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
WORKING_DAYS = ("MO", "TU", "WE", "TH", "FR")
MAX_INTERVAL = 52
MAX_COUNT = 1000

_VI_DAYS = {
    "MO": r"thu hai|thu 2",
    "TU": r"thu ba|thu 3",
    "WE": r"thu tu|thu 4",
    "TH": r"thu nam|thu 5",
    "FR": r"thu sau|thu 6",
    "SA": r"thu bay|thu 7",
    "SU": r"chu nhat|cn",
}
_EN_DAYS = {
    "MO": r"mondays?",
    "TU": r"tuesdays?",
    "WE": r"wednesdays?",
    "TH": r"thursdays?",
    "FR": r"fridays?",
    "SA": r"saturdays?",
    "SU": r"sundays?",
}
_DAY_PATTERN = "|".join(f"(?P<{code}>{_VI_DAYS[code]}|{_EN_DAYS[code]})" for code in WEEKDAY_CODES)
_EN_ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "last": -1,
}  # fmt: skip
_VI_ORDINALS = {"dau tien": 1, "thu nhat": 1, "tuan dau": 1, "thu nhi": 2, "cuoi cung": -1}
_FREQ_WORDS = {
    "DAILY": r"hang ngay|moi ngay|daily|every day",
    "WEEKLY": r"hang tuan|moi tuan|weekly|every week",
    "MONTHLY": r"hang thang|moi thang|monthly|every month",
    "YEARLY": r"hang nam|moi nam|yearly|annually|every year",
}
_UNIT_FREQ = {
    "ngay": "DAILY", "day": "DAILY", "days": "DAILY",
    "tuan": "WEEKLY", "week": "WEEKLY", "weeks": "WEEKLY",
    "thang": "MONTHLY", "month": "MONTHLY", "months": "MONTHLY",
    "nam": "YEARLY", "year": "YEARLY", "years": "YEARLY",
}  # fmt: skip
# Words that carry no meaning of their own here.
_FILLER = {
    "vao", "luc", "cac", "cua", "va", "hop", "lich", "trong", "moi", "mot", "lan", "thang",
    "tuan", "ngay", "on", "the", "at", "and", "of", "every", "each", "month", "week", "in",
    "a", "from", "starting", "meeting", "briefing",
}  # fmt: skip


# The whole of the words (a time aside) saying the meeting happens once.
_ONCE = re.compile(
    r"(?:chi )?(?:hop )?(?:mot lan|1 lan|mot buoi|khong lap lai|khong lap|duy nhat|"
    r"once|one time|one-off|single meeting|does not repeat|no repeat)(?: duy nhat)?"
)
ONCE_RRULE = "FREQ=DAILY;COUNT=1"
ONCE_WORDS = {"vi": "không lặp lại", "en": "does not repeat"}

_TIME = r"(?:luc |at )?(\d{1,2})(?::|h| ?gio ?)(\d{2})?(?: ?(am|pm|sang|chieu))?"
_UNTIL = (
    r"(?:den ngay|den het ngay|den|until|through) "
    r"(\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4})"
)


class RecurrenceWordsError(ValueError):
    """The words cannot be turned into a rule; `words` are the ones not understood."""

    def __init__(self, words: str = "") -> None:
        super().__init__(words)
        self.words = words


@dataclass(frozen=True)
class Recurrence:
    rrule: str
    at: time | None = None  # a time of day given in the words


def normalise(text: str) -> str:
    """Lower case, without accents (đ → d), single spaces."""
    decomposed = unicodedata.normalize("NFD", text.lower().replace("đ", "d"))
    stripped = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return re.sub(r"[\s,;.]+", " ", stripped).strip()


def _take(pattern: str, text: str) -> tuple[re.Match[str] | None, str]:
    """Find `pattern` as whole words and cut it out of `text`."""
    match = re.search(rf"(?<![\w/:-])(?:{pattern})(?![\w/:-])", text)
    if match is None:
        return None, text
    return match, f"{text[: match.start()]} {text[match.end() :]}"


def _parse_date(text: str) -> date:
    if "/" in text:
        day, month, year = (int(p) for p in text.split("/"))
        return date(year, month, day)
    return date.fromisoformat(text)


def _take_time(rest: str) -> tuple[time | None, str]:
    """The time of day, if one is given (12-hour words are read as such)."""
    match, rest = _take(_TIME, rest)
    if not match:
        return None, rest
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if match.group(3) in ("pm", "chieu") and hour < 12:
        hour += 12
    if hour > 23 or minute > 59:
        raise RecurrenceWordsError(match.group(0))
    return time(hour, minute), rest


def _take_end(rest: str, parts: dict[str, str]) -> str:
    """The last date (UNTIL) and the number of meetings (COUNT), into `parts`."""
    match, rest = _take(_UNTIL, rest)
    if match:
        try:
            parts["UNTIL"] = _parse_date(match.group(1)).strftime("%Y%m%d")
        except ValueError:
            raise RecurrenceWordsError(match.group(1)) from None
    match, rest = _take(r"(\d{1,4}) (?:lan|buoi|times|occurrences)", rest)
    if match:
        count = int(match.group(1))
        if not 1 <= count <= MAX_COUNT:
            raise RecurrenceWordsError(match.group(0))
        parts["COUNT"] = str(count)
    return rest


def _take_interval(rest: str) -> tuple[int, str | None, str]:
    """Every N days, weeks, months or years: the interval and the frequency it implies (1 and
    None when the words do not say)."""
    match, rest = _take(
        r"(?:every|moi|cach|cu) (\d{1,2}) (ngay|tuan|thang|nam|days?|weeks?|months?|years?)"
        r"(?: mot lan| 1 lan)?|(\d{1,2}) (ngay|tuan|thang|nam) (?:mot|1) lan",
        rest,
    )
    if not match:
        return 1, None, rest
    number = match.group(1) or match.group(3)
    unit = match.group(2) or match.group(4)
    interval = int(number)
    if not 1 <= interval <= MAX_INTERVAL:
        raise RecurrenceWordsError(match.group(0))
    return interval, _UNIT_FREQ[unit], rest


def _take_weekdays(rest: str) -> tuple[list[str], list[str], str]:
    """The weekdays named (MO, TU, ...) and those with an ordinal ("second Tuesday": 2TU)."""
    days: list[str] = []
    ordinal_days: list[str] = []
    en_ordinals = "|".join(_EN_ORDINALS)
    vi_ordinals = "|".join(_VI_ORDINALS)
    while True:
        match, rest = _take(rf"({en_ordinals}) ({_DAY_PATTERN})", rest)
        if match:
            code = next(c for c in WEEKDAY_CODES if match.group(c))
            ordinal_days.append(f"{_EN_ORDINALS[match.group(1)]}{code}")
            continue
        match, rest = _take(rf"({_DAY_PATTERN}) (?:({vi_ordinals}|cuoi)|tuan thu (\d))", rest)
        if match:
            code = next(c for c in WEEKDAY_CODES if match.group(c))
            number = match.group(len(WEEKDAY_CODES) + 3)
            word = match.group(len(WEEKDAY_CODES) + 2)
            nth = int(number) if number else _VI_ORDINALS.get(word or "", -1)
            if not 1 <= abs(nth) <= 5:
                raise RecurrenceWordsError(match.group(0))
            ordinal_days.append(f"{nth}{code}")
            continue
        match, rest = _take(_DAY_PATTERN, rest)
        if match:
            days.append(next(c for c in WEEKDAY_CODES if match.group(c)))
            continue
        return days, ordinal_days, rest


def parse(text: str) -> Recurrence:
    """Turn recurrence words into an RRULE value (and a time, if one was given)."""
    raw = text.strip()
    if not raw:
        raise RecurrenceWordsError()
    if re.match(r"(?i)(rrule:)?\s*freq=", raw):
        return Recurrence(raw.upper().removeprefix("RRULE:").strip())
    rest = normalise(raw)
    parts: dict[str, str] = {}

    at, rest = _take_time(rest)
    if _ONCE.fullmatch(rest.strip()):
        return Recurrence(ONCE_RRULE, at)
    rest = _take_end(rest, parts)
    interval, freq, rest = _take_interval(rest)
    days: list[str] = []
    match, rest = _take(r"ngay lam viec|ngay thuong|weekdays|working days", rest)
    if match:
        days = list(WORKING_DAYS)
        freq = freq or "WEEKLY"
    match, rest = _take(r"ngay cuoi thang|ngay cuoi cung cua thang|last day of the month", rest)
    if match:
        parts["BYMONTHDAY"] = "-1"
        freq = freq or "MONTHLY"
    for name, pattern in _FREQ_WORDS.items():
        match, rest = _take(pattern, rest)
        if match:
            if freq is not None and freq != name:
                raise RecurrenceWordsError(match.group(0))
            freq = name

    named_days, ordinal_days, rest = _take_weekdays(rest)
    days += named_days
    if ordinal_days:
        freq = freq or "MONTHLY"
        if freq != "MONTHLY":
            raise RecurrenceWordsError(" ".join(ordinal_days))

    match, rest = _take(r"(?:ngay|day|on the) (\d{1,2})(?:st|nd|rd|th)?", rest)
    if match:
        day_of_month = int(match.group(1))
        if not 1 <= day_of_month <= 31:
            raise RecurrenceWordsError(match.group(0))
        parts["BYMONTHDAY"] = str(day_of_month)
        freq = freq or "MONTHLY"

    leftover = [w for w in rest.split() if w not in _FILLER]
    if leftover:
        raise RecurrenceWordsError(_as_typed(raw, leftover))
    if freq is None:
        if not days:
            raise RecurrenceWordsError(raw)
        freq = "WEEKLY"
    if "BYMONTHDAY" in parts and freq not in ("MONTHLY", "YEARLY"):
        raise RecurrenceWordsError(raw)
    rule = [f"FREQ={freq}"]
    if interval > 1:
        rule.append(f"INTERVAL={interval}")
    byday = [d for d in WEEKDAY_CODES if d in days] + ordinal_days
    if byday:
        rule.append("BYDAY=" + ",".join(byday))
    for key in ("BYMONTHDAY", "COUNT", "UNTIL"):
        if key in parts:
            rule.append(f"{key}={parts[key]}")
    return Recurrence(";".join(rule), at)


def _as_typed(raw: str, words: list[str]) -> str:
    """The words not understood as the user typed them (with their accents), in order."""
    wanted = set(words)
    typed = [w for w in re.split(r"[\s,;.]+", raw) if w and normalise(w) in wanted]
    return " ".join(typed) or " ".join(words)


def is_once(rrule: str) -> bool:
    """Whether the rule gives a single meeting (COUNT=1, whatever the frequency)."""
    fields = dict(p.split("=", 1) for p in rrule.upper().split(";") if "=" in p)
    return fields.get("COUNT") == "1" and not fields.keys() - {"FREQ", "COUNT", "INTERVAL", "WKST"}


def describe(rrule: str, gettext: Callable[[str], str], *, tz: str, language: str) -> str | None:
    """The rule in words of the page's language (the parser reads them back), or None when
    the rule uses parts that have no words here."""
    _ = gettext
    try:
        fields = dict(part.split("=", 1) for part in rrule.upper().split(";"))
    except ValueError:
        return None
    known = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "COUNT", "UNTIL", "WKST"}
    if not fields.keys() <= known:
        return None
    if is_once(rrule):
        return _("does not repeat")
    interval = int(fields.get("INTERVAL", "1") or 1)
    freq = fields.get("FREQ")
    single = {"DAILY": _("daily"), "WEEKLY": _("weekly"), "MONTHLY": _("monthly"),
              "YEARLY": _("yearly")}  # fmt: skip
    several = {"DAILY": _("every %(n)s days"), "WEEKLY": _("every %(n)s weeks"),
               "MONTHLY": _("every %(n)s months"), "YEARLY": _("every %(n)s years")}  # fmt: skip
    if freq not in single:
        return None
    words = single[freq] if interval == 1 else several[freq] % {"n": interval}
    day_names = {
        "MO": _("Monday"), "TU": _("Tuesday"), "WE": _("Wednesday"), "TH": _("Thursday"),
        "FR": _("Friday"), "SA": _("Saturday"), "SU": _("Sunday"),
    }  # fmt: skip
    ordinals = {1: _("first"), 2: _("second"), 3: _("third"), 4: _("fourth"), -1: _("last")}
    byday = [d for d in fields.get("BYDAY", "").split(",") if d]
    if byday:
        plain = [d for d in byday if d in day_names]
        if freq == "DAILY" and plain == list(WORKING_DAYS):
            words = _("on weekdays") if interval == 1 else words
            plain = []
        names: list[str] = []
        if plain == list(WORKING_DAYS):
            names.append(_("weekdays"))
        else:
            names += [day_names[d] for d in plain]
        for item in byday:
            if item in day_names:
                continue
            match = re.fullmatch(r"([+-]?\d)([A-Z]{2})", item)
            if not match or int(match.group(1)) not in ordinals or match.group(2) not in day_names:
                return None
            names.append(
                _("the %(ordinal)s %(day)s")
                % {"ordinal": ordinals[int(match.group(1))], "day": day_names[match.group(2)]}
            )
        if names:
            words += " " + _("on %(days)s") % {"days": ", ".join(names)}
    if "BYMONTHDAY" in fields:
        value = fields["BYMONTHDAY"]
        if value == "-1":
            words += " " + _("on the last day of the month")
        elif value.isdigit():
            words += " " + _("on day %(day)s") % {"day": value}
        else:
            return None
    if "COUNT" in fields:
        words += ", " + _("%(count)s times") % {"count": fields["COUNT"]}
    if "UNTIL" in fields:
        until = _until_date(fields["UNTIL"], tz)
        if until is None:
            return None
        shown = until.strftime("%d/%m/%Y") if language == "vi" else until.isoformat()
        words += " " + _("until %(date)s") % {"date": shown}
    return words


def _until_date(value: str, tz: str) -> date | None:
    try:
        if value.endswith("Z"):
            instant = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            return instant.astimezone(ZoneInfo(tz)).date()
        return datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        return None
