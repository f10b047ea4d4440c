"""Registered SFU nodes and the placement of rooms on them (a node's key: `auth.models`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from confbridge.db import Base, UTCDateTime
from confbridge.timeutil import utcnow


class NodeState(StrEnum):
    up = "up"
    draining = "draining"  # up, but takes no new rooms
    down = "down"


class SfuNode(Base):
    """One worker, as it last reported itself; `up`/`down` follows from `last_seen_at`."""

    __tablename__ = "sfu_nodes"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    public_url: Mapped[str] = mapped_column(String(500))
    internal_url: Mapped[str] = mapped_column(String(500))
    version: Mapped[str] = mapped_column(String(50), default="")
    capacity_peers: Mapped[int] = mapped_column(Integer)
    # Workers with the same machine id extend rooms over pipes; others over the cascade.
    machine_id: Mapped[str] = mapped_column(String(100), default="")
    # The province the node serves (a unit code); "" serves anywhere.
    region: Mapped[str] = mapped_column(String(20), default="")
    # Set by IT staff: no new rooms are placed here; rooms already here carry on.
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    rooms: Mapped[int] = mapped_column(Integer, default=0)
    peers: Mapped[int] = mapped_column(Integer, default=0)
    packets_per_s: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_ratio: Mapped[float] = mapped_column(Float, default=0.0)
    spool_events: Mapped[int] = mapped_column(Integer, default=0)
    # Sessions that joins sent here and that have not connected yet (heartbeats count only
    # connected ones), and when the last was reserved: unused reservations expire.
    pending_sessions: Mapped[int] = mapped_column(Integer, default=0)
    pending_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the monitor found the node silent (None while it heartbeats).
    down_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The worker process reporting now (a new value at each start) and when it started.
    incarnation: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # A new incarnation was seen: the sessions of the previous one are closed once the events
    # it spooled have all arrived (the new one reports an empty spool).
    restart_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    # The last heartbeat of the previous incarnation.
    previous_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RoomPlacement(Base):
    """The node an occurrence's room was placed on, at its first join."""

    __tablename__ = "room_placements"

    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(
        String(100), ForeignKey("sfu_nodes.id", ondelete="CASCADE"), index=True
    )
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RoomHost(Base):
    """Every node that ever held or relayed an occurrence's room: a node's events are
    accepted for these rooms only (placements and edges change; this history does not)."""

    __tablename__ = "room_hosts"

    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RoomEdge(Base):
    """A node that extends a room beyond its origin: it relays the origin's media to viewers."""

    __tablename__ = "room_edges"

    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(
        String(100), ForeignKey("sfu_nodes.id", ondelete="CASCADE"), primary_key=True
    )
    # "pipe" (a worker of the origin's machine) or "cascade" (a node pulling over WHEP)
    kind: Mapped[str] = mapped_column(String(10), default="pipe")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
