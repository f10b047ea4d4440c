"""A room's content share without WebRTC: who presents feeds every viewer's content slot, a new
presenter replaces the old, the chair's `stop_content` and a presenter leaving end it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
from sfu.content import check_presenter
from sfu.errors import SfuError
from sfu.floor import Floor
from sfu.forwarding import Slot, Source
from sfu.pipe import PipeEgress, PipeOut
from sfu.room import Peer, PipedRoomInfo, Room

VP8_CODEC = RtpCodec(VP8, 90_000, 96)
CHAIR, WARD = 1, 2
KEYFRAME = RtpPacket(payload_type=96, sequence_number=5, ssrc=3, payload=b"\x10\x00")


class Out:
    """A slot's transport: the datagrams it would send."""

    def __init__(self) -> None:
        self.transport = self
        self.edge_addr = ("127.0.0.1", 9)
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, _addr: tuple[str, int]) -> None:
        self.sent.append(data)


def presenter(site_id: int, name: str) -> Peer:
    """A connected content session of `site_id` (its source is fed by the test)."""
    return Peer(
        id=f"content-{name}",
        direction="ingest",
        room_name="occ-7",
        site_id=site_id,
        site_name=name,
        role=PeerRole.site,
        pc=None,
        remote_ufrags=set(),
        etag="",
        created_at=datetime.now(UTC),
        connected=True,
        purpose=GrantPurpose.content,
        content_source=Source("video", [VP8_CODEC], label=name),
    )


def viewer(site_id: int, out: Out) -> Peer:
    peer = presenter(site_id, f"viewer-{site_id}")
    peer.id, peer.direction, peer.purpose = f"view-{site_id}", "egress", GrantPurpose.media
    peer.content_source = None
    peer.content_slot = Slot(PipeEgress(out, "video", (VP8_CODEC,)))  # type: ignore[arg-type]
    return peer


def test_content_room_feeds_viewers_replaces_and_stops() -> None:
    changes: list[int | None] = []
    subject = Room(
        PipedRoomInfo("occ-7", 7, CHAIR, datetime.now(UTC) + timedelta(hours=1)),
        on_floor_changed=lambda room: changes.append(room.floor.content_site_id),
    )
    out = Out()
    ward_screen = viewer(WARD, out)
    subject.add(ward_screen)
    assert ward_screen.content_slot is not None and ward_screen.content_slot.source is None

    chair_slides = presenter(CHAIR, "chair")
    subject.add(chair_slides)
    assert subject.content.presenter is chair_slides and changes == [CHAIR]
    assert ward_screen.content_slot.source is chair_slides.content_source
    assert chair_slides.content_source is not None
    chair_slides.content_source.push(KEYFRAME)
    assert len(out.sent) == 1
    # the camera sources are left alone: the presentation is not the chair's camera
    assert subject.pipe_sources() == []

    ward_slides = presenter(WARD, "ward")
    subject.add(ward_slides)
    assert subject.content.presenter is ward_slides and changes == [CHAIR, WARD]
    assert ward_screen.content_slot.source is ward_slides.content_source
    subject.remove(chair_slides)  # the replaced session leaves: nothing changes
    assert subject.content.presenter is ward_slides and changes == [CHAIR, WARD]

    state = subject.apply_floor(FloorCommand(action=FloorAction.stop_content, by="test"))
    assert state.content_site_id is None and subject.content.presenter is None
    assert ward_screen.content_slot.source is None and changes[-1] is None
    assert ward_slides.content_source is not None
    ward_slides.content_source.push(KEYFRAME)
    assert len(out.sent) == 1  # nothing forwarded after the stop


def test_content_room_presenter_leaving_ends_it() -> None:
    subject = Room(
        PipedRoomInfo("occ-7", 7, CHAIR, datetime.now(UTC) + timedelta(hours=1)),
        on_floor_changed=lambda _room: None,
    )
    slides = presenter(CHAIR, "chair")
    subject.add(slides)
    subject.remove(slides)
    assert subject.content.presenter is None and subject.floor.content_site_id is None


def test_content_room_pipes_content_and_an_edge_follows_it() -> None:
    """The origin pipes the presentation marked as content; an edge's viewers follow the
    relayed content while the origin's floor says someone presents, and not after."""
    origin = Room(
        PipedRoomInfo("occ-7", 7, CHAIR, datetime.now(UTC) + timedelta(hours=1)),
        on_floor_changed=lambda _room: None,
    )
    pipe = PipeOut("edge", ("127.0.0.1", 9))
    assert origin.pipe_content() is None
    slides = presenter(WARD, "ward")
    origin.add(slides)
    assert origin.pipe_content() == (WARD, slides.content_source)
    piped = pipe.sync(origin.pipe_sources(), content=origin.pipe_content())
    assert [(p.site_id, p.kind, p.content) for p in piped] == [(WARD, "video", True)]

    edge = Room(
        PipedRoomInfo("occ-7", 7, CHAIR, datetime.now(UTC) + timedelta(hours=1)),
        on_floor_changed=lambda _room: None,
    )
    edge.origin_url = "http://origin"
    screen = viewer(CHAIR, Out())
    edge.add(screen)
    relayed = Source("video", [VP8_CODEC], label="relayed content")
    edge.use_piped({}, origin.floor.state(), relayed)
    assert screen.content_slot is not None and screen.content_slot.source is relayed
    assert edge.pipe_content() == (WARD, relayed)  # a deeper edge gets it too
    late = viewer(WARD, Out())  # a screen joining while the origin presents
    edge.add(late)
    assert late.content_slot is not None and late.content_slot.source is relayed

    origin.apply_floor(FloorCommand(action=FloorAction.stop_content, by="test"))
    assert pipe.sync(origin.pipe_sources(), content=origin.pipe_content()) == []
    edge.use_piped({}, origin.floor.state())
    assert screen.content_slot.source is None and late.content_slot.source is None
    edge.use_piped({}, origin.floor.state(), relayed)  # no presenter: a stray source is not shown
    assert screen.content_slot.source is None
    pipe.close()


def _grant(site_id: int, role: PeerRole, purpose: GrantPurpose) -> GrantClaims:
    now = datetime.now(UTC)
    return GrantClaims(
        jti="j", room="occ-7", occurrence_id=7, site_id=site_id, site_name="x", role=role,
        chair_site_id=CHAIR, starts_at=now, ends_at=now + timedelta(hours=1),
        iat=0, exp=0, purpose=purpose,
    )  # fmt: skip


def test_content_check_presenter_refuses_views_and_sites_without_the_floor() -> None:
    floor = Floor(room="occ-7", chair_site_id=CHAIR)
    check_presenter("whip", _grant(CHAIR, PeerRole.chair, GrantPurpose.content), floor)
    check_presenter("whip", _grant(WARD, PeerRole.site, GrantPurpose.media), floor)
    with pytest.raises(SfuError) as refused:
        check_presenter("whip", _grant(WARD, PeerRole.site, GrantPurpose.content), floor)
    assert refused.value.status == 403 and "floor" in str(refused.value)
    with pytest.raises(SfuError) as viewing:
        check_presenter("whep", _grant(CHAIR, PeerRole.chair, GrantPurpose.content), floor)
    assert viewing.value.status == 403
    floor.apply(FloorCommand(action=FloorAction.give, site_id=WARD, by="test"), {CHAIR, WARD})
    check_presenter("whip", _grant(WARD, PeerRole.site, GrantPurpose.content), floor)
    with pytest.raises(SfuError):
        check_presenter("whip", _grant(WARD, PeerRole.viewer, GrantPurpose.content), floor)
