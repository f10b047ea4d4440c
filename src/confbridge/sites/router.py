"""Units and sites over HTTP (archiving one: `meetings.router`; its terminals: `terminals`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from confbridge.auth.dependencies import ReadScope, SecretariatScope, SiteEditorScope
from confbridge.deps import SessionDep
from confbridge.errors import Forbidden
from confbridge.pagination import MAX_ID, IdPath, Limit, Offset, Page
from confbridge.sites import service as site_service
from confbridge.sites.access import visible_site, visible_unit
from confbridge.sites.models import Site, UnitKind
from confbridge.sites.schemas import (
    SiteCreate,
    SiteRead,
    SiteUpdate,
    UnitCreate,
    UnitDetail,
    UnitRead,
)

router = APIRouter(tags=["sites"])


def site_read(site: Site) -> SiteRead:
    return SiteRead(
        id=site.id,
        name=site.name,
        unit_id=site.unit_id,
        archived_at=site.archived_at,
        sip_uri=site.sip_uri,
        guest=site.guest_uri is not None,
    )


OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


@router.get("/units", response_model=Page[UnitRead])
def list_units(
    reader: ReadScope,
    session: SessionDep,
    parent_id: OptionalId = None,
    kind: UnitKind | None = None,
    roots: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[UnitRead]:
    units, total = site_service.list_units(
        session=session,
        parent_id=parent_id,
        kind=kind,
        roots_only=roots,
        limit=limit,
        offset=offset,
        scope=reader.scope,
    )
    return Page(
        items=[UnitRead.model_validate(u) for u in units], total=total, limit=limit, offset=offset
    )


@router.post("/units", response_model=UnitRead, status_code=status.HTTP_201_CREATED)
def create_unit(body: UnitCreate, editor: SecretariatScope, session: SessionDep) -> UnitRead:
    """A unit under one of yours (a province, at the top, by an administrator of everything)."""
    if body.parent_id is None and not editor.scope.whole:
        raise Forbidden("only an administrator of the whole installation may add a top unit")
    if body.parent_id is not None:
        visible_unit(session=session, unit_id=body.parent_id, scope=editor.scope)
    unit = site_service.create_unit(
        session=session,
        name=body.name,
        kind=body.kind,
        parent_id=body.parent_id,
        code=body.code,
        actor=f"user:{editor.user.username}",
    )
    session.commit()
    return UnitRead.model_validate(unit)


@router.get("/units/{unit_id}", response_model=UnitDetail)
def get_unit(unit_id: IdPath, reader: ReadScope, session: SessionDep) -> UnitDetail:
    unit = visible_unit(session=session, unit_id=unit_id, scope=reader.scope)
    return UnitDetail(
        **UnitRead.model_validate(unit).model_dump(),
        children=[UnitRead.model_validate(c) for c in unit.children],
        site_ids=[s.id for s in unit.sites if s.archived_at is None],
    )


@router.get("/sites", response_model=Page[SiteRead])
def list_sites(
    reader: ReadScope,
    session: SessionDep,
    unit_id: OptionalId = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    guest: Annotated[
        bool, Query(description="list the SIP guests instead of the ordinary sites")
    ] = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[SiteRead]:
    if unit_id is not None:
        visible_unit(session=session, unit_id=unit_id, scope=reader.scope)
    sites, total = site_service.list_sites(
        session=session,
        unit_id=unit_id,
        q=q,
        guests=guest,
        limit=limit,
        offset=offset,
        scope=reader.scope,
    )
    return Page(items=[site_read(s) for s in sites], total=total, limit=limit, offset=offset)


@router.post("/sites", response_model=SiteRead, status_code=status.HTTP_201_CREATED)
def create_site(body: SiteCreate, editor: SiteEditorScope, session: SessionDep) -> SiteRead:
    visible_unit(session=session, unit_id=body.unit_id, scope=editor.scope)
    site = site_service.create_site(
        session=session,
        name=body.name,
        unit_id=body.unit_id,
        sip_uri=body.sip_uri,
        scope=editor.scope,
        actor=f"user:{editor.user.username}",
    )
    session.commit()
    return site_read(site)


@router.get("/sites/{site_id}", response_model=SiteRead)
def get_site(site_id: IdPath, reader: ReadScope, session: SessionDep) -> SiteRead:
    return site_read(visible_site(session=session, site_id=site_id, scope=reader.scope))


@router.patch("/sites/{site_id}", response_model=SiteRead)
def update_site(
    site_id: IdPath, body: SiteUpdate, editor: SiteEditorScope, session: SessionDep
) -> SiteRead:
    """Rename a site, move it to another of your units, or set its room system's address."""
    site = visible_site(session=session, site_id=site_id, scope=editor.scope)
    if body.unit_id is not None:
        visible_unit(session=session, unit_id=body.unit_id, scope=editor.scope)
    site_service.update_site(
        session=session,
        site=site,
        name=body.name,
        unit_id=body.unit_id,
        sip_uri=body.sip_uri,
        clear_sip_uri="sip_uri" in body.model_fields_set and body.sip_uri is None,
        scope=editor.scope,
        actor=f"user:{editor.user.username}",
    )
    session.commit()
    return site_read(site)
