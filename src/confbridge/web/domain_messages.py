"""Domain errors in the reader's language.

The services speak English: the API's callers are programs and IT staff reading logs. A page
shows a person what went wrong in their language and what to do, so every message a page may
show passes through `explain`: known messages are matched by their (stable) start and
rephrased from the catalogue, with the values they carry; anything else gets the plain
sentence of its kind, never the English text.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date

from confbridge.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    TooManyRequests,
    Unavailable,
)
from confbridge.web.context import Page
from confbridge.web.labels import N_

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    message: str  # a catalogue message id; its %(name)s come from the pattern's named groups


def _rule(pattern: str, message: str) -> Rule:
    return Rule(re.compile(pattern), message)


NOT_A_DATE = N_("“%(value)s” is not a date. Write dates as dd/mm/yyyy.")

RULES: tuple[Rule, ...] = (
    # booking: the repeat rule (RRULE) and the plan it gives
    _rule(
        r"^rrule: COUNT and UNTIL",
        N_("A series ends either after a number of meetings or on a date, not both."),
    ),
    _rule(
        r"^rrule: (.*several meetings a day|FREQ must be one of)",
        N_("A series meets at most once a day."),
    ),
    _rule(
        r"^rrule: the rule never occurs",
        N_("The repeat rule never gives a meeting. Choose other days."),
    ),
    _rule(
        r"^(rrule: )?the rule gives more than (?P<limit>\d+)",
        N_(
            "The repeat rule gives more than %(limit)s meetings. Give an end date or a number "
            "of meetings, or repeat less often."
        ),
    ),
    _rule(
        r"^the rule gives no occurrence before (?P<day>\d{4}-\d\d-\d\d)",
        N_("The repeat rule gives no meeting before %(day)s. Check the first date and the end."),
    ),
    _rule(
        r"^rrule: UNTIL value '(?P<value>[^']*)'",
        NOT_A_DATE,
    ),
    _rule(
        r"^rrule: ",
        N_("The repeat rule cannot be used. Write it in words, e.g. “weekly on Monday”."),
    ),
    _rule(r"^exdates: '(?P<value>[^']*)' is not a date", NOT_A_DATE),
    _rule(
        r"^occurrences of this series would overlap each other",
        N_(
            "Meetings of this series would overlap each other: the duration is longer than "
            "the time between them."
        ),
    ),
    _rule(r"^duration_min: at most (?P<max>\d+)", N_("A meeting lasts at most %(max)s minutes.")),
    _rule(r"^archived sites cannot be booked", N_("Archived sites cannot be booked.")),
    _rule(r"^SIP guests cannot be invited", N_("SIP guests cannot be invited to a series.")),
    _rule(r"^unknown (site|unit) ids", N_("Some chosen sites or units no longer exist.")),
    _rule(
        r"^\d+ booking\(s\) would overlap",
        N_("The booking clashes with meetings already booked for the same sites."),
    ),
    _rule(
        r"has ended and can no longer be changed$|^the series has ended$|^series \d+ has ended$",
        N_("The series has ended and can no longer be changed."),
    ),
    _rule(
        r"^the new time overlaps another meeting of this series",
        N_("The new time overlaps another meeting of this series."),
    ),
    _rule(
        r"^the meeting of (?P<day>\d{4}-\d\d-\d\d) was already",
        N_("The meeting of %(day)s has already been decided."),
    ),
    _rule(r"^no free meeting number", N_("No free meeting number was found; try again.")),
    # reports
    _rule(r"^(from|to): '(?P<value>[^']*)' is not a date", NOT_A_DATE),
    _rule(
        r"^(from|to): .*(year|range)",
        N_("The period's dates are out of range. Choose a year between 2000 and 2100."),
    ),
    _rule(
        r"^from: (?P<from>\S+) is after to: (?P<to>\S+)",
        N_("The period starts on %(from)s, after its end on %(to)s."),
    ),
    _rule(r"^the period may span at most", N_("A report covers at most three years.")),
    _rule(r"^unit_id: unit \d+ does not exist|^no unit named", N_("This unit does not exist.")),
    _rule(r"units are named", N_("Several units have this name; choose one from the list.")),
    # media servers and the floor
    _rule(
        r"^no media server has registered",
        N_("No media server has started yet; try again in a moment."),
    ),
    _rule(
        r"^no media server is available",
        N_(
            "No media server is available now (all are stopped, draining or full). "
            "Tell the IT staff."
        ),
    ),
    _rule(
        r"^the meeting room is not open yet",
        N_("The meeting room is not open yet: it opens when a site joins."),
    ),
    _rule(r"^the SFU worker refused", N_("The media server refused the action; try again.")),
    _rule(r"has been cancelled$", N_("This meeting has been cancelled.")),
    _rule(
        r"^joining opens at (?P<at>[\d-]+ [\d:]+)",
        N_("The meeting can be joined from %(at)s."),
    ),
    _rule(r"^the meeting ended at (?P<at>[\d-]+ [\d:]+)", N_("The meeting ended at %(at)s.")),
    _rule(r"^site \d+ .*is not invited", N_("This site is not invited to the meeting.")),
    _rule(r"needs a site_id$", N_("Choose a site for this action.")),
    # a site's SIP address
    _rule(
        r"^sip_uri: not a SIP address: needs a user part",
        N_("The address needs a user part: user@host, e.g. sip:phonghop@rooms.example.vn."),
    ),
    _rule(
        r"^sip_uri: not a SIP address: must start with sip",
        N_("The address must start with sip: or sips:, e.g. sip:phonghop@rooms.example.vn."),
    ),
    _rule(
        r"^sip_uri: not a SIP address",
        N_("This is not a SIP address; write one such as sip:phonghop@rooms.example.vn."),
    ),
    _rule(
        r"^sip_uri: (?P<uri>\S+) is already the address of site '(?P<site>.*)'$",
        N_("%(uri)s is already the address of the site %(site)s."),
    ),
    # administration: units, sites, users, attendance corrections
    _rule(r"^name: give a name", N_("Give a name.")),
    _rule(r"^name: at most (?P<max>\d+)", N_("A name has at most %(max)s characters.")),
    _rule(r"^name: must be one line", N_("A name is one line of text.")),
    _rule(
        r"^a unit named '(?P<name>.*)' already exists",
        N_("A unit named %(name)s already exists there."),
    ),
    _rule(
        r"^a unit with code '(?P<code>.*)' already exists",
        N_("A unit with code %(code)s already exists."),
    ),
    _rule(
        r"^a site named '(?P<name>.*)' already exists",
        N_("A site named %(name)s already exists in this unit."),
    ),
    _rule(
        r"^an? \w+ cannot sit ",
        N_("This kind of unit cannot sit there: choose another kind or another unit above it."),
    ),
    _rule(r"^unit \d+ is disabled", N_("This unit is disabled.")),
    _rule(r"^site \d+ is archived", N_("This site is disabled.")),
    _rule(
        r"^(site|unit) \d+ is still used by (?P<count>\d+) series",
        N_("Still used by %(count)s meeting series: remove it from them (or end them) first."),
    ),
    _rule(r"^(unit|site|user|terminal) \d+ does not exist", N_("This item does not exist.")),
    _rule(r"^no province named", N_("No province has this name or code (34 since July 2025).")),
    _rule(r"^user '(?P<name>.*)' already exists", N_("The username %(name)s is taken.")),
    _rule(
        r"^memberships: you may give roles only in your own units",
        N_("You may give roles only in your own units."),
    ),
    _rule(
        r"has roles outside your units",
        N_("This user has roles outside your units; ask an administrator above."),
    ),
    _rule(
        r"^this is the last active administrator",
        N_(
            "This is the last active administrator of the whole installation: make another "
            "user administrator first."
        ),
    ),
    _rule(
        r"^you cannot (demote or )?disable your own account",
        N_("You cannot disable or demote your own account; ask another administrator."),
    ),
    _rule(
        r"^the password is too short: it needs at least (?P<min>\d+)",
        N_("The password is too short: at least %(min)s characters."),
    ),
    _rule(r"^the password is too long", N_("The password is too long.")),
    _rule(
        r"^the password (may not repeat|may not be the username|is too common)",
        N_("The password is too easy to guess; choose another one."),
    ),
    _rule(r"^terminal \d+ (is|was) revoked", N_("This terminal has been revoked.")),
    _rule(
        r"^occurrence \d+ has not ended yet",
        N_("The meeting has not ended yet; correct its attendance afterwards."),
    ),
    _rule(
        r"^occurrence \d+ was cancelled",
        N_("The meeting was cancelled; it has no attendance."),
    ),
    _rule(r"was not invited to occurrence", N_("This site was not invited to the meeting.")),
    _rule(r"^reason: ", N_("Give the reason for the correction.")),
    # the meeting record: documents and the agenda
    _rule(
        r"^file: larger than the limit of (?P<mb>\d+) MB",
        N_("The file is larger than the limit of %(mb)s MB."),
    ),
    _rule(
        r"^file: (not a|a ZIP archive|an Office package|the document's package)",
        N_(
            "The file is not a PDF, DOCX, XLSX or PPTX document (its content is checked, "
            "not its name)."
        ),
    ),
    _rule(r"^file: the upload was interrupted", N_("The upload was interrupted; try again.")),
    _rule(r"^file: send the document|^the body must be multipart", N_("Choose a file to upload.")),
    _rule(
        r"^agenda_item_id: item \d+ is not on this",
        N_("This agenda item is no longer on the meeting's agenda. Reload the page."),
    ),
    _rule(r"^agenda: at most (?P<max>\d+) items", N_("An agenda has at most %(max)s items.")),
    _rule(r"^(agenda|attendees): site \d+ does not exist", N_("A chosen site no longer exists.")),
    # alerts
    _rule(r"^no alert \d+", N_("This alert no longer exists.")),
    _rule(
        r"^alert \d+ was acknowledged by (?P<who>.+)$",
        N_("This alert was already acknowledged by %(who)s."),
    ),
)

BY_KIND: tuple[tuple[type[DomainError], str], ...] = (
    (NotFound, N_("This item no longer exists. Reload the page.")),
    (Invalid, N_("A value was not accepted. Check the form and try again.")),
    (Conflict, N_("The change does not fit the current state. Reload the page and try again.")),
    (Forbidden, N_("Your role may not do this.")),
    (TooManyRequests, N_("Too many attempts. Try again in a moment.")),
    (Unavailable, N_("The server is busy. Try again in a moment.")),
)
UNKNOWN = N_("The action failed. Try again; if it fails again, tell the IT staff.")


def _local_date(page: Page, text: str) -> str:
    """An ISO date as the page writes dates (dd/mm/yyyy in Vietnamese)."""
    try:
        return page.fmt.date(date.fromisoformat(text))
    except ValueError:
        return text


def _values(page: Page, groups: dict[str, str]) -> dict[str, str]:
    values = {}
    for name, value in groups.items():
        if value is None:
            continue
        if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
            value = _local_date(page, value)
        elif re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", value):
            day, time = value.split(" ")
            value = f"{time} {_local_date(page, day)}"
        values[name] = value
    return values


def explain(page: Page, exc: DomainError) -> str:
    """What `exc` means to the reader of `page`, in the page's language."""
    for rule in RULES:
        match = rule.pattern.search(exc.message)
        if match:
            return page._(rule.message, **_values(page, match.groupdict()))
    log.info("no page wording for %s: %s", type(exc).__name__, exc.message)
    for kind, message in BY_KIND:
        if isinstance(exc, kind):
            return page._(message)
    if exc.status_code >= 500:
        return page._(BY_KIND[-1][1])
    return page._(UNKNOWN)
