"""Bridge API shapes that are not part of the worker contract (`confbridge_kernel.contracts`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from confbridge.pagination import Id
from confbridge_kernel.contracts import (
    EventType,
    FloorAction,
    FloorState,
    GrantPurpose,
    PeerStats,
)


class FloorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: FloorAction
    site_id: Id | None = Field(
        default=None,
        description=(
            "target site: required for give, mute, unmute (and for raise_hand/lower_hand by a "
            "user); a terminal's hand actions default to its own site; ignored for take, mute_all"
        ),
    )


class SfuEventRead(BaseModel):
    id: str
    type: EventType
    at: datetime
    node_id: str
    room: str
    occurrence_id: int
    site_id: int | None
    peer_id: str | None
    direction: str | None
    stats: PeerStats | None = None
    floor: FloorState | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    received_at: datetime


class JoinRequest(BaseModel):
    """Optional body of a join: what the grant is for, and what went wrong with the previous
    grant, if anything."""

    purpose: GrantPurpose = Field(
        default=GrantPurpose.media,
        description=(
            "content: a grant to publish the site's presentation (screen, window, slides) "
            "with WHIP; only the chair site or the site that has the floor gets one. "
            "gallery: a grant to view every hall's thumbnail (WHEP), for the chair site's "
            "terminal and for secretariat, IT and admin users"
        ),
    )
    failed_node_id: str | None = Field(
        default=None,
        max_length=100,
        description=(
            "the node the terminal could not reach or lost "
            "(JoinInfo.node_id or JoinInfo.viewing_node_id)"
        ),
    )
