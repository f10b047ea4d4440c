"""Emergency meetings (họp khẩn) on the pages: the booking form's option to book over the
meetings it clashes with, and the notes the occurrence pages show of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from confbridge.errors import DomainError, Invalid
from confbridge.meetings import emergency
from confbridge.meetings.models import Displacement, Occurrence, Series
from confbridge.meetings.schemas import SeriesCreate
from confbridge.timeutil import utcnow, zone
from confbridge.web.context import Page
from confbridge.web.domain_messages import explain
from confbridge.web.forms import parse_date
from confbridge.web.labels import N_
from confbridge.web.shared import parse_id

MAX_OPTIONS = 50
# Site-and-meeting clashes beyond which the form offers no emergency choices (the API does).
MAX_CLASHES_OFFERED = 500
# What a refusal of an emergency booking means, by its code (the API's messages are English).
REFUSALS = {
    "emergency_confirm_needed": N_(
        "Tick the confirmation: the meetings listed are cancelled or moved."
    ),
    "emergency_reason_needed": N_("Give the reason for the emergency meeting."),
    "emergency_new_start_needed": N_("Choose the new date and time of each meeting to move."),
    "emergency_uncovered": N_(
        "The emergency meeting also clashes with other meetings (booked meanwhile?): "
        "choose what becomes of each one below."
    ),
    "emergency_not_clashing": N_("A meeting chosen does not clash with this booking any more."),
    "emergency_forbidden": N_(
        "You may not cancel or move “%(title)s”: it is chaired by another unit's site. "
        "Ask that unit's secretariat, or one above it."
    ),
    "emergency_move_clash": N_(
        "“%(title)s” cannot be moved to the time chosen: it clashes there too. Choose another "
        "time, or cancel it."
    ),
}


def options(page: Page, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The meetings the booking clashes with, one line each, for the emergency choices."""
    try:
        series_in = SeriesCreate.model_validate(data)
        found = emergency.clashes(
            session=page.session,
            series_in=series_in,
            settings=page.settings.meetings,
            now=utcnow(),
        )
    except (DomainError, ValidationError):
        return []
    lines: dict[int, dict[str, Any]] = {}
    for clash in found:
        if clash.occurrence_id is None:
            continue
        line = lines.get(clash.occurrence_id)
        if line is None:
            if len(lines) >= MAX_OPTIONS:
                continue
            occurrence = page.session.get(Occurrence, clash.occurrence_id)
            local = clash.start_at.astimezone(zone(occurrence.series.tz if occurrence else "UTC"))
            line = lines[clash.occurrence_id] = {
                "occurrence_id": clash.occurrence_id,
                "title": clash.series_title,
                "when": page.fmt.long_datetime(clash.start_at),
                "date_iso": local.date().isoformat(),
                "time": local.strftime("%H:%M"),
                "sites": [],
            }
        line["sites"].append(clash.site_name)
    return list(lines.values())


def _choices(form: FormData, tz: str) -> list[dict[str, Any]]:
    displaced = []
    for raw in form.getlist("displaced_ids"):
        occurrence_id = parse_id(str(raw))
        if occurrence_id is None:
            continue
        action = str(form.get(f"displace_{occurrence_id}") or "cancel")
        item: dict[str, Any] = {"occurrence_id": occurrence_id, "action": action}
        if action == "move":
            day = parse_date(str(form.get(f"move_date_{occurrence_id}") or ""))
            time = str(form.get(f"move_time_{occurrence_id}") or "")
            try:
                hour, minute = (int(p) for p in time.split(":")[:2])
                local = datetime(day.year, day.month, day.day, hour, minute) if day else None
            except ValueError:
                local = None
            if local is not None:
                item["new_start"] = local.replace(tzinfo=zone(tz)).isoformat()
        displaced.append(item)
    return displaced


def entered(form: FormData) -> dict[str, Any]:
    """What the user chose, to show the form again as it was."""
    return {
        "reason": str(form.get("emergency_reason") or ""),
        "confirm": bool(form.get("emergency_confirm")),
        "actions": _by_occurrence(form, "displace_"),
        "dates": _by_occurrence(form, "move_date_"),
        "times": _by_occurrence(form, "move_time_"),
    }


def _by_occurrence(form: FormData, prefix: str) -> dict[str, str]:
    return {
        key.removeprefix(prefix): str(value)
        for key, value in form.multi_items()
        if key.startswith(prefix)
    }


def book(page: Page, data: dict[str, Any], form: FormData) -> Series:
    """Book the series as an emergency meeting over the meetings chosen (the caller commits)."""
    assert page.user is not None
    tz = str(data.get("tz") or page.settings.meetings.default_tz)
    body = {
        **data,
        "emergency": {
            "confirm": bool(form.get("emergency_confirm")),
            "reason": str(form.get("emergency_reason") or "").strip() or None,
            "displaced": _choices(form, tz),
        },
    }
    try:
        series_in = SeriesCreate.model_validate(body)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        if where.startswith("emergency.displaced"):
            raise Invalid("emergency.displaced", code="emergency_uncovered") from None
        raise Invalid(f"{where}: {exc.errors()[0]['msg']}") from None
    actor = f"user:{page.user.username}"
    booked = emergency.book(
        session=page.session,
        series_in=series_in,
        read=page.user.scope,
        write=page.user.edit_scope,
        actor=actor,
        settings=page.settings.meetings,
        now=utcnow(),
    )
    emergency.record_audit(session=page.session, booking=booked, actor=actor, via="web")
    return booked.series


def refusal(page: Page, exc: DomainError) -> str:
    """What an emergency booking's refusal means, in the page's language."""
    message = REFUSALS.get(str(exc.extra.get("code") or ""))
    if message is None:
        return page._("The booking was refused: %(reason)s", reason=explain(page, exc))
    occurrence = page.session.get(Occurrence, int(exc.extra.get("occurrence_id") or 0))
    return page._(message, title=occurrence.series.title if occurrence else "")


def notes(page: Page, occurrence: Occurrence) -> list[dict[str, Any]]:
    """The occurrence page's notes: displaced by an emergency meeting, or one that displaced."""
    lines = []
    for row in emergency.involving(session=page.session, occurrence_id=occurrence.id):
        lines.append(_note(page, occurrence, row))
    return lines


def _note(page: Page, occurrence: Occurrence, row: Displacement) -> dict[str, Any]:
    who = row.actor.removeprefix("user:")
    when = page.fmt.long_datetime(row.created_at)
    displaced = row.occurrence_id == occurrence.id
    other_id = row.emergency_occurrence_id if displaced else row.occurrence_id
    other = page.session.get(Occurrence, other_id or 0)
    title = other.series.title if other else ""
    was = page.fmt.long_datetime(row.from_start_at)
    if displaced and row.action == "cancel":
        text = page._(
            "Cancelled for the emergency meeting “%(title)s” by %(who)s (%(when)s).",
            title=title,
            who=who,
            when=when,
        )
    elif displaced:
        text = page._(
            "Moved from %(was)s for the emergency meeting “%(title)s” by %(who)s (%(when)s).",
            was=was,
            title=title,
            who=who,
            when=when,
        )
    elif row.action == "cancel":
        text = page._(
            "Emergency meeting: “%(title)s” (%(was)s) was cancelled for it by %(who)s.",
            title=title,
            was=was,
            who=who,
        )
    else:
        text = page._(
            "Emergency meeting: “%(title)s” (%(was)s) was moved for it by %(who)s.",
            title=title,
            was=was,
            who=who,
        )
    return {"text": text, "reason": row.reason, "link": other_id if other else None}
