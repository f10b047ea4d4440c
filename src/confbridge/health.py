"""Readiness of the control plane: database, schema, media servers and the object store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from confbridge import migrate
from confbridge.db import Database
from confbridge.errors import DomainError
from confbridge.nodes import service as node_service
from confbridge.nodes.models import NodeState
from confbridge.object_store import ObjectStore
from confbridge.timeutil import utcnow


class CheckAnswer(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    """The answer of `/readyz` (200 when ready, else 503 with the same body)."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckAnswer]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def readiness(
    database: Database,
    heard_since: datetime | None = None,
    objects: ObjectStore | None = None,
) -> list[Check]:
    """Each check with a one-line reason; ready when all pass. A node counts as up only if
    it has heartbeated since `heard_since` (this process's start), not on an old record. The
    object store, where one is configured, must answer with its bucket."""
    try:
        with database.session() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
        return [Check("database", False, f"unreachable: {reason}")]
    checks = [Check("database", True, "reachable")]
    current, head = migrate.current_revision(database.engine), migrate.head_revision()
    checks.append(
        Check(
            "migrations",
            current == head,
            f"at {current}" if current == head else f"at {current}, code needs {head}",
        )
    )
    now = utcnow()
    with database.session() as session:
        nodes = node_service.list_(session=session)
    alive = [n for n in nodes if node_service.state_of(n, now) is not NodeState.down]
    # a node last heard before this process started may be a worker of the previous run
    up = [n for n in alive if heard_since is None or n.last_seen_at >= heard_since]
    if up:
        checks.append(Check("sfu_nodes", True, f"{len(up)} of {len(nodes)} up"))
    elif alive:
        checks.append(
            Check(
                "sfu_nodes",
                False,
                f"none of {len(nodes)} registered nodes has reported since the start",
            )
        )
    elif nodes:
        checks.append(Check("sfu_nodes", False, f"all {len(nodes)} registered nodes are down"))
    else:
        checks.append(Check("sfu_nodes", False, "no SFU node has registered"))
    if objects is not None:
        checks.append(_object_store_check(objects))
    return checks


def _object_store_check(objects: ObjectStore) -> Check:
    try:
        objects.check()
    except DomainError as exc:
        return Check("object_store", False, exc.message)
    return Check("object_store", True, f"{objects.describe()} answers")
