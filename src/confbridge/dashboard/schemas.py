"""API models of the IT dashboard."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from confbridge.alerts.schemas import AlertRead
from confbridge.nodes.schemas import NodeRead
from confbridge_kernel.sip_legs import SipLegInfo


class SiteLinkRead(BaseModel):
    site_id: int
    site_name: str
    rtt_ms: float | None
    loss_ratio: float | None
    reported_at: datetime
    bad: bool
    quality: str | None = None  # "good", "fair" or "poor" (confbridge.link_quality)
    layer: str | None = None  # "main" or "small": what the site's screen receives


class MeetingEdgeRead(BaseModel):
    node_id: str
    kind: str  # "pipe" or "cascade"


class LiveMeetingRead(BaseModel):
    occurrence_id: int
    title: str
    start_at: datetime
    end_at: datetime
    sites: list[SiteLinkRead]
    origin_node_id: str | None
    edges: list[MeetingEdgeRead]


class OfflineTerminalRead(BaseModel):
    terminal_id: int
    name: str
    site_id: int
    site_name: str
    last_seen_at: datetime | None


class SipCallRead(SipLegInfo):
    """A SIP call's media leg, with the node holding it."""

    node_id: str
    guest: bool


class OverviewRead(BaseModel):
    at: datetime
    nodes: list[NodeRead]
    meetings: list[LiveMeetingRead]
    offline_terminals: list[OfflineTerminalRead]
    offline_total: int
    online_total: int = 0
    alerts: list[AlertRead]
    sip_calls: list[SipCallRead]
    sip_unreachable_nodes: list[str]
