"""Reading the audit log: filters, and what a scope may read of it.

An administrator of the whole installation reads every entry. An administrator of a unit reads
the entries about things of its units (their sites, units, meetings, occurrences, terminals
and users) and the entries its units' users wrote; nothing of another province.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, true
from sqlalchemy.orm import Session

from confbridge.audit.schemas import AuditRead
from confbridge.auth.models import AuditEntry, Membership, Terminal, User
from confbridge.auth.scope import Scope
from confbridge.meetings.models import Occurrence, Series
from confbridge.sites.models import Site, Unit

MAX_EXPORT_ROWS = 50_000


@dataclass(frozen=True)
class AuditFilter:
    """What to list: a [from_at, to_at) window and exact actor, entity and action."""

    from_at: datetime
    to_at: datetime
    actor: str | None = None
    entity: str | None = None
    action: str | None = None
    entity_id: int | None = None


def scope_clause(scope: Scope) -> ColumnElement[bool]:
    """WHERE condition on `AuditEntry`: about, or by someone of, `scope`'s units."""
    if scope.whole:
        return true()
    sites = select(Site.id).where(scope.clause(Site.unit_id))
    chaired = select(Series.id).where(Series.chair_site_id.in_(sites))
    occurrences = select(Occurrence.id).where(Occurrence.series_id.in_(chaired))
    terminals = select(Terminal.id).where(Terminal.site_id.in_(sites))
    users = select(Membership.user_id).where(scope.clause(Membership.unit_id))
    units = select(Unit.id).where(scope.clause(Unit.id))
    actors = select(literal("user:") + User.username).where(User.id.in_(users))

    def about(entity: str, ids: Select[tuple[int]]) -> ColumnElement[bool]:
        return and_(AuditEntry.entity == entity, AuditEntry.entity_id.in_(ids))

    return or_(
        AuditEntry.actor.in_(actors),
        about("site", sites),
        about("unit", units),
        about("series", chaired),
        about("occurrence", occurrences),
        about("terminal", terminals),
        about("user", users),
    )


def list_(
    *, session: Session, where: AuditFilter, scope: Scope, limit: int = 100, offset: int = 0
) -> tuple[list[AuditEntry], int]:
    """Entries of `scope` matching `where`, newest first, and how many match."""
    query = select(AuditEntry).where(
        AuditEntry.at >= where.from_at, AuditEntry.at < where.to_at, scope_clause(scope)
    )
    if where.actor:
        query = query.where(AuditEntry.actor == where.actor)
    if where.entity:
        query = query.where(AuditEntry.entity == where.entity)
    if where.action:
        query = query.where(AuditEntry.action == where.action)
    if where.entity_id is not None:
        query = query.where(AuditEntry.entity_id == where.entity_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


def changes_of(entry: AuditEntry) -> dict[str, list[object]]:
    """The entry's before → after pairs (`detail.changes`), if it recorded any."""
    changes = (entry.detail or {}).get("changes")
    if not isinstance(changes, dict):
        return {}
    return {
        str(k): list(v) for k, v in changes.items() if isinstance(v, list | tuple) and len(v) == 2
    }


def address_of(entry: AuditEntry) -> str | None:
    """Where the action came from, when the entry says (sign-ins record the address)."""
    address = (entry.detail or {}).get("address")
    return str(address) if address else None


def read(entry: AuditEntry) -> AuditRead:
    """The entry as the API and the pages show it."""
    return AuditRead(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        entity=entry.entity,
        entity_id=entry.entity_id,
        address=entry.address or address_of(entry),
        changes=changes_of(entry),
        detail=entry.detail or {},
    )
