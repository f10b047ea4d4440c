"""Every table, imported in one place so that Alembic and `create_all` see them all."""

from confbridge.auth.models import AuditEntry, User
from confbridge.bridge.models import SfuEventRecord
from confbridge.db import Base
from confbridge.meetings.models import Booking, BookingLock, Occurrence, Series
from confbridge.sites.models import Site, Terminal, Unit

metadata = Base.metadata

__all__ = [
    "AuditEntry",
    "Booking",
    "BookingLock",
    "Occurrence",
    "Series",
    "SfuEventRecord",
    "Site",
    "Terminal",
    "Unit",
    "User",
    "metadata",
]
