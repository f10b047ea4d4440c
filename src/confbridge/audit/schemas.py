"""Audit log API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AuditRead(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: int | None
    # the client address of the request (sign-ins also name it in `detail`)
    address: str | None
    # before → after of each changed field, when the action recorded them
    changes: dict[str, list[Any]]
    detail: dict[str, Any]
