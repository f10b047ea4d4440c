"""Importing a province and its communes from the vietnam-provinces package."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from confbridge.errors import NotFound
from confbridge.sites.divisions import find_province, hall_name, import_province
from confbridge.sites.models import Site, Unit


def test_find_province_by_name_code_and_without_accents() -> None:
    assert find_province("Quảng Ninh").code.value == 22
    assert find_province("quang ninh").code.value == 22
    assert find_province("Tỉnh Quảng Ninh").code.value == 22
    assert find_province("Hà Nội").name == "Thành phố Hà Nội"
    assert find_province("22").name == "Quảng Ninh"
    with pytest.raises(NotFound, match="Atlantis"):
        find_province("Atlantis")


def test_hall_name_lowercases_the_kind() -> None:
    assert hall_name("Phường Hồng Gai") == "Hội trường UBND phường Hồng Gai"
    assert hall_name("Xã Ba Chẽ") == "Hội trường UBND xã Ba Chẽ"
    assert hall_name("Đặc khu Vân Đồn") == "Hội trường UBND đặc khu Vân Đồn"
    assert hall_name("Quảng Ninh") == "Hội trường UBND tỉnh Quảng Ninh"
    assert hall_name("Thành phố Hà Nội") == "Hội trường UBND thành phố Hà Nội"


def test_import_province_creates_54_communes_with_a_hall_each(session: Session) -> None:
    result = import_province(session=session, query="Quảng Ninh")
    session.commit()
    assert (result.units_created, result.sites_created, result.unchanged) == (55, 55, 0)
    province = session.scalar(select(Unit).where(Unit.code == "22"))
    assert province is not None and province.kind == "province"
    kinds = {u.kind for u in province.children}
    assert kinds <= {"commune", "ward", "special_zone"} and len(province.children) == 54
    halls = session.scalar(select(func.count()).select_from(Site))
    assert halls == 55


def test_import_province_is_idempotent(session: Session) -> None:
    import_province(session=session, query="Quảng Ninh")
    session.commit()
    again = import_province(session=session, query="quang ninh")
    session.commit()
    assert (again.units_created, again.sites_created, again.unchanged) == (0, 0, 110)
    assert session.scalar(select(func.count()).select_from(Unit)) == 55
