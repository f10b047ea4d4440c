"""Node heartbeats and the events nodes reported (nodes + bridge): the sessions of a node that
died or restarted end, recorded as events like the ones the node sends."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from confbridge.auth.models import SfuNodeEnrolment
from confbridge.bridge import events as event_service
from confbridge.bridge.models import SfuEventRecord
from confbridge.nodes import service as node_service
from confbridge.nodes.models import SfuNode
from confbridge_kernel.contracts import EventType, NodeHeartbeat, SfuEvent

log = logging.getLogger(__name__)

SESSION_LOOKBACK = timedelta(days=1)
"""Sessions of a node that went down are looked for among events this recent."""
NODE_DOWN = "node_down"
NODE_RESTARTED = "node_restarted"
# A session's start and its end: a site's (attendance) and a presentation's (who presented).
SESSION_ENDS = {
    EventType.joined.value: EventType.left,
    EventType.content_started.value: EventType.content_stopped,
}


def end_sessions(
    *,
    session: Session,
    node_id: str,
    at: datetime,
    now: datetime,
    reason: str,
    joined_before: datetime | None = None,
) -> int:
    """Record a `left` event for every session the node reported joined and never reported
    left (only those joined before `joined_before`, if given), so that attendance shows the
    gap until the site rejoins elsewhere; and a `content_stopped` for every presentation it
    reported started and never stopped.

    Each leaves at `at` (the node's last heartbeat) or at the session's own last event if that
    came later (a heartbeat the control plane missed while it was away), never after
    `joined_before`. Idempotent: the event ids derive from the sessions'.
    """
    since = now - SESSION_LOOKBACK
    left = select(SfuEventRecord.peer_id).where(
        SfuEventRecord.peer_id.is_not(None),
        SfuEventRecord.node_id == node_id,
        SfuEventRecord.type.in_([end.value for end in SESSION_ENDS.values()]),
        SfuEventRecord.at >= since,
    )
    query = select(
        SfuEventRecord.peer_id,
        SfuEventRecord.room,
        SfuEventRecord.occurrence_id,
        SfuEventRecord.site_id,
        SfuEventRecord.direction,
        SfuEventRecord.type,
    ).where(
        SfuEventRecord.node_id == node_id,
        SfuEventRecord.type.in_(list(SESSION_ENDS)),
        SfuEventRecord.at >= since,
        SfuEventRecord.peer_id.not_in(left),
    )
    if joined_before is not None:
        query = query.where(SfuEventRecord.at < joined_before)
    joined = [row for row in session.execute(query).all() if row.peer_id is not None]
    if not joined:
        return 0
    last_at = dict(
        session.execute(
            select(SfuEventRecord.peer_id, func.max(SfuEventRecord.at))
            .where(
                SfuEventRecord.node_id == node_id,
                SfuEventRecord.at >= since,
                SfuEventRecord.peer_id.in_([row.peer_id for row in joined]),
            )
            .group_by(SfuEventRecord.peer_id)
        ).all()
    )
    cap = joined_before or now
    events = [
        SfuEvent(
            id=f"node-down-{row.peer_id}"[:64],
            type=SESSION_ENDS[row.type],
            at=min(cap, max(at, since, last_at.get(row.peer_id) or at)),
            node_id=node_id,
            room=row.room,
            occurrence_id=row.occurrence_id,
            site_id=row.site_id,
            peer_id=row.peer_id,
            direction=row.direction,
            detail={"reason": reason},
        )
        for row in joined
    ]
    event_service.store_events(session=session, events=events)
    log.warning(
        "node %s: %d session(s) recorded as left (%s)",
        node_id,
        len(events),
        reason.replace("_", " "),
    )
    return len(events)


def settle_restart(*, session: Session, node: SfuNode, now: datetime) -> int:
    """The node's worker restarted and has delivered everything its previous process spooled:
    the sessions that process held are gone, whether the control plane heard of them then or
    only now (joined while it was away). They leave at the previous process's last sign of
    life; returns how many."""
    started_at = node.started_at or now
    ended = end_sessions(
        session=session,
        node_id=node.id,
        at=node.previous_seen_at or started_at,
        now=now,
        reason=NODE_RESTARTED,
        joined_before=started_at,
    )
    node.restart_pending = False
    session.flush()
    return ended


def receive_heartbeat(
    *,
    session: Session,
    beat: NodeHeartbeat,
    enrolment: SfuNodeEnrolment | None,
    now: datetime,
) -> SfuNode:
    """A node's heartbeat: register or refresh it, and once a restarted node's spool is empty
    (the events of its previous process all stored), end that process's sessions."""
    node = node_service.heartbeat(session=session, beat=beat, now=now, enrolment=enrolment)
    if node.restart_pending and beat.load.spool_events == 0:
        settle_restart(session=session, node=node, now=now)
    return node
