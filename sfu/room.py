"""A room: the peers of one meeting occurrence, their sources and slots, and the floor."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiortc import RTCPeerConnection

from confbridge.contracts import FloorCommand, FloorState, GrantClaims, PeerRole
from sfu.floor import Floor
from sfu.forwarding import Slot, Source

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Peer:
    """One WHIP (ingest) or WHEP (egress) session of a site."""

    id: str
    direction: str  # "ingest" or "egress"
    room_name: str
    site_id: int
    site_name: str
    role: PeerRole
    pc: RTCPeerConnection
    remote_ufrags: set[str]
    etag: str
    created_at: datetime
    connected: bool = False
    sources: dict[str, Source] = field(default_factory=dict)
    video_slots: list[Slot] = field(default_factory=list)
    audio_slots: list[Slot] = field(default_factory=list)
    last_bytes: int = 0

    @property
    def slots(self) -> list[Slot]:
        return [*self.video_slots, *self.audio_slots]

    async def close(self) -> None:
        for slot in self.slots:
            slot.close()
        for source in self.sources.values():
            source.close()
        await self.pc.close()


class Room:
    """Owns its peers; routes the floor holder's sources into every viewer's slots."""

    def __init__(self, grant: GrantClaims, on_floor_changed: Callable[[Room], None]) -> None:
        self.name = grant.room
        self.occurrence_id = grant.occurrence_id
        self.chair_site_id = grant.chair_site_id
        self.ends_at = grant.ends_at
        self.floor = Floor(room=self.name, chair_site_id=grant.chair_site_id)
        self.peers: dict[str, Peer] = {}
        # The newest ingest of each site feeds the programme (a reconnect replaces the old one).
        self._sources: dict[tuple[int, str], Source] = {}
        self._on_floor_changed = on_floor_changed
        self.closed = False

    def present_site_ids(self) -> set[int]:
        return {peer.site_id for peer in self.peers.values()}

    def add(self, peer: Peer) -> None:
        self.peers[peer.id] = peer
        for kind, source in peer.sources.items():
            self._sources[(peer.site_id, kind)] = source
        self.reroute()

    def remove(self, peer: Peer) -> None:
        self.peers.pop(peer.id, None)
        for kind, source in peer.sources.items():
            if self._sources.get((peer.site_id, kind)) is source:
                del self._sources[(peer.site_id, kind)]
                # An older ingest of the same site, still connected, takes over.
                for other in self.peers.values():
                    if other.site_id == peer.site_id and kind in other.sources:
                        self._sources[(peer.site_id, kind)] = other.sources[kind]
        self.reroute()

    def apply_floor(self, command: FloorCommand) -> FloorState:
        if self.floor.apply(command, self.present_site_ids()):
            self.reroute()
            self._on_floor_changed(self)
        return self.floor.state()

    def reroute(self) -> None:
        """Point every slot at the source the floor says it should carry."""
        for (site_id, kind), source in self._sources.items():
            if kind == "audio":
                source.muted = site_id in self.floor.muted
        for peer in self.peers.values():
            if peer.direction != "egress":
                continue
            video_site = self.floor.video_for(peer.site_id)
            for slot in peer.video_slots:
                slot.switch_to(self._source(video_site, "video"))
            audio_sites = self.floor.audio_for(peer.site_id, len(peer.audio_slots))
            for slot, site_id in zip(peer.audio_slots, audio_sites, strict=True):
                slot.switch_to(self._source(site_id, "audio"))

    def _source(self, site_id: int | None, kind: str) -> Source | None:
        if site_id is None:
            return None
        source = self._sources.get((site_id, kind))
        return source if source is not None and not source.closed else None

    async def close(self) -> list[Peer]:
        """Close every peer; returns them so the caller can report who left."""
        self.closed = True
        peers = list(self.peers.values())
        self.peers.clear()
        self._sources.clear()
        for peer in peers:
            await peer.close()
        return peers
