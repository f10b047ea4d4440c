"""Two provinces and users with memberships in them, for the scope tests.

Province A is the small province of `make_province` (hq, wards p1 and p2, dept); province B
has a hall and one ward. Users are signed in through the API, as a browser or client would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.sites import service as site_service
from confbridge.sites.models import UnitKind
from tests.support.factories import PASSWORD, make_province, province_sites

Headers = dict[str, str]


@dataclass
class TwoProvinces:
    """Unit and site ids of both provinces (A: `make_province`; B: a hall and a ward)."""

    units: dict[str, int] = field(default_factory=dict)
    sites: dict[str, int] = field(default_factory=dict)


def make_two_provinces(session: Session) -> TwoProvinces:
    made = TwoProvinces()
    province_a = make_province(session)
    made.units["a"] = province_a.id
    for key, site in province_sites(session).items():
        made.sites[key] = site.id
        made.units.setdefault(key, site.unit_id)
    province_b = site_service.create_unit(session=session, name="Tỉnh Bên", kind=UnitKind.province)
    ward_b = site_service.create_unit(
        session=session, name="Phường Bên", kind=UnitKind.ward, parent_id=province_b.id
    )
    hall_b = site_service.create_site(
        session=session, name="Hội trường UBND tỉnh Bên", unit_id=province_b.id
    )
    ward_hall_b = site_service.create_site(
        session=session, name="Hội trường UBND Phường Bên", unit_id=ward_b.id
    )
    made.units.update(b=province_b.id, wb=ward_b.id)
    made.sites.update(hq_b=hall_b.id, wb=ward_hall_b.id)
    session.commit()
    return made


def scoped_user(
    database: Database,
    client: TestClient,
    username: str,
    memberships: list[tuple[int | None, Role]],
) -> Headers:
    """Create a user with `memberships` (unit id or None for the root, role), sign it in."""
    with database.session() as session:
        auth_service.create(
            session=session,
            username=username,
            password=PASSWORD,
            memberships=[auth_service.MembershipIn(unit_id=u, role=r) for u, r in memberships],
        )
        session.commit()
    response = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
