"""What SFU nodes report: events checked against the rooms each node held, stored once, listed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from confbridge.auth.scope import WHOLE, Scope
from confbridge.bridge.models import SfuEventRecord
from confbridge.errors import Forbidden, Invalid, NotFound
from confbridge.meetings.models import Occurrence
from confbridge.nodes import placement
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import (
    EventAck,
    EventType,
    SfuEvent,
    room_name,
)

log = logging.getLogger(__name__)

# Rows per INSERT: 11 columns × 80 rows stays under the oldest SQLite limit of 999 parameters.
EVENT_INSERT_CHUNK = 80
MAX_UNKNOWN_LOGGED = 20


def _dialect_insert(session: Session) -> Callable[..., Any]:
    """INSERT with ON CONFLICT support: the two databases ConfBridge runs on."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"storing SFU events is not supported on {name}")


def _event_row(event: SfuEvent, received_at: datetime) -> dict[str, Any]:
    # Through JSON text, so that NaN or infinite stats become null (PostgreSQL refuses NaN).
    payload = json.loads(event.model_dump_json(include={"stats", "floor", "detail"}))
    return {
        "id": event.id,
        "type": event.type.value,
        "at": event.at,
        "node_id": event.node_id,
        "room": event.room,
        "occurrence_id": event.occurrence_id,
        "site_id": event.site_id,
        "peer_id": event.peer_id,
        "direction": event.direction,
        "payload": payload,
        "received_at": received_at,
    }


def _log_unknown_occurrences(session: Session, events: Sequence[SfuEvent]) -> None:
    """Events for occurrences this database lacks are kept, but someone should know."""
    reported = {e.occurrence_id for e in events}
    known = set(session.scalars(select(Occurrence.id).where(Occurrence.id.in_(reported))))
    unknown = sorted(reported - known)
    if unknown:
        log.warning(
            "stored %d SFU event(s) for unknown occurrence(s) %s",
            sum(1 for e in events if e.occurrence_id in unknown),
            ", ".join(map(str, unknown[:MAX_UNKNOWN_LOGGED])),
        )


def check_events_from(*, session: Session, node_id: str, events: Sequence[SfuEvent]) -> None:
    """A node speaks only for itself and only of rooms it holds or held (placed there, or
    relayed there): Forbidden, naming what was refused, otherwise."""
    foreign = sorted({e.node_id for e in events if e.node_id != node_id})
    if foreign:
        log.warning("node %s sent events in the name of node(s) %s: refused", node_id, foreign)
        raise Forbidden(
            f"node {node_id!r} may not report events of node(s) {', '.join(foreign)}",
            node_ids=foreign,
        )
    mislabelled = sorted({e.room for e in events if e.room != room_name(e.occurrence_id)})
    if mislabelled:
        raise Invalid(f"event room(s) {', '.join(mislabelled)} do not match their occurrence")
    reported = {e.occurrence_id for e in events}
    held = placement.rooms_held(session=session, node_id=node_id, occurrence_ids=reported)
    refused = sorted(reported - held)
    if refused:
        log.warning(
            "node %s sent events for rooms it never held (occurrence(s) %s): refused",
            node_id,
            ", ".join(map(str, refused[:MAX_UNKNOWN_LOGGED])),
        )
        # every one named, so that the node drops their events at once (a batch holds 1000)
        raise Forbidden(
            f"node {node_id!r} never held the room of occurrence(s) "
            f"{', '.join(map(str, refused[:MAX_UNKNOWN_LOGGED]))}",
            occurrence_ids=refused,
        )


def store_events(*, session: Session, events: Sequence[SfuEvent]) -> EventAck:
    """Store each event once: an id already stored (or twice in the batch) is a duplicate.

    The database decides (INSERT ... ON CONFLICT DO NOTHING), so two deliveries of one batch
    racing each other still store every event once. Events from a node are checked first
    (`check_events_from`); this stores what the control plane itself records too.
    """
    insert = _dialect_insert(session)
    received_at = utcnow()
    rows = [_event_row(e, received_at) for e in events]
    stored: set[str] = set()
    for start in range(0, len(rows), EVENT_INSERT_CHUNK):
        statement = (
            insert(SfuEventRecord)
            .values(rows[start : start + EVENT_INSERT_CHUNK])
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(SfuEventRecord.id)
        )
        stored.update(session.scalars(statement))
    new_events = [e for e in events if e.id in stored]
    if new_events:
        _log_unknown_occurrences(session, new_events)
    return EventAck(stored=len(stored), duplicates=len(events) - len(stored))


def _occurrence_known(session: Session, occurrence_id: int) -> bool:
    """In the database, or reported on by a worker."""
    if session.get(Occurrence, occurrence_id) is not None:
        return True
    any_event = select(SfuEventRecord.id).where(SfuEventRecord.occurrence_id == occurrence_id)
    return session.scalar(any_event.limit(1)) is not None


def list_events(
    *,
    session: Session,
    occurrence_id: int,
    type_: EventType | None = None,
    limit: int = 100,
    offset: int = 0,
    scope: Scope = WHOLE,
) -> tuple[list[SfuEventRecord], int]:
    """An occurrence's events, oldest first (of `scope`'s sites, and those of no site).

    Events of an occurrence this database does not know are still returned (they are kept on
    purpose); only an unknown occurrence without any event is "not found".
    """
    query = select(SfuEventRecord).where(SfuEventRecord.occurrence_id == occurrence_id)
    if not scope.whole:
        in_scope = select(Site.id).where(scope.clause(Site.unit_id))
        query = query.where(SfuEventRecord.site_id.is_(None) | SfuEventRecord.site_id.in_(in_scope))
    if type_ is not None:
        query = query.where(SfuEventRecord.type == type_.value)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if total == 0 and not _occurrence_known(session, occurrence_id):
        raise NotFound(f"occurrence {occurrence_id} does not exist")
    rows = session.scalars(
        query.order_by(SfuEventRecord.at, SfuEventRecord.id).limit(limit).offset(offset)
    )
    return list(rows), total
