"""API models of the node registry."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from confbridge.nodes.service import NodeState


class NodeRead(BaseModel):
    id: str
    state: NodeState
    public_url: str
    internal_url: str
    version: str
    capacity_peers: int
    machine_id: str
    region: str
    draining: bool
    rooms: int
    peers: int
    packets_per_s: float
    cpu_ratio: float
    spool_events: int
    registered_at: datetime
    last_seen_at: datetime
    down_since: datetime | None
