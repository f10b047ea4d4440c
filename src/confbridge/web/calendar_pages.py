"""The calendar (week and month) and its subscriptions: calendar feed links with a token."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from confbridge.auth import service as auth_service
from confbridge.auth.models import User
from confbridge.meetings import access as meeting_access
from confbridge.meetings.models import Series
from confbridge.text import vietnamese_key
from confbridge.timeutil import utcnow, zone
from confbridge.web import labels, queries
from confbridge.web.context import CheckedForm, Page, UserPage
from confbridge.web.forms import parse_date
from confbridge.web.shared import parse_id, redirect

router = APIRouter(include_in_schema=False)


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
    assert page.user is not None
    tz = page.settings.meetings.default_tz
    today = utcnow().astimezone(zone(tz)).date()
    anchor = parse_date(day or "") or today
    if not 2000 <= anchor.year <= 2199:
        anchor = today
    view = view if view in ("week", "month") else "week"
    unit = parse_id(unit_id or "")
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
        scope=page.user.scope,
    )
    by_day: dict[date, list[queries.CalendarItem]] = {}
    for item in items:
        by_day.setdefault(item.start_at.astimezone(zone(tz)).date(), []).append(item)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    weeks = [days[i : i + 7] for i in range(0, len(days), 7)]
    units = queries.flatten(queries.unit_tree(page.session, page.user.scope, with_disabled=True))

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
    assert page.user is not None
    scope = page.user.scope
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for node in queries.flatten(queries.unit_tree(page.session, scope)):
        if node.sites:
            groups.append((node.name, [(f"site:{i}", name) for i, name in node.sites]))
    series = page.session.execute(
        select(Series.id, Series.title)
        .where(meeting_access.series_clause(scope))
        .order_by(Series.id)
    )
    titles = sorted(series, key=lambda row: vietnamese_key(row[1]))
    series_options = [(f"series:{i}", title) for i, title in titles]
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
        return redirect("/calendar?feed=revoked")
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
            return redirect("/calendar?feed=expired")
    else:
        return redirect("/calendar")
    return page.render(
        "calendar_feed.html",
        token=token,
        target=target,
        groups=groups,
        links=_feed_links(page, token, target) if target else None,
    )
