"""Reads the pages need that no domain service offers in this shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from confbridge.auth.scope import WHOLE, Scope
from confbridge.meetings import access as meeting_access
from confbridge.meetings.models import Booking, Occurrence, Series
from confbridge.sites import service as site_service
from confbridge.sites.models import Site, Unit, UnitKind
from confbridge.text import vietnamese_key

SITE_CHUNK = 900


@dataclass
class UnitNode:
    """A unit of the tree with its sub-units and its own sites, for the site picker."""

    id: int
    name: str
    kind: str
    disabled: bool = False
    depth: int = 0
    children: list[UnitNode] = field(default_factory=list)
    sites: list[tuple[int, str]] = field(default_factory=list)

    def site_count(self) -> int:
        return len(self.sites) + sum(child.site_count() for child in self.children)


def unit_tree(
    session: Session, scope: Scope = WHOLE, *, with_disabled: bool = False
) -> list[UnitNode]:
    """Every unit of `scope`, as a forest sorted by name (a scope's top units are its roots),
    each with its active sites (SIP guests and their unit left out: they are never invited).
    Disabled units only `with_disabled` (the administration pages show them)."""
    units = select(Unit.id, Unit.name, Unit.kind, Unit.parent_id, Unit.disabled_at).where(
        Unit.kind != UnitKind.guest.value, scope.clause(Unit.id)
    )
    if not with_disabled:
        units = units.where(Unit.disabled_at.is_(None))
    rows = session.execute(units).all()
    nodes = {
        unit_id: UnitNode(unit_id, name, kind, disabled_at is not None)
        for unit_id, name, kind, _parent, disabled_at in rows
    }
    roots: list[UnitNode] = []
    for unit_id, _name, _kind, parent_id, _disabled in rows:
        parent = nodes.get(parent_id) if parent_id is not None else None
        (parent.children if parent else roots).append(nodes[unit_id])
    sites = select(Site.id, Site.name, Site.unit_id).where(
        Site.archived_at.is_(None), Site.guest_uri.is_(None), scope.clause(Site.unit_id)
    )
    for site_id, name, unit_id in session.execute(sites.order_by(Site.id)):
        if unit_id in nodes:
            nodes[unit_id].sites.append((site_id, name))

    def settle(node: UnitNode, depth: int) -> None:
        node.depth = depth
        node.children.sort(key=lambda n: (vietnamese_key(n.name), n.id))
        node.sites.sort(key=lambda s: (vietnamese_key(s[1]), s[0]))
        for child in node.children:
            settle(child, depth + 1)

    roots.sort(key=lambda n: (vietnamese_key(n.name), n.id))
    for root in roots:
        settle(root, 0)
    return roots


def flatten(nodes: list[UnitNode]) -> list[UnitNode]:
    """Depth first, as the tree reads top to bottom."""
    result: list[UnitNode] = []
    for node in nodes:
        result.append(node)
        result.extend(flatten(node.children))
    return result


@dataclass(frozen=True)
class CalendarItem:
    occurrence_id: int
    series_id: int
    title: str
    kind: str
    mode: str
    status: str
    start_at: datetime
    end_at: datetime
    moved: bool
    site_count: int


def calendar_items(
    *,
    session: Session,
    from_at: datetime,
    to_at: datetime,
    unit_id: int | None = None,
    kind: str | None = None,
    scope: Scope = WHOLE,
) -> list[CalendarItem]:
    """Occurrences of `scope` overlapping [from_at, to_at); with a unit, those inviting a
    site under it."""
    site_count = (
        select(func.count())
        .where(Booking.occurrence_id == Occurrence.id)
        .correlate(Occurrence)
        .scalar_subquery()
    )
    query = (
        select(Occurrence, Series.title, Series.kind, Series.mode, site_count)
        .join(Series, Series.id == Occurrence.series_id)
        .where(Occurrence.start_at < to_at, Occurrence.end_at > from_at)
    )
    if kind:
        query = query.where(Series.kind == kind)
    if not scope.whole:
        query = query.where(meeting_access.occurrence_clause(scope))
    if unit_id is not None:
        unit_ids = site_service.descendant_unit_ids(session=session, unit_ids=[unit_id])
        in_unit = (
            select(Booking.occurrence_id)
            .join(Site, Site.id == Booking.site_id)
            .where(Site.unit_id.in_(unit_ids))
        )
        query = query.where(Occurrence.id.in_(in_unit))
    rows = session.execute(query.order_by(Occurrence.start_at, Occurrence.id))
    return [
        CalendarItem(
            occurrence.id,
            occurrence.series_id,
            title,
            kind_,
            mode,
            occurrence.status,
            occurrence.start_at,
            occurrence.end_at,
            occurrence.moved,
            count,
        )
        for occurrence, title, kind_, mode, count in rows
    ]


@dataclass(frozen=True)
class InvitedSite:
    site_id: int
    name: str
    unit_name: str
    is_chair: bool


def invited_sites(
    *, session: Session, occurrence_id: int, scope: Scope = WHOLE
) -> list[InvitedSite]:
    """The occurrence's sites (of `scope`), chair first, then by name."""
    query = (
        select(Booking.site_id, Site.name, Unit.name, Booking.is_chair)
        .join(Site, Site.id == Booking.site_id)
        .join(Unit, Unit.id == Site.unit_id)
        .where(Booking.occurrence_id == occurrence_id, scope.clause(Site.unit_id))
    )
    rows = sorted(session.execute(query), key=lambda r: (not r[3], vietnamese_key(r[1]), r[0]))
    return [InvitedSite(*row) for row in rows]


def series_sites(*, session: Session, series: Series, scope: Scope = WHOLE) -> list[InvitedSite]:
    """The sites a series books (of `scope`): its chair first, the sites it names and those of
    the units it invites, then by name."""
    site_ids = {series.chair_site_id} | {site.id for site in series.sites}
    site_ids |= site_service.site_ids_under_units(
        session=session, unit_ids=[unit.id for unit in series.units]
    )
    wanted = sorted(site_ids)
    rows = []
    for start in range(0, len(wanted), SITE_CHUNK):
        query = (
            select(Site.id, Site.name, Unit.name)
            .join(Unit, Unit.id == Site.unit_id)
            .where(Site.id.in_(wanted[start : start + SITE_CHUNK]), scope.clause(Site.unit_id))
        )
        rows += [
            InvitedSite(site_id, name, unit_name, site_id == series.chair_site_id)
            for site_id, name, unit_name in session.execute(query)
        ]
    return sorted(rows, key=lambda r: (not r.is_chair, vietnamese_key(r.name), r.site_id))


def site_names(*, session: Session, site_ids: list[int]) -> dict[int, str]:
    names: dict[int, str] = {}
    for start in range(0, len(site_ids), SITE_CHUNK):
        chunk = site_ids[start : start + SITE_CHUNK]
        names.update(session.execute(select(Site.id, Site.name).where(Site.id.in_(chunk))).all())
    return names
