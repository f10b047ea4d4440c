"""What the pages read: the unit tree of the booking form, the feed choices, the sites a
series books."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.auth.scope import Scope
from confbridge.meetings.models import Series
from confbridge.sites import service as site_service
from confbridge.sites.models import Site, Unit, UnitKind
from confbridge.web.queries import flatten, series_sites, unit_tree


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


def test_series_sites_are_the_chair_named_sites_and_invited_units_sites_in_scope(
    client: TestClient, admin: dict[str, str], session: Session, sites: dict[str, Site]
) -> None:
    """What the series' record page offers to choose: the chair first, then by name; a site
    of an invited unit counts, one outside the user's scope does not."""
    ward = session.get(Site, sites["p1"].id)
    assert ward is not None
    created = client.post(
        "/api/v1/series",
        json={
            "title": "Giao ban",
            "kind": "giao_ban",
            "mode": "online",
            "rrule": "FREQ=WEEKLY;COUNT=1",
            "dtstart": "2030-03-04T07:30:00",
            "duration_min": 60,
            "chair_site_id": sites["hq"].id,
            "site_ids": [sites["dept"].id],
            "unit_ids": [ward.unit_id],
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    series = session.get(Series, created.json()["id"])
    assert series is not None
    found = series_sites(session=session, series=series)
    assert [(s.site_id, s.is_chair) for s in found] == [
        (sites["hq"].id, True),
        (sites["p1"].id, False),  # "Hội trường UBND Phường Một" before "Phòng họp Sở"
        (sites["dept"].id, False),
    ]
    ward_only = Scope(unit_ids=frozenset({ward.unit_id}))
    assert [s.site_id for s in series_sites(session=session, series=series, scope=ward_only)] == [
        sites["p1"].id
    ]
