"""A series' dial-in fields: its meeting number, its PIN and the bridge above it.

Every series gets a meeting number (unique) and a PIN at creation, so that any meeting can be
dialled from a room system without further setup; both may be given instead. The PIN is a
secret of the meeting: it is shown to the secretariat, never written to logs or the audit trail.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.errors import Conflict, Invalid
from confbridge.meetings.models import Series
from confbridge.sip_uri import new_meeting_number, new_pin

DIAL_FIELDS = ("meeting_number", "pin", "upstream_sip_uri")
# Fields whose values an audit record or a log line must not carry.
SECRET_FIELDS = frozenset({"pin"})
# 9 million 7-digit numbers: a collision is rare, ten in a row means something else is wrong.
MAX_NUMBER_ATTEMPTS = 10


def series_with_number(session: Session, meeting_number: str) -> Series | None:
    return session.scalar(select(Series).where(Series.meeting_number == meeting_number))


def free_meeting_number(session: Session) -> str:
    """A random meeting number no series holds (checked in this transaction; the unique
    constraint still guards against a concurrent creation)."""
    for _ in range(MAX_NUMBER_ATTEMPTS):
        number = new_meeting_number()
        if series_with_number(session, number) is None:
            return number
    raise Conflict("no free meeting number was found; try again")


def check_number_free(session: Session, meeting_number: str, series_id: int | None) -> None:
    other = series_with_number(session, meeting_number)
    if other is not None and other.id != series_id:
        raise Conflict(
            f"meeting_number: {meeting_number} is already the number of series {other.id} "
            f"({other.title!r}); choose another or leave it out to get a free one"
        )


def assign(session: Session, series: Series, data: dict[str, Any]) -> None:
    """Set the dial-in fields present in `data` (validated by the schemas); a new series gets a
    generated number and PIN for those not given."""
    if data.get("meeting_number") is not None:
        check_number_free(session, data["meeting_number"], series.id)
        series.meeting_number = data["meeting_number"]
    elif series.meeting_number is None:
        series.meeting_number = free_meeting_number(session)
    if data.get("pin") is not None:
        series.pin = data["pin"]
    elif series.pin is None:
        series.pin = new_pin()
    if "upstream_sip_uri" in data:
        series.upstream_sip_uri = data["upstream_sip_uri"]


def refuse_nulls(changes: dict[str, Any]) -> None:
    for name in ("meeting_number", "pin"):
        if name in changes and changes[name] is None:
            raise Invalid(f"{name}: may not be null (every series can be dialled)")


def without_secrets(detail: dict[str, Any]) -> dict[str, Any]:
    """`detail` for the audit trail: a changed PIN is noted, its value is not."""
    return {k: ("(changed)" if k in SECRET_FIELDS else v) for k, v in detail.items()}
