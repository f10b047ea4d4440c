"""Units, sites and terminals: the domain's verbs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.scope import Scope
from confbridge.errors import Conflict, Invalid, NotFound
from confbridge.sip_uri import MAX_SIP_URI_CHARS, SipUriError, address_key, normalise_sip_uri
from confbridge.sites.models import ALLOWED_PARENT_KINDS, Site, Unit, UnitKind
from confbridge.text import control_character, one_line
from confbridge.timeutil import utcnow

# The unit that holds guest sites, created on first use.
GUEST_UNIT_NAME = "Khách mời (SIP)"
GUEST_SITE_PREFIX = "Khách: "
MAX_SITE_NAME_CHARS = 200


def _audit(
    session: Session,
    actor: str | None,
    action: str,
    entity: str,
    entity_id: int,
    detail: dict[str, Any],
) -> None:
    """The audit entry of a change made for `actor` (none for changes applied from a schedule
    file, which audits the file as a whole)."""
    if actor is not None:
        auth_service.record(
            session=session,
            actor=actor,
            action=action,
            entity=entity,
            entity_id=entity_id,
            detail=detail,
        )


def checked_name(name: str) -> str:
    """A unit's or a site's name, refused (422) when empty, too long or not one line."""
    if not name.strip():
        raise Invalid("name: give a name")
    if len(name) > MAX_SITE_NAME_CHARS:
        raise Invalid(f"name: at most {MAX_SITE_NAME_CHARS} characters")
    if control_character(name) is not None:
        raise Invalid("name: must be one line of text")
    return name


def get_unit(*, session: Session, unit_id: int) -> Unit:
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(f"unit {unit_id} does not exist")
    return unit


def get_unit_by_code(*, session: Session, code: str) -> Unit | None:
    return session.scalar(select(Unit).where(Unit.code == code))


def get_unit_by_name(*, session: Session, name: str, parent_id: int | None) -> Unit | None:
    query = select(Unit).where(Unit.name == name)
    query = query.where(
        Unit.parent_id.is_(None) if parent_id is None else Unit.parent_id == parent_id
    )
    return session.scalar(query)


def list_units(
    *,
    session: Session,
    parent_id: int | None = None,
    kind: UnitKind | None = None,
    roots_only: bool = False,
    limit: int = 100,
    offset: int = 0,
    scope: Scope | None = None,
) -> tuple[list[Unit], int]:
    """Units (those of `scope` only, when given); `roots_only`: the tops of what is listed."""
    query = select(Unit)
    if scope is not None:
        query = query.where(scope.clause(Unit.id))
    if parent_id is not None:
        query = query.where(Unit.parent_id == parent_id)
    elif roots_only and (scope is None or scope.whole):
        query = query.where(Unit.parent_id.is_(None))
    elif roots_only:
        # the tops of a scope are its memberships' units (their parents are outside it)
        query = query.where(Unit.id.in_(sorted(scope.top_unit_ids)))
    if kind is not None:
        query = query.where(Unit.kind == kind.value)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    units = session.scalars(query.order_by(Unit.name, Unit.id).limit(limit).offset(offset))
    return list(units), total


def create_unit(
    *,
    session: Session,
    name: str,
    kind: UnitKind,
    parent_id: int | None = None,
    code: str | None = None,
    actor: str | None = None,
) -> Unit:
    name = checked_name(name)
    parent = get_unit(session=session, unit_id=parent_id) if parent_id is not None else None
    if parent is not None:
        check_enabled(parent)
    check_parent_kind(kind=kind, parent_kind=UnitKind(parent.kind) if parent else None)
    if kind == UnitKind.guest:
        raise Invalid("kind: guest units are created by the SIP gateway, not by hand")
    if code is not None and get_unit_by_code(session=session, code=code) is not None:
        # codes are national (the statistics office's), so this names nothing of a province
        raise Conflict(f"a unit with code {code!r} already exists")
    if get_unit_by_name(session=session, name=name, parent_id=parent_id) is not None:
        raise Conflict(f"a unit named {name!r} already exists there")
    unit = Unit(name=name, kind=kind.value, parent_id=parent_id, code=code)
    session.add(unit)
    session.flush()
    detail = {"name": name, "kind": kind.value, "parent_id": parent_id, "code": code}
    _audit(session, actor, "unit_created", "unit", unit.id, detail)
    return unit


def check_enabled(unit: Unit) -> None:
    if unit.disabled_at is not None:
        raise Conflict(f"unit {unit.id} is disabled")


def update_unit(
    *,
    session: Session,
    unit: Unit,
    actor: str,
    name: str | None = None,
    kind: UnitKind | None = None,
) -> dict[str, list[Any]]:
    """Rename a unit or change its kind (which must still fit its parent and its children);
    returns the changes, audited as before → after."""
    check_enabled(unit)
    if unit.kind == UnitKind.guest:
        raise Conflict(f"unit {unit.id} holds SIP guests; it is kept as the gateway made it")
    changes: dict[str, list[Any]] = {}
    if name is not None and (name := checked_name(name)) != unit.name:
        other = get_unit_by_name(session=session, name=name, parent_id=unit.parent_id)
        if other is not None and other.id != unit.id:
            raise Conflict(f"a unit named {name!r} already exists there")
        changes["name"] = [unit.name, name]
    if kind is not None and kind.value != unit.kind:
        if kind == UnitKind.guest:
            raise Invalid("kind: guest units are created by the SIP gateway, not by hand")
        parent_kind = UnitKind(unit.parent.kind) if unit.parent is not None else None
        check_parent_kind(kind=kind, parent_kind=parent_kind)
        for child in unit.children:
            check_parent_kind(kind=UnitKind(child.kind), parent_kind=kind)
        changes["kind"] = [unit.kind, kind.value]
    if changes:
        unit.name = changes.get("name", [None, unit.name])[1]
        unit.kind = changes.get("kind", [None, unit.kind])[1]
        session.flush()
        _audit(session, actor, "unit_updated", "unit", unit.id, {"changes": changes})
    return changes


def mark_disabled(*, session: Session, unit_ids: Iterable[int], now: datetime) -> list[int]:
    """Disable these units (their sites are archived first, a floor up: `meetings.flows`);
    returns those that were not disabled yet."""
    units = session.scalars(
        select(Unit).where(Unit.id.in_(sorted(set(unit_ids))), Unit.disabled_at.is_(None))
    )
    changed = []
    for unit in units:
        unit.disabled_at = now
        changed.append(unit.id)
    session.flush()
    return sorted(changed)


def check_parent_kind(*, kind: UnitKind, parent_kind: UnitKind | None) -> None:
    allowed = ALLOWED_PARENT_KINDS[kind]
    if parent_kind not in allowed:
        where = "at the top" if parent_kind is None else f"under a {parent_kind.value}"
        names = ", ".join(sorted(k.value if k else "no parent" for k in allowed))
        raise Invalid(f"a {kind.value} cannot sit {where} (allowed parent: {names})")


def descendant_unit_ids(*, session: Session, unit_ids: Iterable[int]) -> set[int]:
    """The given units and every unit below them (recursive CTE, SQLite and PostgreSQL)."""
    roots = list(set(unit_ids))
    if not roots:
        return set()
    tree = select(Unit.id).where(Unit.id.in_(roots)).cte("tree", recursive=True)
    tree = tree.union_all(select(Unit.id).where(Unit.parent_id == tree.c.id))
    return set(session.scalars(select(tree.c.id)))


def site_ids_under_units(*, session: Session, unit_ids: Iterable[int]) -> set[int]:
    units = descendant_unit_ids(session=session, unit_ids=unit_ids)
    if not units:
        return set()
    query = select(Site.id).where(
        Site.unit_id.in_(units), Site.archived_at.is_(None), Site.guest_uri.is_(None)
    )
    return set(session.scalars(query))


def get_site(*, session: Session, site_id: int) -> Site:
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound(f"site {site_id} does not exist")
    return site


def get_site_by_name(*, session: Session, unit_id: int, name: str) -> Site | None:
    return session.scalar(select(Site).where(Site.unit_id == unit_id, Site.name == name))


def list_sites(
    *,
    session: Session,
    unit_id: int | None = None,
    q: str | None = None,
    guests: bool = False,
    limit: int = 100,
    offset: int = 0,
    scope: Scope | None = None,
) -> tuple[list[Site], int]:
    """Active sites (of `scope` only, when given); guest sites (SIP callers) only when
    `guests` is set, then only they."""
    query = select(Site).where(Site.archived_at.is_(None))
    if scope is not None:
        query = query.where(scope.clause(Site.unit_id))
    query = query.where(Site.guest_uri.is_not(None) if guests else Site.guest_uri.is_(None))
    if unit_id is not None:
        get_unit(session=session, unit_id=unit_id)
        units = descendant_unit_ids(session=session, unit_ids=[unit_id])
        query = query.where(Site.unit_id.in_(units))
    if q:
        query = query.where(Site.name.ilike(f"%{q}%"))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    sites = session.scalars(query.order_by(Site.name, Site.id).limit(limit).offset(offset))
    return list(sites), total


def _ordinary_unit(session: Session, unit_id: int) -> Unit:
    unit = get_unit(session=session, unit_id=unit_id)
    if unit.kind == UnitKind.guest:
        raise Invalid(f"unit_id: unit {unit_id} holds SIP guests; put the site in another unit")
    check_enabled(unit)
    return unit


def checked_sip_uri(
    *, session: Session, sip_uri: str | None, site_id: int | None, scope: Scope | None = None
) -> str | None:
    """`sip_uri` in canonical form, refused (422) when malformed, (409) when another site's
    (named only when it is in `scope`: other provinces' sites are not named)."""
    if sip_uri is None:
        return None
    try:
        canonical = normalise_sip_uri(sip_uri)
    except SipUriError as exc:
        raise Invalid(f"sip_uri: not a SIP address: {exc}") from None
    other = get_site_by_sip_uri(session=session, sip_uri=canonical)
    if other is not None and other.id != site_id:
        if scope is not None and not scope.covers(other.unit_id):
            raise Conflict(f"sip_uri: {canonical} is already the address of another site")
        raise Conflict(f"sip_uri: {canonical} is already the address of site {other.name!r}")
    return canonical


def get_site_by_sip_uri(*, session: Session, sip_uri: str) -> Site | None:
    return session.scalar(select(Site).where(Site.sip_uri == sip_uri))


def create_site(
    *,
    session: Session,
    name: str,
    unit_id: int,
    sip_uri: str | None = None,
    scope: Scope | None = None,
    actor: str | None = None,
) -> Site:
    name = checked_name(name)
    _ordinary_unit(session, unit_id)
    if get_site_by_name(session=session, unit_id=unit_id, name=name) is not None:
        raise Conflict(f"a site named {name!r} already exists in unit {unit_id}")
    canonical = checked_sip_uri(session=session, sip_uri=sip_uri, site_id=None, scope=scope)
    site = Site(name=name, unit_id=unit_id, sip_uri=canonical)
    session.add(site)
    session.flush()
    detail = {"name": name, "unit_id": unit_id, "sip_uri": canonical}
    _audit(session, actor, "site_created", "site", site.id, detail)
    return site


def update_site(
    *,
    session: Session,
    site: Site,
    name: str | None = None,
    unit_id: int | None = None,
    sip_uri: str | None = None,
    clear_sip_uri: bool = False,
    scope: Scope | None = None,
    actor: str | None = None,
) -> Site:
    """Rename or move a site, or set its room system's address (`clear_sip_uri` removes it);
    audited as before → after."""
    if site.archived_at is not None:
        raise Conflict(f"site {site.id} is archived")
    if site.guest_uri is not None:
        raise Conflict(f"site {site.id} is a SIP guest; it is kept as the call left it")
    before = {"name": site.name, "unit_id": site.unit_id, "sip_uri": site.sip_uri}
    new_unit = unit_id if unit_id is not None else site.unit_id
    new_name = checked_name(name) if name is not None else site.name
    if unit_id is not None:
        _ordinary_unit(session, unit_id)
    other = get_site_by_name(session=session, unit_id=new_unit, name=new_name)
    if other is not None and other.id != site.id:
        raise Conflict(f"a site named {new_name!r} already exists in unit {new_unit}")
    if sip_uri is not None:
        site.sip_uri = checked_sip_uri(
            session=session, sip_uri=sip_uri, site_id=site.id, scope=scope
        )
    elif clear_sip_uri:
        site.sip_uri = None
    site.name, site.unit_id = new_name, new_unit
    session.flush()
    after = {"name": site.name, "unit_id": site.unit_id, "sip_uri": site.sip_uri}
    changes = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    if changes:
        _audit(session, actor, "site_updated", "site", site.id, {"changes": changes})
    return site


def _guest_unit(session: Session) -> Unit:
    unit = session.scalar(
        select(Unit).where(Unit.kind == UnitKind.guest.value).order_by(Unit.id).limit(1)
    )
    if unit is None:
        unit = Unit(name=GUEST_UNIT_NAME, kind=UnitKind.guest.value, parent_id=None)
        session.add(unit)
        session.flush()
    return unit


def sip_guest_site(
    *, session: Session, caller_uri: str, display_name: str, prefix: str = GUEST_SITE_PREFIX
) -> Site:
    """The guest site of a SIP caller that gave a meeting's PIN but is no site's room system:
    found by the caller's address (`user@host`), else created in the guest unit.

    Its name is "Khách: <display name or user@host>" (`prefix` "" for the bridge above, which
    the chair knows by its own name), made unique in the unit; a later call from the same
    address is the same guest, whatever name it shows.
    """
    key = address_key(caller_uri)
    if key is None:
        raise Invalid(f"caller_uri: {caller_uri[:MAX_SIP_URI_CHARS]!r} is not a SIP address")
    site = session.scalar(select(Site).where(Site.guest_uri == key))
    if site is not None:
        return site
    unit = _guest_unit(session)
    shown = " ".join(one_line(display_name).split()) or key
    base = (prefix + shown)[:MAX_SITE_NAME_CHARS]
    name, number = base, 1
    while get_site_by_name(session=session, unit_id=unit.id, name=name) is not None:
        number += 1
        suffix = f" ({number})"
        name = base[: MAX_SITE_NAME_CHARS - len(suffix)] + suffix
    site = Site(name=name, unit_id=unit.id, guest_uri=key)
    session.add(site)
    session.flush()
    return site


def mark_archived(*, session: Session, site: Site) -> None:
    """Retire a site and revoke its terminals. Whether a meeting still needs it is checked
    first, a floor up (`meetings.flows.archive_site`): sites know nothing of meetings."""
    site.archived_at = utcnow()
    for terminal in site.terminals:
        terminal.revoked_at = terminal.revoked_at or site.archived_at
    session.flush()
