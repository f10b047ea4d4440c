"""What a user may act on: the units (subtrees) its memberships give, per role.

A membership `(unit, role)` gives the role over the unit and every unit below it; a
membership without a unit (the root) gives it over the whole installation. `admin` counts as
every role. Every router asks this module, through one dependency (`auth.dependencies`), and
filters by the `Scope` it returns; nothing filters by roles alone.

The unit tree belongs to the sites floor, above this one: its table is read here by name
from the shared metadata (as `Terminal.site` names `Site`), never imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, false, select, true
from sqlalchemy.orm import Session

from confbridge.auth.models import Role, User
from confbridge.db import Base


@dataclass(frozen=True)
class Scope:
    """The units a user may act on for some roles: all of them (`whole`) or `unit_ids`, the
    subtrees of its memberships already expanded."""

    whole: bool = False
    unit_ids: frozenset[int] = frozenset()
    # the units the memberships name (the tops of the subtrees), for messages
    top_unit_ids: frozenset[int] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.whole and not self.unit_ids

    def covers(self, unit_id: int | None) -> bool:
        """Whether the unit is in scope (`None`, the root, only for a whole scope)."""
        if self.whole:
            return True
        return unit_id is not None and unit_id in self.unit_ids

    def clause(self, unit_column: ColumnElement[Any]) -> ColumnElement[bool]:
        """A WHERE condition: `unit_column` is a unit in scope."""
        if self.whole:
            return true()
        if not self.unit_ids:
            return false()
        return unit_column.in_(sorted(self.unit_ids))

    def union(self, other: Scope) -> Scope:
        """Everything in either scope."""
        if self.whole or other.whole:
            return WHOLE
        return Scope(
            unit_ids=self.unit_ids | other.unit_ids,
            top_unit_ids=self.top_unit_ids | other.top_unit_ids,
        )

    def within(self, other: Scope) -> bool:
        """Whether everything in this scope is also in `other`."""
        if other.whole:
            return True
        return not self.whole and self.unit_ids <= other.unit_ids


WHOLE = Scope(whole=True)
NOTHING = Scope()


def _units() -> Table:
    return Base.metadata.tables["units"]


def subtree_ids(*, session: Session, unit_ids: Iterable[int]) -> frozenset[int]:
    """The given units and every unit below them (a recursive CTE, SQLite and PostgreSQL)."""
    roots = sorted(set(unit_ids))
    if not roots:
        return frozenset()
    units = _units()
    tree = select(units.c.id).where(units.c.id.in_(roots)).cte("scope_tree", recursive=True)
    tree = tree.union_all(select(units.c.id).where(units.c.parent_id == tree.c.id))
    return frozenset(session.scalars(select(tree.c.id)))


def missing_units(*, session: Session, unit_ids: Iterable[int]) -> set[int]:
    """Those of `unit_ids` that are no unit."""
    wanted = set(unit_ids)
    if not wanted:
        return set()
    units = _units()
    found = set(session.scalars(select(units.c.id).where(units.c.id.in_(sorted(wanted)))))
    return wanted - found


def unit_id_by_code(*, session: Session, code: str) -> int | None:
    """The unit with this code (`units.code`), if any."""
    units = _units()
    found = session.scalar(select(units.c.id).where(units.c.code == code))
    return int(found) if found is not None else None


def scope_of_units(*, session: Session, unit_ids: Iterable[int | None]) -> Scope:
    """The scope of memberships on these units (`None`: the root)."""
    tops = set(unit_ids)
    if None in tops:
        return WHOLE
    ids = {u for u in tops if u is not None}
    return Scope(unit_ids=subtree_ids(session=session, unit_ids=ids), top_unit_ids=frozenset(ids))


def scope_of(*, session: Session, user: User, roles: Iterable[Role | str] = ()) -> Scope:
    """Where `user` holds one of `roles` (any role when empty; admin counts as every role).

    A disabled user has no scope at all.
    """
    if not user.active:
        return NOTHING
    wanted = {str(r) for r in roles}
    if wanted:
        wanted.add(Role.admin.value)
    tops = [m.unit_id for m in user.memberships if not wanted or m.role in wanted]
    return scope_of_units(session=session, unit_ids=tops)


def is_root_admin(user: User) -> bool:
    """An administrator of the whole installation."""
    return user.active and any(
        m.unit_id is None and m.role == Role.admin.value for m in user.memberships
    )
