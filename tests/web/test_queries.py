"""What the pages read: the unit tree of the booking form and the feed choices."""

from __future__ import annotations

from sqlalchemy.orm import Session

from confbridge.sites import service as site_service
from confbridge.sites.models import Unit, UnitKind
from confbridge.web.queries import flatten, unit_tree


def test_unit_tree_lists_units_and_sites_in_vietnamese_order(
    session: Session, province: Unit
) -> None:
    communes = {}
    for name in ("Xã Đại Yên", "Xã Hùng Sơn", "Xã Hồng Phong", "Xã Dương Liễu"):
        communes[name] = site_service.create_unit(
            session=session, name=name, kind=UnitKind.commune, parent_id=province.id
        )
    unit = communes["Xã Hồng Phong"]
    for name in ("Phòng Ủy ban", "Hội trường Đảng ủy", "Hội trường UBND", "Điểm cầu thôn"):
        site_service.create_site(session=session, name=name, unit_id=unit.id)
    session.commit()
    nodes = flatten(unit_tree(session))
    xa = [node.name for node in nodes if node.name.startswith("Xã")]
    assert xa == ["Xã Dương Liễu", "Xã Đại Yên", "Xã Hồng Phong", "Xã Hùng Sơn"]
    sites = next(node.sites for node in nodes if node.id == unit.id)
    assert [name for _id, name in sites] == [
        "Điểm cầu thôn",
        "Hội trường Đảng ủy",
        "Hội trường UBND",
        "Phòng Ủy ban",
    ]
