"""The chair's gallery in a room: tiles carry halls' thumbnails, the preview a hall's main
layer, both as the viewer points them; the floor never moves them (`sfu.gallery`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from aiortc.rtp import RtpPacket

from confbridge_kernel.contracts import (
    FloorAction,
    FloorCommand,
    GrantClaims,
    GrantPurpose,
    PeerRole,
)
from sfu.codecs import VP8, RtpCodec
from sfu.errors import SfuError
from sfu.forwarding import Slot, Source
from sfu.gallery import Gallery, GalleryLayout, check_gallery
from sfu.layers import SMALL_VIDEO
from sfu.pipe import PipeEgress
from sfu.room import Peer, PipedRoomInfo, Room

VP8_CODEC = RtpCodec(VP8, 90_000, 96)
KEYFRAME = b"\x10\x00"  # VP8 payload descriptor + a key frame's first byte
_seq = count(100)


class Out:
    """A slot's transport: the datagrams it would send."""

    def __init__(self) -> None:
        self.transport = self
        self.edge_addr = ("127.0.0.1", 9)
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, _addr: tuple[str, int]) -> None:
        self.sent.append(data)


def _room() -> Room:
    info = PipedRoomInfo("occ-7", 7, 1, datetime.now(UTC) + timedelta(hours=1))
    return Room(info, on_floor_changed=lambda _room: None)


def _hall(room: Room, site_id: int, *, thumbnail: bool = True) -> dict[str, Source]:
    """A hall publishing its camera (and thumbnail), added as a plain participant."""
    sources = {"video": Source("video", [VP8_CODEC], label=f"hall {site_id}")}
    if thumbnail:
        sources[SMALL_VIDEO] = Source("video", [VP8_CODEC], label=f"hall {site_id} small")
    room.add_plain(
        peer_id=f"hall-{site_id}",
        site_id=site_id,
        site_name=f"Hall {site_id}",
        role=PeerRole.chair if site_id == 1 else PeerRole.site,
        sources=sources,
    )
    return sources


def _gallery(room: Room, tiles: int) -> tuple[Peer, list[Out]]:
    """A gallery session of a preview and `tiles` tiles; the outs of each slot in order."""
    outs = [Out() for _ in range(tiles + 1)]
    slots = [
        Slot(PipeEgress(out, "video", (VP8_CODEC,)))  # type: ignore[arg-type]
        for out in outs
    ]
    peer = Peer(
        id="gallery",
        direction="egress",
        room_name=room.name,
        site_id=0,
        site_name="Console",
        role=PeerRole.viewer,
        pc=None,
        remote_ufrags=set(),
        etag="",
        created_at=datetime.now(UTC),
        connected=True,
        purpose=GrantPurpose.gallery,
        gallery=Gallery(preview=slots[0], tiles=slots[1:]),
    )
    room.peers[peer.id] = peer
    room.add(peer)
    return peer, outs


def _send_keyframes(*sources: Source) -> None:
    for source in sources:
        source.push(
            RtpPacket(payload_type=96, sequence_number=next(_seq), ssrc=7, payload=KEYFRAME)
        )


def _fed(outs: list[Out]) -> list[int]:
    counts = [len(out.sent) for out in outs]
    for out in outs:
        out.sent.clear()
    return counts


def test_gallery_tiles_carry_thumbnails_and_the_preview_the_main_layer() -> None:
    """Each tile gets its hall's thumbnail, the preview its hall's camera; a hall without a
    thumbnail leaves its tile dark rather than sending its main layer."""
    room = _room()
    halls = {site: _hall(room, site, thumbnail=site != 4) for site in (1, 2, 3, 4)}
    peer, outs = _gallery(room, tiles=4)

    shown = room.set_gallery(peer, GalleryLayout(tiles=[1, 2, 3, 4], preview=2))
    assert shown["tiles"] == [
        {"site_id": 1, "live": True},
        {"site_id": 2, "live": True},
        {"site_id": 3, "live": True},
        {"site_id": 4, "live": False},
    ]
    assert shown["preview"] == {"site_id": 2, "live": True}
    assert peer.gallery is not None
    assert [slot.source for slot in peer.gallery.tiles] == [
        halls[1][SMALL_VIDEO],
        halls[2][SMALL_VIDEO],
        halls[3][SMALL_VIDEO],
        None,
    ]
    _send_keyframes(*(s for hall in halls.values() for s in hall.values()))
    assert _fed(outs) == [1, 1, 1, 1, 0]  # preview: hall 2's camera only; hall 4: dark

    # The main layers go nowhere else: the preview's hall camera is the only one forwarded.
    _send_keyframes(halls[1]["video"], halls[3]["video"])
    assert _fed(outs) == [0, 0, 0, 0, 0]


def test_gallery_next_page_repoints_the_same_slots() -> None:
    """A page change points the slots at other halls without new slots; tiles past the
    layout go dark."""
    room = _room()
    halls = {site: _hall(room, site) for site in range(1, 6)}
    peer, outs = _gallery(room, tiles=3)
    assert peer.gallery is not None
    slots = list(peer.gallery.slots)
    room.set_gallery(peer, GalleryLayout(tiles=[1, 2, 3]))
    _send_keyframes(*(hall[SMALL_VIDEO] for hall in halls.values()))
    assert _fed(outs) == [0, 1, 1, 1]

    room.set_gallery(peer, GalleryLayout(tiles=[4, 5]))
    assert peer.gallery.slots == slots
    _send_keyframes(halls[4][SMALL_VIDEO], halls[5][SMALL_VIDEO])  # the switch happens here
    assert _fed(outs) == [0, 1, 1, 0]
    _send_keyframes(*(hall[SMALL_VIDEO] for hall in halls.values()))
    assert _fed(outs) == [0, 1, 1, 0]  # halls 1 to 3 no longer reach the console
    assert [slot.source for slot in peer.gallery.tiles] == [
        halls[4][SMALL_VIDEO],
        halls[5][SMALL_VIDEO],
        None,
    ]


def test_gallery_ignores_the_floor_and_follows_halls_that_come_back() -> None:
    room = _room()
    halls = {site: _hall(room, site) for site in (1, 2)}
    peer, _outs = _gallery(room, tiles=2)
    assert peer.gallery is not None
    room.set_gallery(peer, GalleryLayout(tiles=[1, 2], preview=1))
    room.apply_floor(FloorCommand(action=FloorAction.give, site_id=2, by="test"))
    assert peer.gallery.tiles[0].source is halls[1][SMALL_VIDEO]
    assert peer.gallery.preview.source is halls[1]["video"]

    for hall_peer in [p for p in room.peers.values() if p.site_id == 2]:
        room.remove(hall_peer)
    assert peer.gallery.tiles[1].source is None
    back = _hall(room, 2)
    assert peer.gallery.tiles[1].source is back[SMALL_VIDEO]


def test_gallery_layout_with_more_tiles_than_slots_is_refused() -> None:
    room = _room()
    peer, _outs = _gallery(room, tiles=2)
    with pytest.raises(SfuError) as refused:
        room.set_gallery(peer, GalleryLayout(tiles=[1, 2, 3]))
    assert refused.value.status == 422


def test_gallery_layout_of_another_session_is_refused() -> None:
    room = _room()
    _hall(room, 1)
    hall_peer = next(iter(room.peers.values()))
    with pytest.raises(SfuError) as refused:
        room.set_gallery(hall_peer, GalleryLayout(tiles=[1]))
    assert refused.value.status == 409


def _grant(purpose: GrantPurpose, role: PeerRole = PeerRole.viewer) -> GrantClaims:
    now = datetime.now(UTC)
    return GrantClaims(
        jti="g",
        room="occ-7",
        occurrence_id=7,
        site_id=0,
        site_name="Console",
        role=role,
        chair_site_id=1,
        starts_at=now,
        ends_at=now + timedelta(hours=1),
        iat=0,
        exp=0,
        purpose=purpose,
    )


def test_check_gallery_lets_a_gallery_grant_only_view() -> None:
    check_gallery("whep", _grant(GrantPurpose.gallery))
    check_gallery("whip", _grant(GrantPurpose.media, PeerRole.site))
    for direction, role in (("whip", PeerRole.viewer), ("whep", PeerRole.chair)):
        with pytest.raises(SfuError) as refused:
            check_gallery(direction, _grant(GrantPurpose.gallery, role))
        assert refused.value.status == 403
