"""Content sharing (trình chiếu): one presenter per room, fed to every viewer's content slot.

A presenter is one more ingest `Peer` of its site: a WHIP session opened with a content grant
(`GrantPurpose.content`), whose one video track becomes the peer's `content_source`, kept
apart from the room's camera sources so that the floor never routes it. Each WHEP viewer that
offers a second video m-line gets a `content_slot` on it, fed by the presenter's source while
someone shares and by nothing otherwise (a viewer offering one video m-line gets no content).

Content reaches edges as the programme does: a relay session below this node (sfu.cascade)
gets a content slot on its last video track, and a pipe (sfu.pipe) carries the content source
as one more piped source. On the edge that track or piped source is the room's relayed content
(`ContentShare.follow`), which its own viewers' slots follow as they would a presenter's.

One presenter at a time, and a new presenter replaces the one before rather than being
refused: the chair who gives the floor to another hall expects that hall's slides next, and a
refusal would leave the room showing the previous hall's until someone stops it. The chair ends
a presentation with the floor action `stop_content`. Forwarding is the plain `Source` → `Slot`
path, so a content packet costs what a camera packet costs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiortc import RTCRtpTransceiver

from confbridge_kernel.contracts import EventType, GrantClaims, GrantPurpose, PeerRole
from sfu.cascade import RELAY_VIDEO_TRACKS
from sfu.errors import SfuError
from sfu.forwarding import Slot, Source

if TYPE_CHECKING:
    from sfu.floor import Floor
    from sfu.room import Peer

CONTENT_VIDEO_SLOT = 1
"""A WHEP viewer's video m-lines: the programme first, then content (index 1)."""


def check_presenter(direction: str, grant: GrantClaims, floor: Floor) -> None:
    """Refuse a content grant used to view, or by a site that may not present now."""
    if grant.purpose is not GrantPurpose.content:
        return
    if direction != "whip":
        raise SfuError(403, "a content grant only publishes; view with the site's own grant")
    if grant.role not in (PeerRole.chair, PeerRole.site) or not floor.may_present(grant.site_id):
        raise SfuError(403, "only the chair site or the site that has the floor may present")


def attach_content(
    peer: Peer, transceivers: list[RTCRtpTransceiver], label: str
) -> RTCRtpTransceiver | None:
    """Give a content presenter its source, or a viewer its content slot (if it offered a
    second video m-line); returns the transceiver taken, which the caller leaves alone."""
    if peer.purpose is GrantPurpose.content:
        if [t.kind for t in transceivers] != ["video"]:
            raise SfuError(400, "a content offer carries exactly one video track")
        peer.content_source = Source.attach(transceivers[0], label=f"{label} content")
        return transceivers[0]
    if peer.direction != "egress":
        return None
    # a relay session's programme tracks come first; its content track (if offered) after them
    index = RELAY_VIDEO_TRACKS if peer.role is PeerRole.relay else CONTENT_VIDEO_SLOT
    videos = [t for t in transceivers if t.kind == "video"]
    if len(videos) <= index:
        return None
    taken = videos[index]
    peer.content_slot = Slot.attach(taken, label=f"{label} content")
    return taken


def joined_event(peer: Peer) -> EventType:
    """A presenter's start is not a site joining (attendance counts its camera session)."""
    return EventType.content_started if peer.purpose is GrantPurpose.content else EventType.joined


def left_event(peer: Peer) -> EventType:
    return EventType.content_stopped if peer.purpose is GrantPurpose.content else EventType.left


class ContentShare:
    """A room's presentation: who presents (or, on an edge, the content relayed from the
    origin), and the content slot of every viewer."""

    def __init__(self) -> None:
        self.presenter: Peer | None = None
        self.relayed: Source | None = None
        self._slots: dict[str, Slot] = {}  # viewer peer id → its content slot

    @property
    def source(self) -> Source | None:
        presenter = self.presenter
        source = presenter.content_source if presenter is not None else self.relayed
        return source if source is not None and not source.closed else None

    def follow(self, source: Source | None) -> None:
        """On an edge: the content as the origin sends it (None: nobody presents there)."""
        if source is not self.relayed:
            self.relayed = source
            self._route()

    @property
    def viewers(self) -> int:
        return len(self._slots)

    def start(self, peer: Peer) -> Peer | None:
        """`peer` presents from now on; returns the presenter it replaces (to be closed)."""
        previous, self.presenter = self.presenter, peer
        self._route()
        return previous if previous is not peer else None

    def end(self, peer: Peer | None = None) -> bool:
        """Stop the presentation (only if `peer` presents, when given); True if one ended."""
        if self.presenter is None or (peer is not None and peer is not self.presenter):
            return False
        self.presenter = None
        self._route()
        return True

    def add_viewer(self, peer: Peer) -> None:
        if peer.content_slot is not None and not peer.content_slot.closed:
            self._slots[peer.id] = peer.content_slot
            peer.content_slot.switch_to(self.source)

    def remove_viewer(self, peer: Peer) -> None:
        self._slots.pop(peer.id, None)

    def _route(self) -> None:
        source = self.source
        for slot in self._slots.values():
            if not slot.closed:
                slot.switch_to(source)
