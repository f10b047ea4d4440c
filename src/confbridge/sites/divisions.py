"""Vietnam's administrative divisions (the `vietnam-provinces` package) as units and sites."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sqlalchemy.orm import Session
from vietnam_provinces import Province, VietNamDivisionType, Ward

from confbridge.auth import service as auth_service
from confbridge.errors import NotFound
from confbridge.sites import service as site_service
from confbridge.sites.models import Site, Unit, UnitKind

WARD_KINDS = {
    VietNamDivisionType.XA: UnitKind.commune,
    VietNamDivisionType.PHUONG: UnitKind.ward,
    VietNamDivisionType.DAC_KHU: UnitKind.special_zone,
}
_PROVINCE_PREFIXES = ("thanh pho ", "tinh ", "tp. ", "tp ")


@dataclass
class ImportResult:
    province: Unit | None = None
    units_created: int = 0
    sites_created: int = 0
    unchanged: int = 0


def _fold(text: str) -> str:
    """Case- and accent-insensitive form, so 'quang ninh' finds 'Quảng Ninh'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text.casefold().strip())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def _bare(name: str) -> str:
    folded = _fold(name)
    for prefix in _PROVINCE_PREFIXES:
        if folded.startswith(prefix):
            return folded[len(prefix) :]
    return folded


def find_province(query: str) -> Province:
    """A province by name ('Tỉnh'/'Thành phố' and accents optional), code or codename."""
    wanted = _bare(query)
    for province in Province.iter_all():
        if wanted in {_bare(province.name), province.codename.replace("_", " ")} or (
            query.strip().isdigit() and int(query) == province.code.value
        ):
            return province
    raise NotFound(f"no province named {query!r} (34 provinces since July 2025, e.g. 'Quảng Ninh')")


def province_code(province: Province) -> str:
    return f"{province.code.value:02d}"


def ward_code(ward: Ward) -> str:
    return f"{ward.province_code.value:02d}.{ward.code.value:05d}"


def hall_name(division_name: str) -> str:
    """'Phường Hồng Gai' → 'Hội trường UBND phường Hồng Gai'."""
    kind, _, rest = division_name.partition(" ")
    if kind in {"Phường", "Xã", "Tỉnh"}:
        return f"Hội trường UBND {kind.lower()} {rest}"
    if division_name.startswith("Đặc khu "):
        return f"Hội trường UBND đặc khu {division_name.removeprefix('Đặc khu ')}"
    if division_name.startswith("Thành phố "):
        return f"Hội trường UBND thành phố {division_name.removeprefix('Thành phố ')}"
    return f"Hội trường UBND tỉnh {division_name}"


def _ensure_unit(
    session: Session,
    result: ImportResult,
    *,
    code: str,
    name: str,
    kind: UnitKind,
    parent: Unit | None,
) -> Unit:
    unit = site_service.get_unit_by_code(session=session, code=code)
    if unit is None:
        unit = Unit(code=code, name=name, kind=kind.value, parent_id=parent.id if parent else None)
        session.add(unit)
        session.flush()
        result.units_created += 1
    else:
        result.unchanged += 1
    return unit


def _ensure_hall(session: Session, result: ImportResult, unit: Unit, name: str) -> None:
    if site_service.get_site_by_name(session=session, unit_id=unit.id, name=name) is None:
        session.add(Site(unit_id=unit.id, name=name))
        result.sites_created += 1
    else:
        result.unchanged += 1


def import_province(*, session: Session, query: str, actor: str | None = None) -> ImportResult:
    """Create a province, its communes/wards and one hall site each; safe to run again.
    Audited for `actor`, when given."""
    province = find_province(query)
    result = ImportResult()
    unit = result.province = _ensure_unit(
        session,
        result,
        code=province_code(province),
        name=province.name,
        kind=UnitKind.province,
        parent=None,
    )
    _ensure_hall(session, result, unit, hall_name(province.name))
    for ward in Ward.iter_by_province(province.code):
        child = _ensure_unit(
            session,
            result,
            code=ward_code(ward),
            name=ward.name,
            kind=WARD_KINDS[ward.division_type],
            parent=unit,
        )
        _ensure_hall(session, result, child, hall_name(ward.name))
    session.flush()
    if actor is not None:
        auth_service.record(
            session=session,
            actor=actor,
            action="province_imported",
            entity="unit",
            entity_id=unit.id,
            detail={
                "name": unit.name,
                "units_created": result.units_created,
                "sites_created": result.sites_created,
                "unchanged": result.unchanged,
            },
        )
    return result
