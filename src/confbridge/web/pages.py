"""The web pages: sign-in, calendar, booking, occurrence with live status, chair console."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from starlette.datastructures import FormData

from confbridge import signing
from confbridge.auth import passwords
from confbridge.auth import service as auth_service
from confbridge.auth.models import User
from confbridge.auth.service import AccountDisabled, Principal
from confbridge.bridge import service as bridge_service
from confbridge.client_address import client_address
from confbridge.db import Database
from confbridge.errors import (
    Conflict,
    DomainError,
    Invalid,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from confbridge.live import LiveBusDep, occurrence_topic, publish_floor
from confbridge.meetings import flows as meeting_flows
from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Occurrence, OccurrenceStatus, Series, UnplannedStatus
from confbridge.meetings.recurrence import holiday_name
from confbridge.meetings.schemas import SeriesCreate
from confbridge.pagination import MAX_ID
from confbridge.settings import Settings
from confbridge.timeutil import utcnow, zone
from confbridge.web import labels, live_status, queries
from confbridge.web.context import (
    AnyPage,
    CheckedForm,
    CheckedRequest,
    EditorPage,
    Page,
    UserPage,
)
from confbridge.web.forms import BookingForm, OccurrenceForm, parse_date
from confbridge.web.i18n import LANGUAGE_COOKIE, LANGUAGES
from confbridge.web.report_pages import ATTENDANCE_STATUSES, occurrence_attendance_or_none
from confbridge.web.security import (
    PASSWORD_PAGE,
    SESSION_TTL,
    end_session,
    issue_session,
    session_user,
)
from confbridge_kernel.contracts import FloorAction, GrantClaims, PeerRole, room_name

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

PREVIEW_OCCURRENCES = 8
PREVIEW_HOLIDAYS = 12
MAX_CONFLICTS_SHOWN = 20
# A comment line every so often keeps proxies from closing a quiet event stream.
SSE_HEARTBEAT_S = 15.0
# Changes arriving together are sent as one update.
SSE_COALESCE_S = 0.2
# A stream ends after this long and the browser reconnects (with a fresh snapshot): an open
# stream would otherwise hold up a server shutdown, which waits for responses to finish.
SSE_STREAM_MAX_S = 30.0
SSE_RETRY_MS = 1000
CONSOLE_SITE_ID = 0  # the console watches the programme; it is not a site of the meeting
CONSOLE_ACTIONS = frozenset(
    {FloorAction.give, FloorAction.take, FloorAction.mute, FloorAction.unmute, FloorAction.mute_all}
)


def _parse_id(text: str) -> int | None:
    return int(text) if text.isdigit() and 1 <= int(text) <= MAX_ID else None


def _local_path(target: str | None, default: str = "/calendar") -> str:
    """Redirect targets stay on this site: a path, never another host."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def _not_found(page: Page) -> Response:
    return page.render("error.html", 404, message=page._("This page does not exist."))


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- sign-in, language ------------------------------------------------------------------------


@router.get("/")
def home(page: AnyPage) -> Response:
    return _redirect("/calendar" if page.user else "/sign-in")


@router.get("/sign-in")
def sign_in_page(page: AnyPage, next: str | None = None) -> Response:
    return page.render("sign_in.html", next=_local_path(next), username="", error=None)


def _with_retry_after(response: Response, seconds: object) -> Response:
    if isinstance(seconds, int):
        response.headers["Retry-After"] = str(seconds)
    return response


@router.post("/sign-in")
def sign_in(page: AnyPage, form: CheckedForm) -> Response:
    username = str(form.get("username") or "").strip()[:80]
    password = str(form.get("password") or "")[:200]
    target = _local_path(str(form.get("next") or ""))

    def again(status_code: int, error: str) -> Response:
        return page.render("sign_in.html", status_code, next=target, username=username, error=error)

    if not username or not password:
        return again(401, page._("Wrong username or password."))
    try:
        user = auth_service.sign_in(
            session=page.session,
            username=username,
            password=password,
            address=client_address(page.request),
            via="web",
            limits=auth_service.SignInLimits.from_settings(page.settings.auth),
            now=utcnow(),
        )
    except AccountDisabled:
        page.session.commit()
        return again(401, page._("This account is disabled. Ask an administrator."))
    except Unauthorized:
        page.session.commit()  # the failure counts, and stays in the audit log
        return again(401, page._("Wrong username or password."))
    except TooManyRequests as exc:
        wait = int(exc.extra.get("retry_after_s", 60))
        message = page._(
            "Too many failed sign-ins. Try again in %(minutes)s minutes.",
            minutes=max(1, (wait + 59) // 60),
        )
        return _with_retry_after(again(429, message), wait)
    except Unavailable as exc:
        busy = again(503, page._("The server is busy. Try again in a moment."))
        return _with_retry_after(busy, exc.extra.get("retry_after_s"))
    web_session = auth_service.start_session(
        session=page.session, user=user, kind=auth_service.SESSION_WEB, ttl=SESSION_TTL
    )
    page.session.commit()
    if user.must_change_password:
        target = f"{PASSWORD_PAGE}?next={quote(target, safe='')}"
    response = _redirect(target)
    issue_session(
        response,
        page.request,
        user=user,
        session_id=web_session.id,
        secret_key=page.settings.secret_key,
    )
    return response


@router.post("/sign-out")
def sign_out(page: AnyPage, _form: CheckedForm) -> Response:
    if page.user is not None:
        auth_service.revoke_session(session=page.session, session_id=page.user.session_id)
        auth_service.record(
            session=page.session,
            actor=f"user:{page.user.username}",
            action="sign_out",
            entity="user",
            entity_id=page.user.id,
            detail={"via": "web"},
        )
        page.session.commit()
    response = _redirect("/sign-in")
    end_session(response, page.request)
    return response


# --- the user's own account -------------------------------------------------------------------


def _password_message(page: Page, exc: DomainError) -> str:
    """The refusal of a new password, in the reader's language."""
    rule = exc.extra.get("rule")
    messages = {
        "too_short": page._(
            "The new password is too short: it needs at least %(count)s characters.",
            count=str(passwords.MIN_LENGTH),
        ),
        "too_long": page._("The new password is too long."),
        "one_character": page._("The new password may not repeat a single character."),
        "username": page._("The new password may not be your username."),
        "common": page._("The new password is too common. Choose another one."),
        "current_wrong": page._("The current password is wrong."),
        "unchanged": page._("The new password must differ from the current one."),
    }
    return messages.get(str(rule), exc.message)


@router.get(PASSWORD_PAGE)
def password_page(page: UserPage, next: str | None = None) -> Response:
    return page.render("account_password.html", next=_local_path(next), error=None)


@router.post(PASSWORD_PAGE)
def change_password(page: UserPage, form: CheckedForm) -> Response:
    """Change the signed-in user's password: every session of the user ends, and this browser
    gets a new one."""
    assert page.user is not None
    target = _local_path(str(form.get("next") or ""))
    current = str(form.get("current_password") or "")[:200]
    new = str(form.get("new_password") or "")[:201]
    again = str(form.get("new_password_again") or "")[:201]
    user = page.session.get(User, page.user.id)
    assert user is not None
    error = None
    if new != again:
        error = page._("The two new passwords differ.")
    else:
        try:
            auth_service.change_password(
                session=page.session, user=user, current_password=current, new_password=new
            )
        except DomainError as exc:
            page.session.rollback()
            error = _password_message(page, exc)
    if error is not None:
        return page.render("account_password.html", 422, next=target, error=error)
    web_session = auth_service.start_session(
        session=page.session, user=user, kind=auth_service.SESSION_WEB, ttl=SESSION_TTL
    )
    page.session.commit()
    response = _redirect(target)
    issue_session(
        response,
        page.request,
        user=user,
        session_id=web_session.id,
        secret_key=page.settings.secret_key,
    )
    return response


@router.get("/language/{code}")
def switch_language(code: str, next: str | None = None) -> Response:
    response = _redirect(_local_path(next))
    if code in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, code, max_age=365 * 24 * 3600, samesite="lax", path="/"
        )
    return response


# --- calendar ---------------------------------------------------------------------------------


def _local_midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone(tz)).astimezone(UTC)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@router.get("/calendar")
def calendar(
    page: UserPage,
    view: str = "week",
    day: str | None = None,
    unit_id: str | None = None,
    kind: str | None = None,
) -> Response:
    tz = page.settings.meetings.default_tz
    today = utcnow().astimezone(zone(tz)).date()
    anchor = parse_date(day or "") or today
    if not 2000 <= anchor.year <= 2199:
        anchor = today
    view = view if view in ("week", "month") else "week"
    unit = _parse_id(unit_id or "")
    kind = kind if kind in labels.KINDS else None
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        last = first + timedelta(days=6)
        previous, following = anchor - timedelta(days=7), anchor + timedelta(days=7)
    else:
        month_start = anchor.replace(day=1)
        next_month = _add_months(month_start, 1)
        first = month_start - timedelta(days=month_start.weekday())
        month_end = next_month - timedelta(days=1)
        last = month_end + timedelta(days=6 - month_end.weekday())
        previous, following = _add_months(month_start, -1), next_month
    items = queries.calendar_items(
        session=page.session,
        from_at=_local_midnight(first, tz),
        to_at=_local_midnight(last + timedelta(days=1), tz),
        unit_id=unit,
        kind=kind,
    )
    by_day: dict[date, list[queries.CalendarItem]] = {}
    for item in items:
        by_day.setdefault(item.start_at.astimezone(zone(tz)).date(), []).append(item)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    weeks = [days[i : i + 7] for i in range(0, len(days), 7)]
    units = queries.flatten(queries.unit_tree(page.session))

    def link(**changes: Any) -> str:
        params = {"view": view, "day": anchor.isoformat(), "unit_id": unit, "kind": kind}
        params.update(changes)
        query = "&".join(f"{k}={quote(str(v))}" for k, v in params.items() if v not in (None, ""))
        return f"/calendar?{query}"

    return page.render(
        "calendar.html",
        view=view,
        anchor=anchor,
        today=today,
        weeks=weeks,
        by_day=by_day,
        month=anchor.month,
        units=units,
        unit_id=unit,
        kind=kind,
        kinds=labels.KINDS,
        modes=labels.MODES,
        previous_link=link(day=previous.isoformat()),
        next_link=link(day=following.isoformat()),
        today_link=link(day=today.isoformat()),
        week_link=link(view="week"),
        month_link=link(view="month"),
        count=len(items),
        created=page.request.query_params.get("saved"),
        has_feed=_has_feed_token(page),
        feed_notice=page.request.query_params.get("feed"),
    )


def _has_feed_token(page: Page) -> bool:
    assert page.user is not None
    user = page.session.get(User, page.user.id)
    return user is not None and user.feed_token_hash is not None


# --- calendar subscriptions (feed token) -------------------------------------------------------


def _external_base(page: Page) -> str:
    """This server's address as calendar programs should use it: `public_url` when set."""
    configured = page.settings.public_url
    return (configured or str(page.request.base_url)).rstrip("/")


def _feed_targets(page: Page) -> tuple[list[tuple[str, list[tuple[str, str]]]], list[str]]:
    """What one can subscribe to, grouped for a <select>: sites by unit, then the series."""
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for node in queries.flatten(queries.unit_tree(page.session)):
        if node.sites:
            groups.append((node.name, [(f"site:{i}", name) for i, name in node.sites]))
    series = page.session.execute(select(Series.id, Series.title).order_by(Series.title, Series.id))
    series_options = [(f"series:{i}", title) for i, title in series]
    if series_options:
        groups.append((page._("Meeting series"), series_options))
    return groups, [value for _label, options in groups for value, _name in options]


def _feed_links(page: Page, token: str, target: str) -> dict[str, str]:
    kind, _sep, ident = target.partition(":")
    path = "sites" if kind == "site" else "series"
    https = f"{_external_base(page)}/api/v1/{path}/{ident}/calendar.ics?feed={quote(token)}"
    return {"https": https, "webcal": "webcal://" + https.split("://", 1)[1]}


@router.post("/calendar/feed")
def calendar_feed(page: UserPage, form: CheckedForm) -> Response:
    """Create (or renew) the user's calendar feed token, show its links, or revoke it."""
    assert page.user is not None
    user = page.session.get(User, page.user.id)
    assert user is not None
    action = str(form.get("action") or "")
    actor = f"user:{user.username}"
    if action == "revoke":
        if auth_service.revoke_feed_token(session=page.session, user=user):
            auth_service.record(
                session=page.session,
                actor=actor,
                action="feed_token_revoked",
                entity="user",
                entity_id=user.id,
                detail={"via": "web"},
            )
        page.session.commit()
        return _redirect("/calendar?feed=revoked")
    groups, values = _feed_targets(page)
    target = str(form.get("target") or "")
    if target not in values:
        target = values[0] if values else ""
    if action == "create":
        token = auth_service.new_feed_token(session=page.session, user=user)
        auth_service.record(
            session=page.session,
            actor=actor,
            action="feed_token_created",
            entity="user",
            entity_id=user.id,
            detail={"via": "web"},
        )
        page.session.commit()
    elif action == "show":
        # The token comes back from the page that showed it; it must still be this user's.
        token = str(form.get("token") or "")[:200]
        if not auth_service.feed_token_matches(user=user, token=token):
            return _redirect("/calendar?feed=expired")
    else:
        return _redirect("/calendar")
    return page.render(
        "calendar_feed.html",
        token=token,
        target=target,
        groups=groups,
        links=_feed_links(page, token, target) if target else None,
    )


# --- booking ----------------------------------------------------------------------------------


def _unplanned_rows(page: Page, series: Series | None) -> list[dict[str, Any]]:
    """The series' meetings the planner could not book, as the series page lists them."""
    if series is None:
        return []
    rows = []
    local_tz = zone(series.tz)
    for item in meeting_service.list_unplanned(session=page.session, series_id=series.id):
        day = meeting_service.local_date(item, series)
        titles = sorted({str(c.get("series_title", "")) for c in item.conflicts or []} - {""})
        sites = sorted({str(c.get("site_name", "")) for c in item.conflicts or []} - {""})
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


def _booking_context(page: Page, form: BookingForm, **values: Any) -> dict[str, Any]:
    tree = queries.unit_tree(page.session)
    flat = queries.flatten(tree)
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
        **values,
    }


def _conflict_lines(page: Page, exc: DomainError) -> tuple[list[dict[str, str]], int]:
    lines = []
    for conflict in exc.extra.get("conflicts", [])[:MAX_CONFLICTS_SHOWN]:
        start_at = datetime.fromisoformat(conflict["start_at"])
        lines.append(
            {
                "site": conflict["site_name"],
                "title": conflict["series_title"],
                "when": page.fmt.long_datetime(start_at),
                "occurrence_id": str(conflict.get("occurrence_id") or ""),
            }
        )
    return lines, int(exc.extra.get("conflict_count", len(lines)))


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
    try:
        if series is None:
            series = meeting_service.create(
                session=page.session, series_in=data, settings=settings, now=utcnow()
            )
        else:
            meeting_service.update(
                session=page.session, series=series, series_in=data, settings=settings, now=utcnow()
            )
        coming = [
            o
            for o in sorted(series.occurrences, key=lambda o: o.start_at)
            if o.end_at > utcnow() and o.status == OccurrenceStatus.scheduled.value
        ]
        outcome["preview"] = {
            "count": len(coming),
            "first": [page.fmt.long_datetime(o.start_at) for o in coming[:PREVIEW_OCCURRENCES]],
            "holidays": _holidays_skipped(page, data),
        }
        if keep:
            return series, outcome
    except Conflict as exc:
        outcome["conflicts"], outcome["conflict_count"] = _conflict_lines(page, exc)
        if not outcome["conflicts"]:
            outcome["message"] = page._("The booking was refused: %(reason)s", reason=exc.message)
    except DomainError as exc:
        outcome["message"] = page._("The booking was refused: %(reason)s", reason=exc.message)
    page.session.rollback()
    return None, outcome


def _handle_booking(page: Page, form_data: FormData, series: Series | None) -> Response:
    form = BookingForm.from_form(form_data)
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
        return _redirect(f"/calendar?view=month&day={local.isoformat()}&saved={saved.id}")
    status = 409 if outcome["conflicts"] else 422 if outcome["message"] else 200
    context = _booking_context(page, form, **outcome, **template_values)
    return page.render("booking.html", status, **context)


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
    series_id = _parse_id(str(form.get("series_id") or ""))
    if series_id is not None:
        series = page.session.get(Series, series_id)
    booking = BookingForm.from_form(form)
    data = booking.validate(page.translations.gettext)
    outcome: dict[str, Any] = {"preview": None, "conflicts": [], "conflict_count": 0}
    outcome["message"] = None
    if data is not None:
        _, found = _try_booking(page, data, series, keep=False)
        outcome.update(found)
    return page.render("_check.html", form=booking, **outcome)


def _series_or_none(page: Page, series_id: str) -> Series | None:
    parsed = _parse_id(series_id)
    return page.session.get(Series, parsed) if parsed is not None else None


@router.get("/series/{series_id}/edit")
def edit_series(page: EditorPage, series_id: str) -> Response:
    series = _series_or_none(page, series_id)
    if series is None:
        return _not_found(page)
    form = BookingForm.from_series(series, page.translations.gettext, language=page.language)
    return page.render("booking.html", **_booking_context(page, form, series=series))


@router.post("/series/{series_id}/edit")
def update_series(page: EditorPage, series_id: str, form: CheckedForm) -> Response:
    series = _series_or_none(page, series_id)
    if series is None:
        return _not_found(page)
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
        return _not_found(page)
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
    return _redirect("/calendar")


@router.post("/series/{series_id}/unplanned/{day}")
def resolve_unplanned(page: EditorPage, series_id: str, day: str, form: CheckedForm) -> Response:
    """Move a meeting the planner could not book, or accept that it is skipped."""
    series = _series_or_none(page, series_id)
    parsed_day = parse_date(day)
    if series is None or parsed_day is None:
        return _not_found(page)
    action = str(form.get("action") or "")
    moved = OccurrenceForm.from_form(form)
    moved.status = OccurrenceStatus.scheduled.value  # a move books it; nothing to cancel
    message, status_code = None, 422
    try:
        item = meeting_service.get_unplanned(session=page.session, series=series, day=parsed_day)
        assert page.user is not None
        actor = f"user:{page.user.username}"
        if action == "move":
            checked = moved.validate(page.translations.gettext, series.tz)
            if checked is None:
                raise Invalid(page._("Enter a date such as 2026-01-05 and a time such as 07:30."))
            meeting_service.move_unplanned(
                session=page.session, series=series, item=item, start_at=checked[0]
            )
        elif action == "skip":
            meeting_service.skip_unplanned(
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
        return _redirect(f"/series/{series.id}/edit?resolved={action}#unplanned")
    except DomainError as exc:
        page.session.rollback()
        status_code = exc.status_code
        message = page._("The change was refused: %(reason)s", reason=exc.message)
        if isinstance(exc, Conflict):
            lines, _count = _conflict_lines(page, exc)
            if lines:
                clashes = "; ".join(f"{c['site']} – {c['title']} ({c['when']})" for c in lines)
                message = page._("The new time clashes with: %(clashes)s", clashes=clashes)
    series = page.session.get(Series, series.id) or series
    booking = BookingForm.from_series(series, page.translations.gettext, language=page.language)
    context = _booking_context(page, booking, series=series)
    context["unplanned_message"] = message
    return page.render("booking.html", status_code, **context)


# --- an occurrence ----------------------------------------------------------------------------


def _occurrence_or_none(page: Page, occurrence_id: str) -> Occurrence | None:
    parsed = _parse_id(occurrence_id)
    return page.session.get(Occurrence, parsed) if parsed is not None else None


def _live_labels(page: Page) -> dict[str, Any]:
    return {
        "states": labels.translated(labels.SITE_STATES, page.translations.gettext),
        "qualities": labels.translated(labels.QUALITIES, page.translations.gettext),
        "speaking": page._("Speaking"),
        "muted": page._("Muted"),
        "hand": page._("Hand raised (%(position)s)"),
        "none": page._("None"),
        "connection": page._("Live updates"),
        "connected": page._("connected"),
        "reconnecting": page._("reconnecting…"),
        "failed": page._("The action failed: %(reason)s"),
        "not_open": page._("The meeting room is not open yet: it opens when a site joins."),
        "unreachable": page._("The media server cannot be reached; try again."),
        "programme_failed": page._("The programme cannot be shown: %(reason)s"),
        "programme_on": page._("Programme connected."),
        "programme_wait": page._("Connecting to the programme…"),
        "rtt": page._("RTT %(rtt)s ms"),
        "loss": page._("loss"),
    }


def _occurrence_context(page: Page, occurrence: Occurrence) -> dict[str, Any]:
    series = occurrence.series
    sites = queries.invited_sites(session=page.session, occurrence_id=occurrence.id)
    chair = next((s.site_id for s in sites if s.is_chair), series.chair_site_id)
    status = live_status.load(
        session=page.session,
        occurrence_id=occurrence.id,
        site_ids=[s.site_id for s in sites],
        chair_site_id=chair,
        now=utcnow(),
    )
    return {
        "occurrence": occurrence,
        "series": series,
        "sites": sites,
        "site_names": {s.site_id: s.name for s in sites},
        "chair_site_id": chair,
        "live": status,
        "views": {s.site_id: status.site_view(s.site_id) for s in sites},
        "counts": status.counts(),
        "kinds": labels.KINDS,
        "modes": labels.MODES,
        "states": labels.SITE_STATES,
        "qualities": labels.QUALITIES,
        "statuses": labels.OCCURRENCE_STATUSES,
        "live_labels": _script_json(_live_labels(page)),
        "live_initial": _script_json(status.view()),
        "site_names_json": _script_json({str(s.site_id): s.name for s in sites}),
        "attendance": _attendance(page, occurrence),
        "attendance_statuses": ATTENDANCE_STATUSES,
    }


@router.get("/occurrences/{occurrence_id}")
def occurrence_page(page: UserPage, occurrence_id: str) -> Response:
    occurrence = _occurrence_or_none(page, occurrence_id)
    if occurrence is None:
        return _not_found(page)
    form = OccurrenceForm.from_occurrence(occurrence, page.settings.meetings.default_tz)
    context = _occurrence_context(page, occurrence)
    return page.render("occurrence.html", form=form, message=None, conflicts=[], **context)


def _attendance(page: Page, occurrence: Occurrence) -> Any:
    """Attendance once the meeting has started (figures so far while it runs)."""
    if occurrence.start_at > utcnow() or occurrence.status != OccurrenceStatus.scheduled.value:
        return None
    return occurrence_attendance_or_none(page, occurrence.id)


@router.post("/occurrences/{occurrence_id}/edit")
def edit_occurrence(page: EditorPage, occurrence_id: str, form_data: CheckedForm) -> Response:
    occurrence = _occurrence_or_none(page, occurrence_id)
    if occurrence is None:
        return _not_found(page)
    form = OccurrenceForm.from_form(form_data)
    tz = page.settings.meetings.default_tz
    checked = form.validate(page.translations.gettext, tz)
    message: str | None = None
    conflicts: list[dict[str, str]] = []
    status_code = 422
    if checked is None:
        message = page._("Please correct the fields marked below.")
    else:
        start_at, status = checked
        try:
            meeting_service.update_occurrence(
                session=page.session,
                occurrence=occurrence,
                start_at=start_at if start_at != occurrence.start_at else None,
                status=OccurrenceStatus(status),
            )
            assert page.user is not None
            auth_service.record(
                session=page.session,
                actor=f"user:{page.user.username}",
                action="occurrence_updated",
                entity="occurrence",
                entity_id=occurrence.id,
                detail={"start_at": start_at.isoformat(), "status": status, "via": "web"},
            )
            page.session.commit()
            return _redirect(f"/occurrences/{occurrence.id}?saved=1")
        except Conflict as exc:
            page.session.rollback()
            conflicts, _count = _conflict_lines(page, exc)
            message = None if conflicts else exc.message
            status_code = 409
        except DomainError as exc:
            page.session.rollback()
            message = page._("The change was refused: %(reason)s", reason=exc.message)
            status_code = exc.status_code
        occurrence = page.session.get(Occurrence, occurrence.id) or occurrence
    context = _occurrence_context(page, occurrence)
    return page.render(
        "occurrence.html", status_code, form=form, message=message, conflicts=conflicts, **context
    )


def _stream_setup(
    database: Database, settings: Settings, request: Request, occurrence_id: int
) -> tuple[bool, list[int], int] | None:
    """Who may watch, and the occurrence's sites; None when the occurrence does not exist."""
    with database.session() as session:
        if session_user(request, session, settings.secret_key) is None:
            return False, [], 0
        occurrence = session.get(Occurrence, occurrence_id)
        if occurrence is None:
            return None
        sites = queries.invited_sites(session=session, occurrence_id=occurrence_id)
        chair = next((s.site_id for s in sites if s.is_chair), occurrence.series.chair_site_id)
        return True, [s.site_id for s in sites], chair


def _load_status(
    database: Database, occurrence_id: int, site_ids: list[int], chair: int
) -> live_status.LiveStatus:
    with database.session() as session:
        return live_status.load(
            session=session,
            occurrence_id=occurrence_id,
            site_ids=site_ids,
            chair_site_id=chair,
            now=utcnow(),
        )


def _script_json(value: Any) -> str:
    """JSON to place inside a <script> element: "<" cannot end the element early."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/occurrences/{occurrence_id}/live")
async def occurrence_live(request: Request, occurrence_id: str, live: LiveBusDep) -> Response:
    """Server-sent events: a `snapshot` of every site, then `update`s of the sites that change."""
    parsed = _parse_id(occurrence_id)
    database: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    setup = await run_in_threadpool(_stream_setup, database, settings, request, parsed or 0)
    if setup is None or parsed is None:
        return JSONResponse({"detail": "no such occurrence"}, status_code=404)
    allowed, site_ids, chair = setup
    if not allowed:
        return JSONResponse({"detail": "sign in first"}, status_code=401)

    async def stream() -> AsyncIterator[str]:
        async with live.subscribe(occurrence_topic(parsed)) as subscription:
            # Subscribed first, then read: an event stored meanwhile comes twice, and the
            # status skips event ids it has seen.
            status = await run_in_threadpool(_load_status, database, parsed, site_ids, chair)
            yield f"retry: {SSE_RETRY_MS}\n\n"
            yield _sse("snapshot", status.view())
            dropped = subscription.dropped
            loop = asyncio.get_running_loop()
            ends_at = loop.time() + SSE_STREAM_MAX_S
            while (left := ends_at - loop.time()) > 0:
                try:
                    message = await asyncio.wait_for(subscription.get(), min(SSE_HEARTBEAT_S, left))
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if message is None:
                    return
                changed, floor_changed = status.apply(message)
                await asyncio.sleep(SSE_COALESCE_S)
                while (more := subscription.get_nowait()) is not None:
                    more_changed, more_floor = status.apply(more)
                    changed |= more_changed
                    floor_changed = floor_changed or more_floor
                if subscription.dropped != dropped:
                    dropped = subscription.dropped
                    status = await run_in_threadpool(
                        _load_status, database, parsed, site_ids, chair
                    )
                    yield _sse("snapshot", status.view())
                elif changed or floor_changed:
                    yield _sse("update", status.view(changed))

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- the chair console ------------------------------------------------------------------------


@router.get("/occurrences/{occurrence_id}/console")
def console(page: EditorPage, occurrence_id: str) -> Response:
    occurrence = _occurrence_or_none(page, occurrence_id)
    if occurrence is None:
        return _not_found(page)
    context = _occurrence_context(page, occurrence)
    return page.render(
        "console.html",
        message=None,
        actions=labels.FLOOR_ACTIONS,
        media_urls=page.media_urls(),
        **context,
    )


def _floor_message(page: Page, exc: DomainError) -> str:
    if isinstance(exc, Conflict) and "not open" in exc.message:
        return page._("The meeting room is not open yet: it opens when a site joins.")
    if exc.status_code in (502, 503):
        return page._("The media server cannot be reached; try again.")
    return page._("The action failed: %(reason)s", reason=exc.message)


@router.post("/occurrences/{occurrence_id}/floor")
def floor(page: EditorPage, occurrence_id: str, form: CheckedForm, live: LiveBusDep) -> Response:
    """A floor action from the console: JSON for its script, or the console page again."""
    wants_json = "application/json" in page.request.headers.get("accept", "")
    occurrence = _occurrence_or_none(page, occurrence_id)
    if occurrence is None:
        return (
            JSONResponse({"detail": "no such occurrence"}, 404) if wants_json else _not_found(page)
        )
    action_text = str(form.get("action") or "")
    site_id = _parse_id(str(form.get("site_id") or ""))
    try:
        action = FloorAction(action_text)
        if action not in CONSOLE_ACTIONS:
            raise ValueError(action_text)
    except ValueError:
        message = page._("Unknown action.")
        if wants_json:
            return JSONResponse({"detail": message}, 422)
        return page.render(
            "console.html", 422, message=message, actions=labels.FLOOR_ACTIONS,
            media_urls=page.media_urls(),
            **_occurrence_context(page, occurrence),
        )  # fmt: skip
    assert page.user is not None
    user = page.session.get(User, page.user.id)
    settings = page.settings
    try:
        state = bridge_service.floor(
            session=page.session,
            occurrence_id=occurrence.id,
            principal=Principal(user=user),
            action=action,
            site_id=site_id,
            signer=signing.signer_for(settings.grant_key_path),
        )
        page.session.commit()
    except DomainError as exc:
        page.session.rollback()
        message = _floor_message(page, exc)
        if wants_json:
            return JSONResponse({"detail": message}, exc.status_code)
        context = _occurrence_context(page, occurrence)
        return page.render(
            "console.html", exc.status_code, message=message, actions=labels.FLOOR_ACTIONS,
            media_urls=page.media_urls(),
            **context,
        )  # fmt: skip
    publish_floor(live, occurrence.id, state)
    if wants_json:
        return JSONResponse({"floor": state.model_dump(mode="json")})
    return _redirect(f"/occurrences/{occurrence.id}/console")


@router.post("/occurrences/{occurrence_id}/console/grant")
def console_grant(page: EditorPage, occurrence_id: str, _checked: CheckedRequest) -> Response:
    """A viewer's join grant for the console's programme video (WHEP)."""
    occurrence = _occurrence_or_none(page, occurrence_id)
    if occurrence is None:
        return JSONResponse({"detail": page._("This page does not exist.")}, 404)
    settings = page.settings
    now = utcnow()
    opens_at, closes_at = bridge_service.join_window(
        occurrence=occurrence, join_early_min=settings.sfu.join_early_min
    )
    if occurrence.status == OccurrenceStatus.cancelled.value:
        return JSONResponse({"detail": page._("This meeting has been cancelled.")}, 409)
    if not opens_at <= now < closes_at:
        detail = page._(
            "The programme can be watched from %(opens)s until %(closes)s.",
            opens=page.fmt.datetime(opens_at),
            closes=page.fmt.datetime(closes_at),
        )
        return JSONResponse({"detail": detail}, 409)
    expires_at = bridge_service.grant_expiry(
        end_at=occurrence.end_at, now=now, grant_ttl_s=settings.sfu.grant_ttl_s
    ).replace(microsecond=0)
    room = room_name(occurrence.id)
    claims = GrantClaims(
        jti=uuid.uuid4().hex,
        room=room,
        occurrence_id=occurrence.id,
        site_id=CONSOLE_SITE_ID,
        site_name=page._("Chair console"),
        role=PeerRole.viewer,
        chair_site_id=bridge_service.chair_site_id(session=page.session, occurrence=occurrence),
        starts_at=occurrence.start_at,
        ends_at=occurrence.end_at,
        iat=int(now.timestamp()),
        exp=int(expires_at.timestamp()),
    )
    try:
        signer = signing.signer_for(settings.grant_key_path)
        token = signer.sign(claims)
        # Placed like a terminal's viewer: on the room's node, or a node relaying it.
        _origin, viewing = bridge_service.place_sessions(
            session=page.session,
            occurrence=occurrence,
            chair_site=claims.chair_site_id,
            signer=signer,
            now=now,
        )
        page.session.commit()
    except DomainError as exc:
        page.session.rollback()
        return JSONResponse({"detail": exc.message}, exc.status_code)
    return JSONResponse(
        {
            "whep_url": f"{viewing.public_url}/whep/{room}",
            "token": token,
            # The same STUN/TURN servers a terminal gets (TURN credentials for "site" 0).
            "ice_servers": bridge_service.ice_servers(
                settings.sfu, site_id=CONSOLE_SITE_ID, now=now, expires_at=expires_at
            ),
        }
    )
