"""Every table, imported in one place so that Alembic and `create_all` see them all."""

from confbridge.alerts.models import Alert
from confbridge.attendance.models import (
    Attendance,
    AttendanceCorrection,
    AttendancePending,
    AttendanceRun,
)
from confbridge.auth.models import (
    AuditEntry,
    GrantRevocation,
    SfuNodeEnrolment,
    SignInThrottle,
    Terminal,
    User,
    UserSession,
)
from confbridge.bridge.models import SfuEventRecord
from confbridge.db import Base
from confbridge.meetings.models import (
    Booking,
    BookingLock,
    Displacement,
    Occurrence,
    Series,
    UnplannedOccurrence,
)
from confbridge.nodes.models import RoomEdge, RoomHost, RoomPlacement, SfuNode
from confbridge.recordings.models import Recording
from confbridge.records.models import (
    AgendaItem,
    AssignedTask,
    Conclusion,
    Document,
    Invitation,
    Notice,
    Progress,
    SiteContact,
    SiteWebhook,
)
from confbridge.sites.models import Site, Unit
from confbridge.terminals.models import PairingCode, TerminalState

metadata = Base.metadata

__all__ = [
    "AgendaItem",
    "Alert",
    "AssignedTask",
    "Attendance",
    "AttendanceCorrection",
    "AttendancePending",
    "AttendanceRun",
    "AuditEntry",
    "Booking",
    "BookingLock",
    "Conclusion",
    "Displacement",
    "Document",
    "GrantRevocation",
    "Invitation",
    "Notice",
    "Occurrence",
    "PairingCode",
    "Progress",
    "Recording",
    "RoomEdge",
    "RoomHost",
    "RoomPlacement",
    "Series",
    "SfuEventRecord",
    "SfuNode",
    "SfuNodeEnrolment",
    "SignInThrottle",
    "Site",
    "SiteContact",
    "SiteWebhook",
    "Terminal",
    "TerminalState",
    "Unit",
    "UnplannedOccurrence",
    "User",
    "UserSession",
    "metadata",
]
