"""Which units and sites a scope holds (`auth.scope`); outside it, they do not exist (404)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from confbridge.auth.scope import Scope
from confbridge.errors import NotFound
from confbridge.sites.models import Site, Unit


def visible_site(*, session: Session, site_id: int, scope: Scope) -> Site:
    """The site if it is in `scope`; else 404, as for a site that does not exist."""
    site = session.get(Site, site_id)
    if site is None or not scope.covers(site.unit_id):
        raise NotFound(f"site {site_id} does not exist")
    return site


def visible_unit(*, session: Session, unit_id: int, scope: Scope) -> Unit:
    """The unit if it is in `scope`; else 404."""
    unit = session.get(Unit, unit_id)
    if unit is None or not scope.covers(unit.id):
        raise NotFound(f"unit {unit_id} does not exist")
    return unit
