"""The meeting record's forms (invitation, an agenda item, conclusions): what the page sent,
checked field by field into the API's shapes. Every problem is a message for its field (keys
such as `document_date` or `tasks.1.unit`), so the page comes back with what was typed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.datastructures import FormData

from confbridge.records.models import AgendaItem, Conclusion, Invitation
from confbridge.records.schemas import AgendaItemIn, ConclusionWrite, InvitationWrite
from confbridge.records.service import TEXT_FIELDS, EffectiveInvitation
from confbridge.web.forms import parse_date
from confbridge.web.shared import parse_id

Translate = Callable[[str], str]
# Empty rows offered under the filled ones (more come after saving): no script needed.
EMPTY_ATTENDEE_ROWS = 2
EMPTY_TASK_ROWS = 3
DATE_FIELDS = ("document_date",)


def _value(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _values(form: FormData, name: str) -> list[str]:
    return [v.strip() if isinstance(v, str) else "" for v in form.getlist(name)]


def _shown(value: object) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


def _message(error: ErrorDetails, _: Translate) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    if kind in ("missing", "string_too_short"):
        return _("Fill in this field.")
    if kind == "string_too_long":
        return _("Too long: at most %(max)s characters.") % {"max": context.get("max_length")}
    if kind == "too_long":
        return _("Too many lines: at most %(max)s.") % {"max": context.get("max_length")}
    if kind.startswith("date") or kind in ("greater_than_equal", "less_than_equal"):
        return _("Give a date between 01/01/2000 and 31/12/2199.")
    return _("This text has characters that are not allowed here (tabs or control characters).")


def field_errors(exc: ValidationError, _: Translate, depth: int = 3) -> dict[str, str]:
    """The validation errors by field: `title`, `tasks.0.unit` (a row's field, whatever the
    position inside it, e.g. the second role of a row, is cut at `depth`)."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"][:depth])
        errors.setdefault(key, _message(error, _))
    return errors


def _dates(values: dict[str, Any], errors: dict[str, str], _: Translate) -> None:
    """Dates typed as 05/01/2026 or given by a date picker; a wrong one is an error."""
    for name in DATE_FIELDS:
        text = values.get(name) or ""
        parsed = parse_date(text) if text else None
        if text and parsed is None:
            errors[name] = _("Enter a date such as 05/01/2026.")
        values[name] = parsed


@dataclass
class AttendeeRow:
    """Who must attend from one site (or in general): roles one per line, and free text."""

    site_id: str = ""
    roles: str = ""
    text: str = ""

    @property
    def empty(self) -> bool:
        return not (self.site_id or self.roles or self.text)


@dataclass
class InvitationForm:
    """The invitation's fields as shown and typed; left empty, a field follows the series'."""

    values: dict[str, str] = field(default_factory=dict)
    attendees: list[AttendeeRow] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> list[AttendeeRow]:
        """The filled rows and a few empty ones."""
        return self.attendees + [AttendeeRow() for _ in range(EMPTY_ATTENDEE_ROWS)]

    @classmethod
    def from_record(cls, found: EffectiveInvitation | Invitation | None) -> InvitationForm:
        """What an occurrence's invitation says (its own fields over the series'), or what a
        series' holds (None: nothing yet)."""
        if found is None:
            return cls()
        rows = [
            AttendeeRow(
                _shown(group.get("site_id")),
                "\n".join(str(r) for r in group.get("roles") or []),  # type: ignore[union-attr]
                str(group.get("text") or ""),
            )
            for group in found.attendees or []
        ]
        return cls({name: _shown(getattr(found, name)) for name in TEXT_FIELDS}, rows)

    @classmethod
    def from_form(cls, form: FormData) -> InvitationForm:
        rows = [
            AttendeeRow(site, roles, text)
            for site, roles, text in zip(
                _values(form, "attendee_site"),
                _values(form, "attendee_roles"),
                _values(form, "attendee_text"),
                strict=False,
            )
        ]
        values = {name: _value(form, name) for name in TEXT_FIELDS}
        return cls(values, [row for row in rows if not row.empty])

    def to_write(self, base: Invitation | None, _: Translate) -> InvitationWrite | None:
        """The occurrence's own invitation: what differs from the series' `base` (the same
        value, or an empty field, follows the series). Without `base` (a series' own form),
        every field is written and an empty one is cleared. None with `errors` filled in."""
        errors: dict[str, str] = {}
        data: dict[str, Any] = {name: self.values.get(name) or None for name in TEXT_FIELDS}
        _dates(data, errors, _)
        groups = []
        for index, row in enumerate(self.attendees):
            site_id = parse_id(row.site_id) if row.site_id else None
            if row.site_id and site_id is None:
                errors[f"attendees.{index}.site_id"] = _("Choose a site from the list.")
            roles = [line.strip() for line in row.roles.splitlines() if line.strip()]
            groups.append({"site_id": site_id, "text": row.text, "roles": roles})
        data["attendees"] = groups
        try:
            checked = InvitationWrite.model_validate(data)
        except ValidationError as exc:
            errors = field_errors(exc, _) | errors
        self.errors = errors
        if errors:
            return None
        follows = {
            name: None
            for name in TEXT_FIELDS
            if base is not None and getattr(checked, name) == getattr(base, name)
        }
        dumped = [g.model_dump(mode="json") for g in checked.attendees or []]
        if not dumped or (base is not None and base.attendees == dumped):
            follows["attendees"] = None
        return checked.model_copy(update=follows)


@dataclass
class AgendaItemForm:
    """One agenda item as shown and typed."""

    title: str = ""
    presenter: str = ""
    presenter_site_id: str = ""
    planned_min: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: AgendaItem) -> AgendaItemForm:
        return cls(
            item.title,
            item.presenter or "",
            _shown(item.presenter_site_id),
            _shown(item.planned_min),
        )

    @classmethod
    def from_form(cls, form: FormData) -> AgendaItemForm:
        return cls(
            _value(form, "title"),
            _value(form, "presenter"),
            _value(form, "presenter_site_id"),
            _value(form, "planned_min"),
        )

    def to_item(self, item_id: int | None, _: Translate) -> AgendaItemIn | None:
        errors: dict[str, str] = {}
        minutes = int(self.planned_min) if self.planned_min.isdigit() else None
        if self.planned_min and not (minutes and 1 <= minutes <= 24 * 60):
            errors["planned_min"] = _("Enter the planned minutes, from 1 to 1440.")
        site_id = parse_id(self.presenter_site_id) if self.presenter_site_id else None
        if self.presenter_site_id and site_id is None:
            errors["presenter_site_id"] = _("Choose a site from the list.")
        item = None
        try:
            item = AgendaItemIn(
                id=item_id,
                title=self.title,
                presenter=self.presenter or None,
                presenter_site_id=site_id,
                planned_min=minutes,
            )
        except ValidationError as exc:
            errors = field_errors(exc, _, depth=1) | errors
        self.errors = errors
        return None if errors else item


@dataclass
class TaskRow:
    content: str = ""
    unit: str = ""
    deadline_date: str = ""

    @property
    def empty(self) -> bool:
        return not (self.content or self.unit or self.deadline_date)


CONCLUSION_FIELDS = ("document_number", "document_date", "signer_name", "signer_title", "text")


@dataclass
class ConclusionForm:
    """The conclusions notice and its tasks as shown and typed."""

    values: dict[str, str] = field(default_factory=dict)
    tasks: list[TaskRow] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> list[TaskRow]:
        return self.tasks + [TaskRow() for _ in range(EMPTY_TASK_ROWS)]

    @classmethod
    def from_conclusion(cls, conclusion: Conclusion | None) -> ConclusionForm:
        if conclusion is None:
            return cls()
        tasks = [TaskRow(t.content, t.unit, _shown(t.deadline_date)) for t in conclusion.tasks]
        return cls({n: _shown(getattr(conclusion, n)) for n in CONCLUSION_FIELDS}, tasks)

    @classmethod
    def from_form(cls, form: FormData) -> ConclusionForm:
        rows = [
            TaskRow(content, unit, deadline)
            for content, unit, deadline in zip(
                _values(form, "task_content"),
                _values(form, "task_unit"),
                _values(form, "task_deadline"),
                strict=False,
            )
        ]
        values = {name: _value(form, name) for name in CONCLUSION_FIELDS}
        return cls(values, [row for row in rows if not row.empty])

    def to_write(self, _: Translate) -> ConclusionWrite | None:
        errors: dict[str, str] = {}
        data: dict[str, Any] = {n: self.values.get(n) or None for n in CONCLUSION_FIELDS}
        data["text"] = self.values.get("text", "")
        _dates(data, errors, _)
        tasks = []
        for index, row in enumerate(self.tasks):
            deadline = parse_date(row.deadline_date) if row.deadline_date else None
            if row.deadline_date and deadline is None:
                errors[f"tasks.{index}.deadline_date"] = _("Enter a date such as 05/01/2026.")
            tasks.append({"content": row.content, "unit": row.unit, "deadline_date": deadline})
        data["tasks"] = tasks
        checked = None
        try:
            checked = ConclusionWrite.model_validate(data)
        except ValidationError as exc:
            errors = field_errors(exc, _) | errors
        self.errors = errors
        return None if errors else checked
