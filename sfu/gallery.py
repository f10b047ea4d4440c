"""The chair's gallery (điểm danh): many halls' thumbnails on one viewing session.

A gallery is a WHEP session opened with a gallery grant (`GrantPurpose.gallery`). Its offer
carries only video m-lines: the first is the *preview* (one hall's main layer, shown large
before the chair gives it the floor), each further one a *tile* (one hall's thumbnail, the
small layer of `sfu.layers`, never its main layer). Every m-line is a plain `Slot`; what feeds
each is the viewer's choice, set with a `GalleryLayout` (`POST {session}/layout`), not the
floor's. A new page of the gallery re-points the same slots to other halls' thumbnails with
`Slot.switch_to`, at their next keyframe, as a floor change switches a hall viewer's slot: no
renegotiation, and a tile costs the console what the thumbnail sends (≤ 200 kbit/s).

The room keeps a gallery's slots pointed as halls come and go (`Room.reroute`): a hall that
reconnects appears again in its tile, a hall that leaves leaves its tile dark.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiortc import RTCRtpTransceiver
from pydantic import BaseModel, ConfigDict, Field

from confbridge_kernel.contracts import GALLERY_PAGE_TILES, GrantClaims, GrantPurpose, PeerRole
from sfu.errors import SfuError
from sfu.forwarding import Slot, Source
from sfu.layers import SMALL_VIDEO

if TYPE_CHECKING:
    from sfu.room import Peer

MAX_GALLERY_VIDEOS = GALLERY_PAGE_TILES + 1
"""A gallery offer's video m-lines at most: the preview, then the tiles."""

SourceOf = Callable[[int | None, str], Source | None]
"""The room's live source of a site and kind ("video", `SMALL_VIDEO`), if any."""


class GalleryLayout(BaseModel):
    """What a gallery's viewer wants: the hall of each tile, in the order of its m-lines
    after the preview (None: a dark tile), and the hall previewed large (None: none)."""

    model_config = ConfigDict(extra="forbid")

    tiles: list[int | None] = Field(default_factory=list, max_length=GALLERY_PAGE_TILES)
    preview: int | None = None


@dataclass
class Gallery:
    """A gallery session's slots and the halls they are pointed at."""

    preview: Slot
    tiles: list[Slot]
    layout: GalleryLayout = field(default_factory=GalleryLayout)

    @property
    def slots(self) -> list[Slot]:
        return [self.preview, *self.tiles]

    def set_layout(self, layout: GalleryLayout) -> None:
        """Take the viewer's new layout (422 if it names more tiles than the session has)."""
        if len(layout.tiles) > len(self.tiles):
            raise SfuError(
                422, f"this gallery session has {len(self.tiles)} tiles, not {len(layout.tiles)}"
            )
        self.layout = layout

    def route(self, source_of: SourceOf) -> None:
        """Point every slot at what the layout names: thumbnails in tiles, the main layer in
        the preview; a hall without a thumbnail (or absent) leaves its tile dark."""
        sites: Sequence[int | None] = self.layout.tiles
        for index, slot in enumerate(self.tiles):
            site_id = sites[index] if index < len(sites) else None
            if not slot.closed:
                slot.switch_to(source_of(site_id, SMALL_VIDEO))
        if not self.preview.closed:
            self.preview.switch_to(source_of(self.layout.preview, "video"))

    def describe(self, source_of: SourceOf) -> dict[str, object]:
        """The layout as applied: each tile's hall and whether it has a thumbnail to show."""
        tiles = self.layout.tiles
        return {
            "tiles": [
                {
                    "site_id": tiles[i] if i < len(tiles) else None,
                    "live": (tiles[i] if i < len(tiles) else None) is not None
                    and source_of(tiles[i], SMALL_VIDEO) is not None,
                }
                for i in range(len(self.tiles))
            ],
            "preview": {
                "site_id": self.layout.preview,
                "live": source_of(self.layout.preview, "video") is not None,
            },
        }


def check_gallery(direction: str, grant: GrantClaims) -> None:
    """A gallery grant only views; only a gallery grant opens a gallery."""
    if grant.purpose is not GrantPurpose.gallery:
        return
    if direction != "whep" or grant.role is not PeerRole.viewer:
        raise SfuError(403, "a gallery grant only views the halls (WHEP)")


def attach_gallery(peer: Peer, transceivers: Sequence[RTCRtpTransceiver], label: str) -> None:
    """Give a gallery session its preview and tile slots, one per video m-line."""
    kinds = [t.kind for t in transceivers]
    if set(kinds) != {"video"} or not 2 <= len(kinds) <= MAX_GALLERY_VIDEOS:
        raise SfuError(
            400,
            "a gallery offer carries only video tracks: the preview, then 1 to "
            f"{GALLERY_PAGE_TILES} tiles",
        )
    slots = [Slot.attach(t, label=f"{label} gallery {i}") for i, t in enumerate(transceivers)]
    peer.gallery = Gallery(preview=slots[0], tiles=slots[1:])
