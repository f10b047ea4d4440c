"""Which meetings a scope sees, and which it may book or change (`auth.scope`).

A user sees a meeting when one of its sites is in the user's scope: the chair, or any site it
invites. It may change the meeting (move, cancel, re-plan, delete) only when the chair site is
in its secretariat scope, and it may invite only sites and units of that scope.

Invitations upward (a ward inviting the province's hall) are refused, with a message that
says whom to ask, rather than held for the upper unit's acceptance: the upper hall's time is
its own secretariat's to give, and a pending invitation would hold a slot nobody agreed to.
The upper secretariat books a meeting that invites both instead.

Something outside every scope of the user answers 404, as if it did not exist: another
province's meetings are not even named to it. Something it sees but may not change answers 403.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, exists, select, true
from sqlalchemy.orm import Session

from confbridge.auth.models import Role, User
from confbridge.auth.scope import Scope, scope_of
from confbridge.errors import Forbidden, NotFound
from confbridge.meetings.models import Booking, Occurrence, Series, series_sites
from confbridge.sites.models import Site

UPWARD_REFUSED = (
    "a meeting may invite only sites of your own units; invitations upward or to other "
    "units are refused: ask the secretariat of a unit above both to book the meeting"
)


def series_clause(scope: Scope) -> ColumnElement[bool]:
    """WHERE condition on `Series`: the chair or an invited site is in `scope`."""
    if scope.whole:
        return true()
    chair = exists().where(Site.id == Series.chair_site_id, scope.clause(Site.unit_id))
    listed = exists().where(
        series_sites.c.series_id == Series.id,
        Site.id == series_sites.c.site_id,
        scope.clause(Site.unit_id),
    )
    booked = exists().where(
        Occurrence.series_id == Series.id,
        Booking.occurrence_id == Occurrence.id,
        Site.id == Booking.site_id,
        scope.clause(Site.unit_id),
    )
    return chair | listed | booked


def occurrence_clause(scope: Scope) -> ColumnElement[bool]:
    """WHERE condition on `Occurrence`: one of its booked sites (the chair's too) is in scope."""
    if scope.whole:
        return true()
    return exists().where(
        Booking.occurrence_id == Occurrence.id,
        Site.id == Booking.site_id,
        scope.clause(Site.unit_id),
    )


def _sees_series(session: Session, series: Series, scope: Scope) -> bool:
    if scope.whole:
        return True
    query = select(Series.id).where(Series.id == series.id, series_clause(scope))
    return session.scalar(query) is not None


def visible_series(*, session: Session, series_id: int, scope: Scope) -> Series:
    """The series if `scope` sees it; else 404, as for a series that does not exist."""
    series = session.get(Series, series_id)
    if series is None or not _sees_series(session, series, scope):
        raise NotFound(f"series {series_id} does not exist")
    return series


def check_chair(*, session: Session, series: Series, scope: Scope) -> None:
    """403 unless the series' chair site is in the secretariat `scope`."""
    if scope.whole:
        return
    unit_id = session.scalar(select(Site.unit_id).where(Site.id == series.chair_site_id))
    if not scope.covers(unit_id):
        raise Forbidden(
            f"series {series.id} is chaired by another unit's site; only that unit's "
            "secretariat (or one above it) may change it"
        )


def editable_series(*, session: Session, series_id: int, read: Scope, write: Scope) -> Series:
    """The series if the user sees it (else 404) and its chair is in `write` (else 403)."""
    series = visible_series(session=session, series_id=series_id, scope=read)
    check_chair(session=session, series=series, scope=write)
    return series


def visible_occurrence(*, session: Session, occurrence_id: int, scope: Scope) -> Occurrence:
    """The occurrence if one of its sites is in `scope`; else 404."""
    occurrence = session.get(Occurrence, occurrence_id)
    if occurrence is not None and not scope.whole:
        query = select(Occurrence.id).where(
            Occurrence.id == occurrence_id, occurrence_clause(scope)
        )
        if session.scalar(query) is None:
            occurrence = None
    if occurrence is None:
        raise NotFound(f"occurrence {occurrence_id} does not exist")
    return occurrence


def editable_occurrence(
    *, session: Session, occurrence_id: int, read: Scope, write: Scope
) -> Occurrence:
    """The occurrence if the user sees it (else 404) and chairs its series (else 403)."""
    occurrence = visible_occurrence(session=session, occurrence_id=occurrence_id, scope=read)
    check_chair(session=session, series=occurrence.series, scope=write)
    return occurrence


def check_invitations(
    *,
    session: Session,
    scope: Scope,
    chair_site_id: int | None,
    site_ids: Iterable[int] | None,
    unit_ids: Iterable[int] | None,
) -> None:
    """403 unless the chair, every invited site and every invited unit is in `scope`.

    Ids that do not exist get the same answer as ids outside the scope, so the answer tells
    nothing about other units.
    """
    if scope.whole:
        return
    wanted_sites = set(site_ids or ()) | ({chair_site_id} if chair_site_id else set())
    if wanted_sites:
        inside = set(
            session.scalars(
                select(Site.id).where(Site.id.in_(sorted(wanted_sites)), scope.clause(Site.unit_id))
            )
        )
        outside = sorted(wanted_sites - inside)
        if outside:
            shown = ", ".join(map(str, outside[:20]))
            raise Forbidden(f"sites {shown} are outside your units: {UPWARD_REFUSED}")
    outside_units = sorted(u for u in set(unit_ids or ()) if not scope.covers(u))
    if outside_units:
        shown = ", ".join(map(str, outside_units[:20]))
        raise Forbidden(f"units {shown} are outside your units: {UPWARD_REFUSED}")


def visible_site_ids(*, session: Session, site_ids: Iterable[int], scope: Scope) -> list[int]:
    """Those of `site_ids` in `scope`, in order."""
    ids = sorted(set(site_ids))
    if scope.whole or not ids:
        return ids
    query = select(Site.id).where(Site.id.in_(ids), scope.clause(Site.unit_id))
    return sorted(session.scalars(query))


def check_secretariat_edit(*, session: Session, user: User | None, occurrence_id: int) -> None:
    """For a secretariat user acting on a meeting: 404 outside their scope, 403 when another
    unit chairs it. Anyone else (a terminal, a user without the role) is left to the action's
    own checks, which refuse them saying why."""
    if user is None or not user.has_role(Role.secretariat):
        return
    editable_occurrence(
        session=session,
        occurrence_id=occurrence_id,
        read=scope_of(session=session, user=user),
        write=scope_of(session=session, user=user, roles=[Role.secretariat]),
    )
