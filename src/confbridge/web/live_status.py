"""The live status of an occurrence's sites, from the SFU's events and floor changes.

The same computation serves the first rendering of a page (from stored events, so a page
opened late is right) and the server-sent events that follow (stored events, then what the
live bus brings). Messages have the shape of `contracts.SfuEvent` as JSON, plus floor messages
(`{"type": "floor", "floor": {...}}`) published by floor commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from confbridge.bridge.models import SfuEventRecord
from confbridge.link_quality import LinkLimits
from confbridge_kernel.contracts import EventType

# Leaving on purpose (the terminal ended its session, the meeting ended) is not a drop.
DELIBERATE_LEAVE_REASONS = frozenset({"deleted", "meeting_ended"})
# Link quality reads the latest stats of each peer; older ones say nothing about now.
STATS_WINDOW = timedelta(seconds=60)
MAX_SEEN_IDS = 50_000


class SiteState:
    not_joined = "not_joined"
    joined = "joined"
    left = "left"
    dropped = "dropped"


@dataclass
class SiteLive:
    site_id: int
    peers: dict[str, str] = field(default_factory=dict)  # peer id -> direction
    ever_joined: bool = False
    last_leave_reason: str | None = None
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # peer id -> latest stats

    @property
    def state(self) -> str:
        if self.peers:
            return SiteState.joined
        if not self.ever_joined:
            return SiteState.not_joined
        if self.last_leave_reason in DELIBERATE_LEAVE_REASONS:
            return SiteState.left
        return SiteState.dropped

    def link(
        self, limits: LinkLimits = LinkLimits()
    ) -> tuple[str | None, float | None, float | None]:
        """Quality (good / fair / poor), worst RTT and worst loss over connected peers."""
        current = [self.stats[p] for p in self.peers if p in self.stats]
        if not current:
            return None, None, None
        rtts = [s["rtt_ms"] for s in current if s.get("rtt_ms") is not None]
        losses = [s["loss_ratio"] for s in current if s.get("loss_ratio") is not None]
        rtt = max(rtts) if rtts else None
        loss = max(losses) if losses else None
        quality = limits.grade(loss, rtt)
        return (quality.value if quality else None), rtt, loss


@dataclass
class LiveStatus:
    """Every invited site's live state at one occurrence, and the room's floor."""

    site_ids: list[int]
    chair_site_id: int
    sites: dict[int, SiteLive] = field(default_factory=dict)
    speaker_site_id: int | None = None
    muted: set[int] = field(default_factory=set)
    hands: list[int] = field(default_factory=list)
    voice_activated: bool = False
    content_site_id: int | None = None  # who presents content now (sfu.content)
    limits: LinkLimits = field(default_factory=LinkLimits)  # as the IT page judges links
    _seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.sites = {site_id: SiteLive(site_id) for site_id in self.site_ids}
        self.speaker_site_id = self.speaker_site_id or self.chair_site_id

    def apply(self, message: dict[str, Any]) -> tuple[set[int], bool]:
        """Take one message; return the sites whose state changed and whether the floor did."""
        event_id = message.get("id")
        if event_id is not None:
            if event_id in self._seen:
                return set(), False
            if len(self._seen) >= MAX_SEEN_IDS:
                self._seen.clear()
            self._seen.add(event_id)
        kind = message.get("type")
        if kind in (EventType.floor_changed.value, "floor"):
            floor = message.get("floor")
            return (self._apply_floor(floor), True) if floor else (set(), False)
        site = self.sites.get(message.get("site_id") or 0)
        peer = message.get("peer_id")
        if site is None or not peer:  # not invited (e.g. the console's viewer): not a site
            return set(), False
        if kind == EventType.joined.value:
            site.peers[peer] = message.get("direction") or ""
            site.ever_joined = True
        elif kind == EventType.left.value:
            site.peers.pop(peer, None)
            site.stats.pop(peer, None)
            site.last_leave_reason = (message.get("detail") or {}).get("reason")
        elif kind == EventType.stats.value and message.get("stats"):
            if peer not in site.peers:
                return set(), False
            site.stats[peer] = message["stats"]
        else:
            return set(), False
        return {site.site_id}, False

    def _apply_floor(self, floor: dict[str, Any]) -> set[int]:
        before = {s: self._floor_view(s) for s in self.sites}
        self.speaker_site_id = floor.get("speaker_site_id")
        self.muted = set(floor.get("muted_site_ids") or [])
        self.hands = [s for s in floor.get("hands") or [] if s in self.sites]
        self.voice_activated = bool(floor.get("voice_activated"))
        self.content_site_id = floor.get("content_site_id")
        return {s for s in self.sites if self._floor_view(s) != before[s]}

    def _floor_view(self, site_id: int) -> tuple[bool, bool, int | None]:
        hand = self.hands.index(site_id) + 1 if site_id in self.hands else None
        return site_id == self.speaker_site_id, site_id in self.muted, hand

    def site_view(self, site_id: int) -> dict[str, Any]:
        site = self.sites[site_id]
        speaking, muted, hand = self._floor_view(site_id)
        quality, rtt, loss = site.link(self.limits)
        return {
            "state": site.state,
            "speaking": speaking,
            "muted": muted,
            "hand": hand,
            "quality": quality,
            "rtt_ms": None if rtt is None else round(rtt),
            "loss_pct": None if loss is None else round(loss * 100, 1),
        }

    def floor_view(self) -> dict[str, Any]:
        return {
            "speaker_site_id": self.speaker_site_id,
            "muted_site_ids": sorted(s for s in self.muted if s in self.sites),
            "hands": list(self.hands),
            "voice_activated": self.voice_activated,
            "content_site_id": self.content_site_id,
        }

    def view(self, site_ids: set[int] | None = None) -> dict[str, Any]:
        wanted = self.sites if site_ids is None else site_ids
        return {
            "sites": {str(s): self.site_view(s) for s in wanted if s in self.sites},
            "floor": self.floor_view(),
        }

    def counts(self) -> dict[str, int]:
        result = {
            SiteState.not_joined: 0,
            SiteState.joined: 0,
            SiteState.left: 0,
            SiteState.dropped: 0,
        }
        for site in self.sites.values():
            result[site.state] += 1
        return result


def message_of(record: SfuEventRecord) -> dict[str, Any]:
    """A stored event in the shape the live bus carries."""
    return {
        "id": record.id,
        "type": record.type,
        "at": record.at.isoformat(),
        "site_id": record.site_id,
        "peer_id": record.peer_id,
        "direction": record.direction,
        "stats": record.payload.get("stats"),
        "floor": record.payload.get("floor"),
        "detail": record.payload.get("detail") or {},
    }


def load(
    *,
    session: Session,
    occurrence_id: int,
    site_ids: list[int],
    chair_site_id: int,
    now: datetime,
    limits: LinkLimits | None = None,
) -> LiveStatus:
    """The status from stored events: every join, leave and floor change, recent stats."""
    status = LiveStatus(
        site_ids=site_ids, chair_site_id=chair_site_id, limits=limits or LinkLimits()
    )
    query = (
        select(SfuEventRecord)
        .where(
            SfuEventRecord.occurrence_id == occurrence_id,
            or_(
                SfuEventRecord.type != EventType.stats.value,
                SfuEventRecord.at >= now - STATS_WINDOW,
            ),
        )
        .order_by(SfuEventRecord.at, SfuEventRecord.id)
    )
    for record in session.scalars(query):
        status.apply(message_of(record))
    return status
