"""API models of the node registry."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from confbridge.nodes.models import NodeState


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


class NodeEnrol(BaseModel):
    """An admin enrols a node: it gets a key of its own (shown once)."""

    model_config = ConfigDict(extra="forbid")

    node_id: str = Field(min_length=1, max_length=100, description="CONFBRIDGE_SFU_NODE_ID")
    allow_loopback: bool = Field(
        default=False,
        description="it runs on the control plane's machine and registers 127.0.0.1 URLs",
    )
    rotate: bool = Field(
        default=False, description="the node is enrolled already: issue a new key instead"
    )


class NodeEnrolmentRead(BaseModel):
    node_id: str
    local: bool = Field(description="a worker started by `confbridge serve`")
    allow_loopback: bool
    enrolled_at: datetime
    enrolled_by: str
    restarts: int = Field(description="restarts of a local worker by `serve` since enrolment")
    state: NodeState | None = Field(description="None: it has not registered yet")


class NodeEnrolled(NodeEnrolmentRead):
    key: str = Field(description="CONFBRIDGE_SFU_NODE_KEY; shown once, stored as a hash")
