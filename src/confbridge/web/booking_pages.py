"""Booking: the series form (create, edit, end), its live clash check, and the meetings
the planner could not book."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.datastructures import FormData

from confbridge.auth import service as auth_service
from confbridge.errors import Conflict, DomainError, Invalid
from confbridge.meetings import access as meeting_access
from confbridge.meetings import flows as meeting_flows
from confbridge.meetings import service as meeting_service
from confbridge.meetings import unplanned as meeting_unplanned
from confbridge.meetings.models import OccurrenceStatus, Series, UnplannedStatus
from confbridge.meetings.recurrence import holiday_name
from confbridge.meetings.schemas import SeriesCreate
from confbridge.sip_uri import sip_address
from confbridge.text import vietnamese_key
from confbridge.timeutil import utcnow, zone
from confbridge.web import emergency_pages, labels, queries
from confbridge.web.context import CheckedForm, EditorPage, Page
from confbridge.web.domain_messages import explain
from confbridge.web.forms import BookingForm, OccurrenceForm, parse_date
from confbridge.web.shared import conflict_lines, not_found, parse_id, redirect

router = APIRouter(include_in_schema=False)
PREVIEW_OCCURRENCES = 8
PREVIEW_HOLIDAYS = 12


def _unplanned_rows(page: Page, series: Series | None) -> list[dict[str, Any]]:
    """The series' meetings the planner could not book, as the series page lists them."""
    if series is None:
        return []
    rows = []
    local_tz = zone(series.tz)
    for item in meeting_service.list_unplanned(session=page.session, series_id=series.id):
        day = meeting_unplanned.local_date(item, series)
        conflicts = item.conflicts or []
        titles = _by_name({str(c.get("series_title", "")) for c in conflicts} - {""})
        sites = _by_name({str(c.get("site_name", "")) for c in conflicts} - {""})
        rows.append(
            {
                "date_iso": day.isoformat(),
                "when": page.fmt.long_datetime(item.recurrence_at),
                "time": item.recurrence_at.astimezone(local_tz).strftime("%H:%M"),
                "clashes": ", ".join(titles[:5]),
                "sites": ", ".join(sites[:5]) + (" …" if len(sites) > 5 else ""),
                "pending": item.status == UnplannedStatus.pending.value,
                "resolved_by": (item.resolved_by or "").removeprefix("user:"),
            }
        )
    return rows


def _by_name(names: set[str]) -> list[str]:
    return sorted(names, key=vietnamese_key)


def _booking_context(page: Page, form: BookingForm, **values: Any) -> dict[str, Any]:
    assert page.user is not None
    tree = queries.unit_tree(page.session, page.user.edit_scope)
    flat = queries.flatten(tree)
    series = values.get("series")
    # Only editors (secretariat, admin) reach this page: they may see the PIN.
    if series is not None:
        values.setdefault(
            "sip_address", sip_address(series.meeting_number, page.settings.sip_domain)
        )
    return {
        "unplanned": _unplanned_rows(page, values.get("series")),
        "unplanned_message": None,
        "form": form,
        "tree": tree,
        "chair_groups": [(n, n.sites) for n in flat if n.sites],
        "kinds": labels.KINDS,
        "modes": labels.MODES,
        "unit_kinds": labels.UNIT_KINDS,
        "preview": None,
        "conflicts": [],
        "conflict_count": 0,
        "message": None,
        "emergency": [],
        "emergency_form": {"reason": "", "confirm": False, "actions": {}, "dates": {}, "times": {}},
        "emergency_message": None,
        **values,
    }


def _holidays_skipped(page: Page, data: dict[str, Any]) -> list[tuple[str, str]]:
    if not data.get("skip_holidays"):
        return []
    try:
        checked = SeriesCreate.model_validate(data).model_dump()
        spec = meeting_service.build_spec(checked, default_tz=page.settings.meetings.default_tz)
        until_at = meeting_service.planning_horizon(
            spec, settings=page.settings.meetings, now=utcnow()
        )
        found = []
        for local_start in spec.rule.excluded_starts(until_at=until_at):
            name = holiday_name(local_start.date())
            if name and local_start.astimezone(UTC) >= utcnow():
                found.append((page.fmt.date(local_start.date()), name))
            if len(found) >= PREVIEW_HOLIDAYS:
                break
        return found
    except (DomainError, ValueError):
        return []


def _try_booking(
    page: Page, data: dict[str, Any], series: Series | None, *, keep: bool
) -> tuple[Series | None, dict[str, Any]]:
    """Create or update the series; with `keep` False, only find out what would happen."""
    outcome: dict[str, Any] = {"conflicts": [], "conflict_count": 0, "message": None}
    settings = page.settings.meetings
    assert page.user is not None
    is_new = series is None
    try:
        meeting_access.check_invitations(
            session=page.session,
            scope=page.user.edit_scope,
            chair_site_id=data.get("chair_site_id"),
            site_ids=data.get("site_ids"),
            unit_ids=data.get("unit_ids"),
        )
        if series is None:
            series = meeting_service.create(
                session=page.session, series_in=data, settings=settings, now=utcnow()
            )
        else:
            meeting_service.update(
                session=page.session, series=series, series_in=data, settings=settings, now=utcnow()
            )
        outcome["preview"] = _preview(page, data, series, new=is_new)
        if keep:
            return series, outcome
    except Conflict as exc:
        outcome["conflicts"], outcome["conflict_count"] = conflict_lines(page, exc)
        # an emergency meeting displaces a few meetings, not a national series' worth: the
        # choices (a second conflict search) are offered only then
        if is_new and 0 < outcome["conflict_count"] <= emergency_pages.MAX_CLASHES_OFFERED:
            outcome["emergency"] = emergency_pages.options(page, data)
        if not outcome["conflicts"]:
            outcome["message"] = page._(
                "The booking was refused: %(reason)s", reason=explain(page, exc)
            )
    except DomainError as exc:
        if exc.extra.get("code") == "record_past_needed":
            count = int(exc.extra.get("past_count", 0))
            outcome["message"] = page.translations.ngettext(
                "%(num)s meeting of this booking is already over. To record meetings that "
                "took place, tick “Record past meetings”; otherwise choose a later first date.",
                "%(num)s meetings of this booking are already over. To record meetings that "
                "took place, tick “Record past meetings”; otherwise choose a later first date.",
                count,
            ) % {"num": count}
        else:
            outcome["message"] = page._(
                "The booking was refused: %(reason)s", reason=explain(page, exc)
            )
    page.session.rollback()
    return None, outcome


def _preview(page: Page, data: dict[str, Any], series: Series, *, new: bool) -> dict[str, Any]:
    """What the booking saves, as saved: a new series' every meeting (those already over
    recorded as held, when chosen), or the coming meetings a change re-plans."""
    now = utcnow()
    planned = [
        o
        for o in sorted(series.occurrences, key=lambda o: o.start_at)
        if o.status == OccurrenceStatus.scheduled.value and (new or o.end_at > now)
    ]
    past = [o for o in planned if o.end_at <= now]
    return {
        "count": len(planned),
        "past": len(past),
        "first": [page.fmt.long_datetime(o.start_at) for o in planned[:PREVIEW_OCCURRENCES]],
        "holidays": _holidays_skipped(page, data),
    }


def _handle_booking(page: Page, form_data: FormData, series: Series | None) -> Response:
    form = BookingForm.from_form(form_data, page.language)
    action = str(form_data.get("action") or "check")
    data = form.validate(page.translations.gettext)
    template_values = {"series": series}
    if data is None:
        context = _booking_context(
            page, form, message=page._("Please correct the fields marked below."), **template_values
        )
        return page.render("booking.html", 422, **context)
    if series is not None:
        data.pop("tz", None)
        data.pop("record_past", None)  # a change re-plans only coming meetings
    elif action == "emergency":
        return _handle_emergency(page, form, form_data, data)
    saved, outcome = _try_booking(page, data, series, keep=action == "save")
    if saved is not None:
        assert page.user is not None
        # a re-plan drops unplanned meetings the new rule no longer gives: their alerts close
        meeting_flows.sync_unplanned_alerts(
            session=page.session, deliver=bool(page.settings.alerts.webhook_url), now=utcnow()
        )
        auth_service.record(
            session=page.session,
            actor=f"user:{page.user.username}",
            action="series_created" if series is None else "series_updated",
            entity="series",
            entity_id=saved.id,
            detail={"title": saved.title, "via": "web"},
        )
        page.session.commit()
        first = min((o.start_at for o in saved.occurrences), default=utcnow())
        local = first.astimezone(zone(page.settings.meetings.default_tz)).date()
        return redirect(f"/calendar?view=month&day={local.isoformat()}&saved={saved.id}")
    status = 409 if outcome["conflicts"] else 422 if outcome["message"] else 200
    context = _booking_context(page, form, **outcome, **template_values)
    return page.render("booking.html", status, **context)


def _handle_emergency(
    page: Page, form: BookingForm, form_data: FormData, data: dict[str, Any]
) -> Response:
    """Book over the meetings chosen on the form (họp khẩn); its page then shows the note."""
    try:
        saved = emergency_pages.book(page, data, form_data)
    except DomainError as exc:
        page.session.rollback()
        refused = emergency_pages.refusal(page, exc)
        # the clashes as they are now, with the choices made, to decide again
        _, outcome = _try_booking(page, data, None, keep=False)
        if not outcome["conflicts"]:
            outcome["message"] = refused
        context = _booking_context(
            page,
            form,
            series=None,
            emergency_form=emergency_pages.entered(form_data),
            emergency_message=refused,
            **outcome,
        )
        return page.render("booking.html", exc.status_code, **context)
    page.session.commit()
    first = min(saved.occurrences, key=lambda o: o.start_at)
    return redirect(f"/occurrences/{first.id}")


@router.get("/bookings/new")
def new_booking(page: EditorPage) -> Response:
    tz = page.settings.meetings.default_tz
    today = utcnow().astimezone(zone(tz)).date()
    form = BookingForm(start_date=(today + timedelta(days=1)).isoformat())
    return page.render("booking.html", **_booking_context(page, form, series=None))


@router.post("/bookings/new")
def create_booking(page: EditorPage, form: CheckedForm) -> Response:
    return _handle_booking(page, form, None)


@router.post("/bookings/check")
def check_booking(page: EditorPage, form: CheckedForm) -> Response:
    """The check panel alone, for the form's script to refresh while the user types."""
    series = None
    series_id = parse_id(str(form.get("series_id") or ""))
    if series_id is not None:
        series = _series_or_none(page, str(series_id))
    booking = BookingForm.from_form(form, page.language)
    data = booking.validate(page.translations.gettext)
    outcome: dict[str, Any] = {"preview": None, "conflicts": [], "conflict_count": 0}
    outcome["message"] = None
    if data is not None:
        _, found = _try_booking(page, data, series, keep=False)
        outcome.update(found)
    return page.render("_check.html", form=booking, **outcome)


def _series_or_none(page: Page, series_id: str) -> Series | None:
    """The series, if the user may change it (its chair is in the user's booking scope)."""
    assert page.user is not None
    parsed = parse_id(series_id)
    if parsed is None:
        return None
    try:
        return meeting_access.editable_series(
            session=page.session,
            series_id=parsed,
            read=page.user.scope,
            write=page.user.edit_scope,
        )
    except DomainError:
        return None


@router.get("/series/{series_id}/edit")
def edit_series(page: EditorPage, series_id: str) -> Response:
    series = _series_or_none(page, series_id)
    if series is None:
        return not_found(page)
    form = BookingForm.from_series(series, page.translations.gettext, language=page.language)
    return page.render("booking.html", **_booking_context(page, form, series=series))


@router.post("/series/{series_id}/edit")
def update_series(page: EditorPage, series_id: str, form: CheckedForm) -> Response:
    series = _series_or_none(page, series_id)
    if series is None:
        return not_found(page)
    if series.ended_at is not None:
        booking = BookingForm.from_series(series, page.translations.gettext, language=page.language)
        context = _booking_context(
            page, booking, series=series, message=page._("This series has ended.")
        )
        return page.render("booking.html", 409, **context)
    return _handle_booking(page, form, series)


@router.post("/series/{series_id}/delete")
def delete_series(page: EditorPage, series_id: str, _form: CheckedForm) -> Response:
    series = _series_or_none(page, series_id)
    if series is None:
        return not_found(page)
    assert page.user is not None
    removed = meeting_service.delete_series(session=page.session, series=series, now=utcnow())
    meeting_flows.sync_unplanned_alerts(
        session=page.session, deliver=bool(page.settings.alerts.webhook_url), now=utcnow()
    )
    auth_service.record(
        session=page.session,
        actor=f"user:{page.user.username}",
        action="series_deleted" if removed else "series_ended",
        entity="series",
        entity_id=series.id,
        detail={"via": "web"},
    )
    page.session.commit()
    return redirect("/calendar")


@router.post("/series/{series_id}/unplanned/{day}")
def resolve_unplanned(page: EditorPage, series_id: str, day: str, form: CheckedForm) -> Response:
    """Move a meeting the planner could not book, or accept that it is skipped."""
    series = _series_or_none(page, series_id)
    parsed_day = parse_date(day)
    if series is None or parsed_day is None:
        return not_found(page)
    action = str(form.get("action") or "")
    moved = OccurrenceForm.from_form(form)
    moved.status = OccurrenceStatus.scheduled.value  # a move books it; nothing to cancel
    message, status_code = None, 422
    try:
        item = meeting_unplanned.get_unplanned(session=page.session, series=series, day=parsed_day)
        assert page.user is not None
        actor = f"user:{page.user.username}"
        if action == "move":
            checked = moved.validate(page.translations.gettext, series.tz)
            if checked is None:
                raise Invalid(page._("Enter a date such as 2026-01-05 and a time such as 07:30."))
            meeting_unplanned.move_unplanned(
                session=page.session, series=series, item=item, start_at=checked[0]
            )
        elif action == "skip":
            meeting_unplanned.skip_unplanned(
                session=page.session, series=series, item=item, actor=actor, now=utcnow()
            )
        else:
            raise Invalid(page._("Choose to move the meeting or to accept the skip."))
        meeting_flows.sync_unplanned_alerts(
            session=page.session, deliver=bool(page.settings.alerts.webhook_url), now=utcnow()
        )
        auth_service.record(
            session=page.session,
            actor=actor,
            action=f"unplanned_{'moved' if action == 'move' else 'skipped'}",
            entity="series",
            entity_id=series.id,
            detail={"date": parsed_day.isoformat(), "via": "web"},
        )
        page.session.commit()
        return redirect(f"/series/{series.id}/edit?resolved={action}#unplanned")
    except DomainError as exc:
        page.session.rollback()
        status_code = exc.status_code
        message = page._("The change was refused: %(reason)s", reason=explain(page, exc))
        if isinstance(exc, Conflict):
            lines, _count = conflict_lines(page, exc)
            if lines:
                clashes = "; ".join(f"{c['site']} – {c['title']} ({c['when']})" for c in lines)
                message = page._("The new time clashes with: %(clashes)s", clashes=clashes)
    series = page.session.get(Series, series.id) or series
    booking = BookingForm.from_series(series, page.translations.gettext, language=page.language)
    context = _booking_context(page, booking, series=series)
    context["unplanned_message"] = message
    return page.render("booking.html", status_code, **context)
