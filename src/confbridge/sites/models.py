"""Administrative units and sites (điểm cầu); a site's terminals are principals of `auth`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from confbridge.auth.models import Terminal
from confbridge.db import Base, UTCDateTime
from confbridge.timeutil import utcnow


class UnitKind(StrEnum):
    province = "province"
    city = "city"  # three-level data from before 2025 (e.g. Hạ Long city)
    district = "district"  # three-level data from before 2025
    commune = "commune"
    ward = "ward"
    special_zone = "special_zone"
    department = "department"
    office = "office"  # Văn phòng UBND, the People's Committee office
    guest = "guest"  # holds guest sites (SIP callers that are no site); never a commune


# Which kinds may sit directly under which: keeps the tree meaningful.
ALLOWED_PARENT_KINDS: dict[UnitKind, set[UnitKind | None]] = {
    UnitKind.province: {None},
    UnitKind.city: {UnitKind.province, None},
    UnitKind.district: {UnitKind.province, UnitKind.city},
    UnitKind.commune: {UnitKind.province, UnitKind.city, UnitKind.district},
    UnitKind.ward: {UnitKind.province, UnitKind.city, UnitKind.district},
    UnitKind.special_zone: {UnitKind.province},
    UnitKind.department: {UnitKind.province, UnitKind.city, UnitKind.district},
    UnitKind.office: {UnitKind.province, UnitKind.city, UnitKind.district},
    UnitKind.guest: {None},
}


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    code: Mapped[str | None] = mapped_column(String(40), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Disabled units (and everything below them) are kept: reports and the audit name them.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    parent: Mapped[Unit | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Unit]] = relationship(back_populates="parent", order_by="Unit.name")
    sites: Mapped[list[Site]] = relationship(back_populates="unit", order_by="Site.name")

    __table_args__ = (
        UniqueConstraint("parent_id", "name", name="uq_units_parent_id_name"),
        Index("ix_units_parent_id", "parent_id"),
    )


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Sites with a meeting history are archived, not deleted: attendance keeps pointing at them.
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The room system's SIP address, canonical (`confbridge.sip_uri`): a call from it joins as
    # this site.
    sip_uri: Mapped[str | None] = mapped_column(String(300))
    # Set on guest sites only: the SIP caller (user@host) that gave a meeting's PIN without
    # being any site's room system. Guests are not listed, invited or counted in reports.
    guest_uri: Mapped[str | None] = mapped_column(String(300))

    unit: Mapped[Unit] = relationship(back_populates="sites")
    terminals: Mapped[list[Terminal]] = relationship(back_populates="site")

    __table_args__ = (
        UniqueConstraint("unit_id", "name", name="uq_sites_unit_id_name"),
        Index("ix_sites_unit_id", "unit_id"),
        # Unique indexes (many NULLs allowed): SQLite adds them without copying the table.
        Index("ix_sites_sip_uri", "sip_uri", unique=True),
        Index("ix_sites_guest_uri", "guest_uri", unique=True),
    )
