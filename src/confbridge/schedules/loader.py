"""Read a schedule file: YAML → validated models, every value remembering its line.

PyYAML's node tree keeps positions, its plain `safe_load` does not; so the file is composed into
nodes, turned into plain data here alongside a map from path (e.g. `("series", 0, "rrule")`) to
line, and validated with pydantic. Any problem, from a YAML syntax error to an unknown reference,
becomes a `ScheduleError` that names the file and the line.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
)

from confbridge.errors import DomainError, Invalid
from confbridge.meetings.models import MeetingKind, MeetingMode
from confbridge.meetings.recurrence import normalise_rrule
from confbridge.sip_uri import MeetingNumber, Pin, SipUri
from confbridge.sites import divisions
from confbridge.sites import service as site_service
from confbridge.sites.models import UnitKind
from confbridge.text import single_line

Loc = tuple[str | int, ...]

# A few nested aliases can expand to millions of values ("billion laughs"); real files are small.
MAX_VALUES = 200_000
# Meetings are planned within these years; far-off dates overflow time-zone arithmetic.
FIRST_YEAR, LAST_YEAR = 2000, 2199
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_COLLECTION_TAGS = {"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}


class ScheduleError(Invalid):
    """A schedule file cannot be applied; `str()` is `<file>:<line>: <reason>`, one line.

    `line` is None only for problems with the file as a whole (missing, unreadable). A domain
    error too, so that any caller handling those (the CLI, the API) shows it cleanly.
    """

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = re.sub(r"\s*\n\s*", " ", reason.strip())
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {self.reason}")

    def __str__(self) -> str:
        return self.message


# --- models -------------------------------------------------------------------------------


def _valid_key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise ValueError(
            "a key is letters, digits and '.', '_', '/', '-', starting with a letter or digit "
            "(e.g. ha-long/hoi-truong)"
        )
    return value


def _nfc(value: str) -> str:
    # Vietnamese typed on some systems arrives decomposed; the database holds composed text.
    return unicodedata.normalize("NFC", value)


Key = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_valid_key)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_nfc),
    AfterValidator(single_line),
]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
    AfterValidator(_nfc),
    AfterValidator(single_line),
]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_bare_date(value: Any) -> bool:
    if isinstance(value, str):
        try:
            date.fromisoformat(value.strip())
        except ValueError:
            return False
        return True
    return isinstance(value, date) and not isinstance(value, datetime)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteEntry(_Entry):
    """A site (điểm cầu) of the unit it is listed under; matched by (unit, name)."""

    key: Key
    name: Name
    sip_uri: SipUri | None = Field(
        default=None, max_length=300, description="the room system's SIP address"
    )


class UnitEntry(_Entry):
    """A unit; matched by `code` when given, else by (parent, name)."""

    key: Key
    name: Name
    kind: UnitKind
    code: str | None = Field(default=None, min_length=1, max_length=40)
    import_divisions: bool = Field(
        default=False,
        description="province only: create all its communes/wards (one hall site each)",
    )
    sites: list[SiteEntry] = Field(default_factory=list)
    children: list[UnitEntry] = Field(default_factory=list)

    @field_validator("code", mode="before")
    @classmethod
    def _code_is_text(cls, value: Any) -> Any:
        # Unquoted, YAML reads 22 as a number and 022 as an octal 18: make the author quote it.
        if _is_number(value):
            raise ValueError(f'give the code as quoted text, e.g. code: "{value}"')
        return value


Text = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=20_000), AfterValidator(_nfc)
]


class AttendeeEntry(_Entry):
    """Who must attend (thành phần) from one site, or in general when `site` is left out."""

    site: Key | None = Field(default=None, description="key of the site")
    text: Text = ""
    roles: list[Title] = Field(default_factory=list, max_length=50)


class AgendaEntry(_Entry):
    """One item of the agenda, in file order."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    presenter: Title | None = Field(default=None, description="the presenting unit")
    presenter_site: Key | None = Field(default=None, description="key of the site it presents from")
    minutes: int | None = Field(default=None, ge=1, le=24 * 60)


class InvitationEntry(_Entry):
    """The series' invitation (giấy mời) and agenda; what the file leaves out stays empty."""

    number: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)] | None
    ) = None
    # `date:` in the file (a field named `date` would hide the type in this class)
    document_date: date | None = Field(default=None, alias="date")
    parent_body: Name | None = None
    issuing_body: Name | None = None
    place: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
        | None
    ) = None
    signer: Name | None = None
    signer_title: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = None
    summary: Text | None = None
    attendees: list[AttendeeEntry] = Field(default_factory=list, max_length=500)
    agenda: list[AgendaEntry] = Field(default_factory=list, max_length=100)

    @field_validator("number", "place", "signer_title", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if _is_number(value) else value

    @field_validator("document_date", mode="before")
    @classmethod
    def _a_date(cls, value: Any) -> Any:
        if _is_number(value) or isinstance(value, datetime):
            raise ValueError("give the invitation's date, e.g. 2026-01-02")
        return value


class SeriesEntry(_Entry):
    """A meeting series; `key` is stored as its source_key, so re-applying updates it."""

    key: Key
    title: Title
    kind: MeetingKind
    mode: MeetingMode = MeetingMode.online
    rrule: str = Field(max_length=500)
    dtstart: datetime = Field(description="first start, wall-clock time in `tz`")
    tz: str | None = Field(default=None, max_length=64)
    duration_min: int = Field(ge=1, le=24 * 60)
    chair: Key = Field(description="key of the chair site")
    sites: list[Key] = Field(default_factory=list)
    units: list[Key] = Field(default_factory=list, description="every site under them is invited")
    unit_codes: list[str] = Field(
        default_factory=list, description="units already in the database, by code"
    )
    exdates: list[date | datetime] = Field(default_factory=list, max_length=1000)
    skip_holidays: bool = True
    meeting_number: MeetingNumber | None = Field(
        default=None, description="what room systems dial; left out: a free one is given"
    )
    pin: Pin | None = Field(default=None, description="left out: 6 random digits")
    upstream_sip_uri: SipUri | None = Field(default=None, max_length=300)
    invitation: InvitationEntry | None = Field(
        default=None, description="invitation and agenda; left out: kept as set on the page"
    )

    @field_validator("meeting_number", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        # A meeting number never starts with 0, so YAML reads it right unquoted.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("pin", mode="before")
    @classmethod
    def _pin_is_text(cls, value: Any) -> Any:
        # Unquoted, YAML drops a PIN's leading zeros (012345 is even read as octal).
        if _is_number(value):
            raise ValueError('give the PIN as quoted text, e.g. pin: "012345"')
        return value

    @field_validator("dtstart", mode="before")
    @classmethod
    def _start_is_a_local_time(cls, value: Any) -> Any:
        # pydantic would read 1767600000 as a Unix time and 2026-01-05 as midnight: both slips.
        if _is_number(value) or _is_bare_date(value):
            raise ValueError("give the local start time, e.g. 2026-01-05T07:30")
        return value

    @field_validator("dtstart")
    @classmethod
    def _start_in_range(cls, value: datetime) -> datetime:
        if not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise ValueError(f"the year must be between {FIRST_YEAR} and {LAST_YEAR}")
        return value

    @field_validator("exdates", mode="before")
    @classmethod
    def _exdates_are_dates(cls, value: Any) -> Any:
        if isinstance(value, list) and any(_is_number(item) for item in value):
            raise ValueError("give dates (2026-02-16) or local times (2026-02-16T07:30)")
        return value

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown IANA time zone {value!r} (e.g. Asia/Ho_Chi_Minh)"
                ) from None
        return value

    @field_validator("rrule")
    @classmethod
    def _valid_rrule(cls, value: str) -> str:
        try:
            normalise_rrule(value, "UTC")  # the zone only matters for UNTIL, checked on apply
        except DomainError as exc:
            raise ValueError(exc.message.removeprefix("rrule: ")) from None
        return value


class Schedule(_Entry):
    """A whole schedule file: a tree of units (with their sites) and meeting series."""

    units: list[UnitEntry] = Field(default_factory=list)
    series: list[SeriesEntry] = Field(default_factory=list)

    _lines: dict[Loc, int] = PrivateAttr(default_factory=dict)

    def spells_out(self, loc: Loc) -> bool:
        """Whether the file itself has a value at `loc` (not just an enclosing one)."""
        return loc in self._lines

    def line_of(self, loc: Loc) -> int | None:
        """The line of `loc`, or of the nearest enclosing value the file spells out."""
        return self._lines.get(_known_prefix(loc, self._lines)) if self._lines else None


def iter_units(schedule: Schedule) -> Iterator[tuple[Loc, UnitEntry, Loc | None]]:
    """Every unit entry, parents before children: (its path, the entry, its parent's path)."""

    def walk(entries: list[UnitEntry], base: Loc, parent: Loc | None) -> Iterator[Any]:
        for index, entry in enumerate(entries):
            loc = (*base, index)
            yield loc, entry, parent
            yield from walk(entry.children, (*loc, "children"), loc)

    yield from walk(schedule.units, ("units",), None)


# --- YAML with lines ------------------------------------------------------------------------


class _NodeError(Exception):
    def __init__(self, node: yaml.Node, reason: str) -> None:
        super().__init__(reason)
        self.line = node.start_mark.line + 1
        self.reason = reason


class _Reader:
    """Turns a composed node tree into dicts, lists and scalars, noting each path's line."""

    def __init__(self) -> None:
        self.lines: dict[Loc, int] = {}
        self._scalars = yaml.SafeLoader("")  # only its scalar constructors are used
        self._count = 0
        self._open: set[int] = set()

    def read(self, node: yaml.Node, loc: Loc) -> Any:
        self._count += 1
        if self._count > MAX_VALUES:
            raise _NodeError(node, "the file expands to too many values (check its aliases)")
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if node.tag not in _PLAIN_COLLECTION_TAGS:
            raise _NodeError(node, f"YAML tags such as {node.tag!r} are not supported here")
        if id(node) in self._open:
            raise _NodeError(node, "an alias refers to a value that contains it")
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.read(item, (*loc, i)) for i, item in enumerate(node.value)]
            return self._mapping(node, loc)
        finally:
            self._open.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        try:
            return self._scalars.construct_object(node)
        except (ValueError, OverflowError):  # e.g. 2026-13-45 looks like a date but is not one
            kind = node.tag.rsplit(":", 1)[-1].replace("timestamp", "date or date-time")
            raise _NodeError(node, f"{node.value!r} is not a valid {kind}") from None

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            line = key_node.start_mark.line + 1
            if key in result:
                first = self.lines[(*loc, key)]
                raise _NodeError(key_node, f"duplicate key '{key}' (first at line {first})")
            self.lines[(*loc, key)] = line
            result[key] = self.read(value_node, (*loc, key))
        return result

    def _key(self, node: yaml.Node) -> str:
        if node.tag == _MERGE_TAG:
            raise _NodeError(node, "merge keys ('<<') are not supported; write the values out")
        key = self._scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            raise _NodeError(node, "a key must be a plain word such as 'name'")
        return key


def _yaml_error(path: Path | str, exc: yaml.YAMLError) -> ScheduleError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        context = exc.context or ""
        if context and exc.context_mark and mark is not exc.context_mark:
            context += f" (line {exc.context_mark.line + 1})"
        parts = [p for p in (context, exc.problem) if p]
        reason = "invalid YAML: " + (", ".join(parts) or "syntax error")
        return ScheduleError(path, mark.line + 1 if mark else None, reason)
    return ScheduleError(path, None, f"invalid YAML: {exc}")


def _read_yaml(text: str, path: Path | str) -> tuple[dict[str, Any], dict[Loc, int]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is None:
            raise ScheduleError(path, 1, "the file is empty; expected 'units:' and/or 'series:'")
        if not isinstance(root, yaml.MappingNode):
            raise _NodeError(root, "the file must be a mapping with 'units:' and/or 'series:'")
        reader = _Reader()
        data = reader.read(root, ())
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from None
    except _NodeError as exc:
        raise ScheduleError(path, exc.line, exc.reason) from None
    except RecursionError:
        raise ScheduleError(path, None, "the file nests too deeply") from None
    return data, reader.lines


# --- pydantic errors → lines ------------------------------------------------------------------


def _known_prefix(loc: Loc, lines: dict[Loc, int]) -> Loc:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return loc[:end]
    return ()


def _label(loc: Loc) -> str:
    """('series', 0, 'sites', 2) → 'sites[2]'; the last named key and the indexes after it."""
    names = [i for i, part in enumerate(loc) if isinstance(part, str)]
    if not names:
        return ""
    start = names[-1]
    return str(loc[start]) + "".join(f"[{part}]" for part in loc[start + 1 :])


def _model_at(loc: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Schedule
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _reason(error: Any, loc: Loc, found: Loc) -> str:
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        return f"missing required key '{loc[-1]}'"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = f" (allowed here: {', '.join(model.model_fields)})" if model else ""
        return f"unknown key '{loc[-1]}'{allowed}"
    label = _label(found)
    return f"{label}: {message}" if label else message


def _validation_error(
    path: Path | str, exc: ValidationError, lines: dict[Loc, int]
) -> ScheduleError:
    """Pydantic errors placed on their lines; one per place (a union reports per member)."""
    problems: dict[Loc, tuple[int, str]] = {}
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        found = _known_prefix(loc, lines)
        # A union (e.g. date | datetime) reports once per member: keep one per place.
        key = loc if error["type"] in {"missing", "extra_forbidden"} else found
        problems.setdefault(key, (lines.get(found, 1), _reason(error, loc, found)))
    return _first_problem(path, list(problems.values()))


def _first_problem(path: Path | str, problems: list[tuple[int, str]]) -> ScheduleError:
    """The first problem in file order, with a count of the others."""
    line, reason = min(problems, key=lambda problem: problem[0])
    if len(problems) > 1:
        more = len(problems) - 1
        reason += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ScheduleError(path, line, reason)


# --- checks across entries -------------------------------------------------------------------


class _Checker:
    """Keys unique in the file, references known, the unit tree well formed."""

    def __init__(self, schedule: Schedule, path: Path | str) -> None:
        self.schedule = schedule
        self.path = path
        self.seen: dict[Loc, Loc] = {}
        self.unit_keys: set[str] = set()
        self.site_keys: set[str] = set()
        self.problems: list[tuple[int, str]] = []

    def problem(self, loc: Loc, reason: str) -> None:
        self.problems.append((self.schedule.line_of(loc) or 1, reason))

    def claim(self, key: str, loc: Loc) -> None:
        self.unique(("key",), key, (*loc, "key"), "key")

    def unique(self, scope: Loc, value: str, at: Loc, what: str) -> None:
        """Report the later of two places that give `value` within `scope`."""
        other = self.seen.setdefault((*scope, value), at)
        if other != at:
            first, later = sorted((other, at), key=lambda place: self.schedule.line_of(place) or 0)
            line = self.schedule.line_of(first)
            self.problem(later, f"duplicate {what} '{value}' (first at line {line})")

    def run(self) -> None:
        entries = {loc: entry for loc, entry, _ in iter_units(self.schedule)}
        for loc, entry, parent_loc in iter_units(self.schedule):
            self.claim(entry.key, loc)
            self.unit_keys.add(entry.key)
            # Rows are matched by these, so two entries would silently be one unit or site.
            self.unique(("unit name", *(parent_loc or ())), entry.name, (*loc, "name"), "name")
            if entry.code is not None:
                self.unique(("code",), entry.code, (*loc, "code"), "unit code")
            self.check_unit(loc, entry, entries[parent_loc] if parent_loc else None)
            for index, site in enumerate(entry.sites):
                site_loc = (*loc, "sites", index)
                self.claim(site.key, site_loc)
                self.site_keys.add(site.key)
                self.unique(("site name", *loc), site.name, (*site_loc, "name"), "site name")
        for index, series in enumerate(self.schedule.series):
            self.claim(series.key, ("series", index))
        for index, series in enumerate(self.schedule.series):
            self.check_references(("series", index), series)
        if self.problems:
            raise _first_problem(self.path, self.problems)

    def check_unit(self, loc: Loc, entry: UnitEntry, parent: UnitEntry | None) -> None:
        parent_kind = parent.kind if parent else None
        try:
            site_service.check_parent_kind(kind=entry.kind, parent_kind=parent_kind)
        except DomainError as exc:
            self.problem((*loc, "kind"), exc.message)
        if not entry.import_divisions:
            return
        if entry.kind != UnitKind.province:
            reason = f"only a province can import its communes, not a {entry.kind}"
            self.problem((*loc, "import_divisions"), reason)
            return
        try:
            division_code(entry)
        except FieldProblem as exc:
            self.problem((*loc, exc.field), exc.reason)

    def check_references(self, loc: Loc, series: SeriesEntry) -> None:
        self.known(series.chair, self.site_keys, "site", (*loc, "chair"))
        for index, key in enumerate(series.sites):
            self.known(key, self.site_keys, "site", (*loc, "sites", index))
        for index, key in enumerate(series.units):
            self.known(key, self.unit_keys, "unit", (*loc, "units", index))
        if series.invitation is not None:
            here = (*loc, "invitation")
            for index, group in enumerate(series.invitation.attendees):
                if group.site is not None:
                    place = (*here, "attendees", index, "site")
                    self.known(group.site, self.site_keys, "site", place)
            for index, item in enumerate(series.invitation.agenda):
                if item.presenter_site is not None:
                    place = (*here, "agenda", index, "presenter_site")
                    self.known(item.presenter_site, self.site_keys, "site", place)

    def known(self, key: str, keys: set[str], what: str, loc: Loc) -> None:
        if key in keys:
            return
        reason = f"unknown {what} key '{key}'"
        if what == "site" and key in self.unit_keys:
            reason += " (that is a unit: invite a whole unit under 'units:')"
        elif what == "unit" and key in self.site_keys:
            reason += " (that is a site: list it under 'sites:')"
        else:
            close = difflib.get_close_matches(key, sorted(keys), n=1)
            if close:
                reason += f" (did you mean '{close[0]}'?)"
        self.problem(loc, reason)


class FieldProblem(Exception):
    """A problem with one field of an entry, placed on a line by the caller."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def division_code(entry: UnitEntry) -> str:
    """The code the divisions data gives a province that imports its communes."""
    try:
        province = divisions.find_province(entry.name)
    except DomainError as exc:
        raise FieldProblem("name", exc.message) from None
    code = divisions.province_code(province)
    if entry.code is not None and entry.code != code:
        reason = f"{province.name} has code '{code}' in the divisions data, not '{entry.code}'"
        raise FieldProblem("code", reason)
    return code


def check(schedule: Schedule, path: Path | str) -> None:
    """Raise `ScheduleError` unless keys are unique, references known and the tree well formed."""
    _Checker(schedule, path).run()


def parse(text: str, path: Path | str) -> Schedule:
    """Validate schedule text; `path` only names the file in errors."""
    data, lines = _read_yaml(text, path)
    try:
        schedule = Schedule.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(path, exc, lines) from None
    schedule._lines = lines
    check(schedule, path)
    return schedule


def load(path: Path) -> Schedule:
    """Read and validate a schedule file."""
    try:
        # utf-8-sig: Windows editors often start UTF-8 files with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScheduleError(path, None, f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ScheduleError(path, None, f"cannot read the file: {exc.strerror or exc}") from None
    return parse(text, path)
