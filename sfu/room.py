"""A room: the peers of one meeting occurrence, their sources and slots, and the floor."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import httpx
from aiortc import RTCPeerConnection
from aiortc.rtcdatachannel import RTCDataChannel

from confbridge_kernel.contracts import (
    FloorCommand,
    FloorState,
    GrantPurpose,
    PeerRole,
    PeerStats,
)
from sfu.cascade import RelayState, Upstream, assign_tracks
from sfu.content import ContentShare
from sfu.errors import SfuError
from sfu.floor import Floor
from sfu.forwarding import Slot, Source
from sfu.gallery import Gallery, GalleryLayout
from sfu.layers import (
    LAYER_TICK_INTERVAL_S,
    SKIP_AHEAD_PACKETS,
    SMALL,
    SMALL_VIDEO,
    LayerPolicy,
    LinkReport,
    RateMeter,
)
from sfu.pipe import PipeIn, PipeOut
from sfu.recording.programme import Programme
from sfu.rtc.egress import EgressStats
from sfu.voice import VOICE_TICK_INTERVAL_S, LevelSample, VoiceDetector

log = logging.getLogger(__name__)


class RoomInfo(Protocol):
    """What a room is made from: a join grant, or the origin's description of a piped room."""

    room: str
    occurrence_id: int
    chair_site_id: int
    ends_at: datetime


class ProgrammeRecorder(Protocol):
    """What the room asks of a recorder (`sfu.recording.Recorder`): follow the programme."""

    def follow(self, programme: Programme) -> None: ...


@dataclass(frozen=True)
class PipedRoomInfo:
    """A room an edge serves for the origin (or upstream edge) that holds its publishers."""

    room: str
    occurrence_id: int
    chair_site_id: int
    ends_at: datetime


@dataclass(eq=False)
class Peer:
    """One WHIP (ingest) or WHEP (egress) session of a site, or one direction of a SIP leg
    (`transport` "sip": no peer connection; `sfu.sip.leg` feeds its source and reads its
    slots)."""

    id: str
    direction: str  # "ingest" or "egress"
    room_name: str
    site_id: int
    site_name: str
    role: PeerRole
    pc: RTCPeerConnection | None
    remote_ufrags: set[str]
    etag: str
    created_at: datetime
    connected: bool = False
    sources: dict[str, Source] = field(default_factory=dict)
    video_slots: list[Slot] = field(default_factory=list)
    audio_slots: list[Slot] = field(default_factory=list)
    last_bytes: int = 0
    # a relay session (another node below this one): the site each track carries, and the
    # channel that tells the relay (sfu.cascade.RelayState)
    relay_video: list[int | None] = field(default_factory=list)
    relay_audio: list[int | None] = field(default_factory=list)
    floor_channel: RTCDataChannel | None = None
    # the grant it was opened with (one live session per grant and direction) and the
    # terminal token that grant was issued to (revocation closes the session)
    grant_id: str = ""
    credential_id: str | None = None
    # "webrtc" or "sip"; a SIP leg's audio codec, and how it fills in its link quality
    # (loss and jitter measured on its RTP, not by aiortc)
    transport: str = "webrtc"
    codec: str | None = None
    measure: Callable[[PeerStats], None] | None = None
    # a viewing session's reports about its video slot, and which layer of the speaker's
    # camera it gets from them (sfu.layers; not for relays and SIP legs)
    video_link: Callable[[], EgressStats] | None = None
    layer: LayerPolicy | None = None
    # content sharing (sfu.content): a presenter's track, or a viewer's second video track
    purpose: GrantPurpose = GrantPurpose.media
    content_source: Source | None = None
    content_slot: Slot | None = None
    # a gallery session's preview and tiles (sfu.gallery), pointed by its viewer
    gallery: Gallery | None = None

    @property
    def slots(self) -> list[Slot]:
        content = [self.content_slot] if self.content_slot is not None else []
        gallery = self.gallery.slots if self.gallery is not None else []
        return [*self.video_slots, *self.audio_slots, *content, *gallery]

    async def close(self) -> None:
        for slot in self.slots:
            slot.close()
        for source in self.sources.values():
            source.close()
        if self.content_source is not None:
            self.content_source.close()
        if self.pc is not None:
            await self.pc.close()


class Room:
    """Owns its peers; routes the floor holder's sources into every viewer's slots.

    In voice-activated mode the room also owns a task that samples its audio sources' levels
    every `VOICE_TICK_INTERVAL_S` and moves the floor to the loudest site (`sfu.voice`); the
    task runs while `floor.voice_activated` is on and is cancelled when the mode goes off or
    the room closes.
    """

    def __init__(self, grant: RoomInfo, on_floor_changed: Callable[[Room], None]) -> None:
        self.name = grant.room
        self.occurrence_id = grant.occurrence_id
        self.chair_site_id = grant.chair_site_id
        self.ends_at = grant.ends_at
        self.floor = Floor(room=self.name, chair_site_id=grant.chair_site_id)
        self.peers: dict[str, Peer] = {}
        self.content = ContentShare()
        # Set once a SIP leg with H.264 is in the room: WebRTC sessions opened from then on
        # are answered with H.264 ahead of the worker's video codec (room systems speak H.264,
        # and packets are forwarded as they are).
        self.prefers_h264 = False
        # The newest ingest of each site feeds the programme (a reconnect replaces the old one).
        self._sources: dict[tuple[int, str], Source] = {}
        self._on_floor_changed = on_floor_changed
        self.closed = False
        # Set on an edge: where its programme comes from, the origin worker's admin URL (fed
        # by `pipe_in`) or the upstream node's WHEP URL (fed by `upstream`, sfu.cascade).
        self.origin_url: str | None = None
        self.pipe_in: PipeIn | None = None
        # On a piped edge: the relay grant its pipe was asked with; the origin sends it back
        # with each pipe state, and nothing else may change this room's pipe.
        self.pipe_token: str | None = None
        self.upstream: Upstream | None = None
        # On an origin: a pipe to each edge (by node id), the edge's admin URL and the token
        # the edge asked with (shown back to it).
        self.pipes_out: dict[str, tuple[PipeOut, str, str]] = {}
        # when the current speaker got the floor (time.monotonic(), as Source levels)
        self.speaker_since = time.monotonic()
        self._voice_task: asyncio.Task[None] | None = None
        # adapts viewers' layers while WebRTC viewers are in the room; ended by close()
        self._layers_task: asyncio.Task[None] | None = None
        self._rates = RateMeter()
        # voice tasks cancelled by `voice_off`, still finishing; close() awaits them
        self._stopping: set[asyncio.Task[None]] = set()
        # writes the programme to a file while set (sfu.recording; started and stopped there)
        self.recorder: ProgrammeRecorder | None = None

    @property
    def is_edge(self) -> bool:
        return self.origin_url is not None

    # pipes between workers (sfu.pipe)

    def pipe_sources(self) -> list[tuple[int, Source]]:
        """Every source feeding the room, with its site: what an origin pipes to its edges
        (thumbnails stay here: an edge's viewers get the main layer)."""
        return [
            (site_id, source)
            for (site_id, kind), source in self._sources.items()
            if kind != SMALL_VIDEO
        ]

    def pipe_content(self) -> tuple[int, Source] | None:
        """The content being presented, with its site: piped to edges beside the sources (on
        an edge, the content relayed to it, so a deeper edge gets it too)."""
        source, site_id = self.content.source, self.floor.content_site_id
        return (site_id, source) if source is not None and site_id is not None else None

    def use_piped(
        self,
        sources: dict[tuple[int, str], Source],
        floor: FloorState,
        content: Source | None = None,
    ) -> None:
        """On an edge: the origin's sources and content (fed by the pipe) and floor replace
        the room's."""
        self._sources = dict(sources)
        self.floor.mirror(floor)
        self.content.follow(content if floor.content_site_id is not None else None)
        self.reroute()

    def use_relayed(self, state: RelayState | None) -> None:
        """On a cascade edge: the upstream's floor, and its tracks under the sites they carry
        (none until the upstream has said)."""
        if state is not None:
            self.floor.mirror(state.floor)
        upstream = self.upstream
        self._sources = upstream.sources_for(state) if upstream and state else {}
        self.content.follow(upstream.content_for(state) if upstream and state else None)
        self.reroute()

    def hold(self) -> None:
        """Stop relaying (an edge whose room moved here): the halls and the floor stay, the
        programme comes from this room's own publishers from now on."""
        if self.pipe_in is not None:
            self.pipe_in.close()
            self.pipe_in = None
        self.origin_url = None
        self._sources = {}
        self.content.follow(None)
        self.reroute()

    def relay_state(self, peer: Peer) -> RelayState:
        """What a relay session carries now, for its data channel."""
        if not peer.relay_video and peer.video_slots:
            self.reroute()  # not routed yet: assign its tracks now
        return RelayState(
            floor=self.floor.state(), video=list(peer.relay_video), audio=list(peer.relay_audio)
        )

    def feed_sources(self) -> list[Source]:
        """On an edge: the sources its programme arrives on (pipe or upstream session)."""
        sources = self.pipe_in.sources() if self.pipe_in is not None else []
        if self.upstream is not None:
            sources += self.upstream.feeds()
        return sources

    def relays(self) -> list[Peer]:
        """The relay sessions of nodes below this one."""
        return [peer for peer in self.peers.values() if peer.role is PeerRole.relay]

    def present_site_ids(self) -> set[int]:
        return {peer.site_id for peer in self.peers.values()}

    def add(self, peer: Peer) -> None:
        self.peers[peer.id] = peer
        if peer.purpose is GrantPurpose.content:
            self.content.start(peer)
            # told even if the same site presents again: edges get the new source
            self.floor.content_site_id = peer.site_id
            self._on_floor_changed(self)
            if self.recorder is not None:
                self.recorder.follow(self.programme())
            return
        self.content.add_viewer(peer)
        for kind, source in peer.sources.items():
            self._sources[(peer.site_id, kind)] = source
        if (
            peer.video_link is not None
            and peer.role is not PeerRole.relay
            and peer.video_slots
            and peer.layer is None
        ):
            peer.layer = LayerPolicy(time.monotonic())
            self._run_layers()
        self.reroute()

    def add_plain(
        self,
        *,
        peer_id: str,
        site_id: int,
        site_name: str,
        role: PeerRole,
        sources: Mapping[str, Source],
        video_slots: Sequence[Slot] = (),
        audio_slots: Sequence[Slot] = (),
    ) -> list[Peer]:
        """Add a participant whose media is not WebRTC (a SIP leg's plain RTP), connected now:
        an ingest peer for its sources and an egress peer for its slots, which the floor routes
        as any session's. Returns both; `remove()` each when it leaves."""
        now = datetime.now(UTC)
        common = dict(
            room_name=self.name,
            site_id=site_id,
            site_name=site_name,
            role=role,
            pc=None,
            remote_ufrags=set(),
            etag="",
            created_at=now,
            connected=True,
        )
        ingest = Peer(id=f"{peer_id}-in", direction="ingest", sources=dict(sources), **common)
        egress = Peer(
            id=f"{peer_id}-out",
            direction="egress",
            video_slots=list(video_slots),
            audio_slots=list(audio_slots),
            **common,
        )
        self.peers[egress.id] = egress
        self.add(ingest)  # routes every slot, the egress peer's included
        return [ingest, egress]

    def prefer_h264(self) -> None:
        """From now on, ask WebRTC sessions of this room for H.264 first."""
        if not self.prefers_h264:
            log.info("room %s: WebRTC sessions are asked for H.264 from now on", self.name)
        self.prefers_h264 = True

    def remove(self, peer: Peer) -> None:
        self.peers.pop(peer.id, None)
        self.content.remove_viewer(peer)
        if self.content.end(peer):
            self._content_changed(None)
        for kind, source in peer.sources.items():
            if self._sources.get((peer.site_id, kind)) is source:
                del self._sources[(peer.site_id, kind)]
                # An older ingest of the same site, still connected, takes over.
                for other in self.peers.values():
                    if other.site_id == peer.site_id and kind in other.sources:
                        self._sources[(peer.site_id, kind)] = other.sources[kind]
        self.reroute()

    def apply_floor(self, command: FloorCommand) -> FloorState:
        speaker = self.floor.speaker_site_id
        if self.floor.apply(command, self.present_site_ids()):
            if self.floor.content_site_id is None:
                self.content.end()  # stop_content: the worker closes the presenter's session
            self._floor_changed(speaker, time.monotonic())
        self._run_voice(self.floor.voice_activated)
        return self.floor.state()

    def set_gallery(self, peer: Peer, layout: GalleryLayout) -> dict[str, object]:
        """Point a gallery session's tiles and preview (sfu.gallery); returns what each
        shows now."""
        gallery = peer.gallery
        if gallery is None or self.peers.get(peer.id) is not peer:
            raise SfuError(409, "not a gallery session of this room")
        gallery.set_layout(layout)
        gallery.route(self._source)
        return gallery.describe(self._source)

    def _content_changed(self, site_id: int | None) -> None:
        if self.floor.content_site_id != site_id:
            self.floor.content_site_id = site_id
            self._on_floor_changed(self)

    def _floor_changed(self, speaker_before: int | None, now: float) -> None:
        if self.floor.speaker_site_id != speaker_before:
            self.speaker_since = now
        self.reroute()
        self._on_floor_changed(self)

    # voice-activated mode

    def voice_samples(self) -> list[LevelSample]:
        """The last audio level of every site whose audio feeds the room, if it sent one."""
        samples = []
        for (site_id, kind), source in self._sources.items():
            level, at = source.audio_level_dbov, source.audio_level_at
            if kind == "audio" and not source.closed and level is not None and at is not None:
                samples.append(LevelSample(site_id, level, at))
        return samples

    def follow_voice(self, detector: VoiceDetector, now: float) -> bool:
        """One voice-activation step: give the floor to the loudest site if the detector says
        so. Returns True if the floor changed."""
        if not self.floor.voice_activated or self.closed:
            return False
        speaker = self.floor.speaker_site_id
        choice = detector.tick(
            now,
            self.voice_samples(),
            speaker_site_id=speaker,
            speaker_since=self.speaker_since,
            muted=self.floor.muted,
        )
        if choice is None or not self.floor.follow_voice(choice):
            return False
        log.info("room %s: voice activation gives the floor to site %s", self.name, choice)
        self._floor_changed(speaker, now)
        return True

    def _run_voice(self, on: bool) -> None:
        task = self._voice_task
        running = task is not None and not task.done()
        if on and not running and not self.closed:
            self._voice_task = asyncio.get_running_loop().create_task(
                self._follow_voice(), name=f"sfu-voice-{self.name}"
            )
        elif not on and task is not None:
            self._voice_task = None
            if not task.done():
                task.cancel()
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)

    async def _follow_voice(self) -> None:
        detector = VoiceDetector()
        while True:
            await asyncio.sleep(VOICE_TICK_INTERVAL_S)
            try:
                self.follow_voice(detector, time.monotonic())
            except Exception:
                log.exception("room %s: voice activation failed", self.name)

    # bandwidth adaptation (sfu.layers)

    def adapt_layers(self, now: float) -> int:
        """One adaptation step: judge each viewer's new reports, move those whose policy says
        so to the other layer of the speaker's camera. Returns how many switched."""
        switched = 0
        main_rates: dict[Source, float | None] = {}
        for peer in self.peers.values():
            policy, link = peer.layer, peer.video_link
            if policy is None or link is None or not peer.connected or not peer.video_slots:
                continue
            slot = peer.video_slots[0]
            site_id = self.floor.video_for(peer.site_id)
            main = self._source(site_id, "video")
            if main is not None and main not in main_rates:
                main_rates[main] = self._rates.rate(main, main.stats().bytes_received, now)
            stats = link()
            choice = None
            if stats.reports_received != policy.reports_seen:
                policy.reports_seen = stats.reports_received
                report = LinkReport(
                    now,
                    stats.fraction_lost,
                    stats.rtt_s,
                    stats.remb_bps,
                    main_rates.get(main) if main is not None else None,
                )
                choice = policy.report(report)
            choice = choice or policy.tick(now)
            if policy.keyframe_due(now):
                slot.request_keyframe()
            if choice is not None:
                switched += 1
                log.info("room %s: %s now gets the %s layer", self.name, peer.site_name, choice)
                # moving down, what the viewer lost on the saturated link will not be
                # repaired: a jump makes it drop that and wait only for the thumbnail's keyframe
                skip = SKIP_AHEAD_PACKETS if choice == SMALL else 0
                slot.switch_to(self._video_for(peer, site_id), skip=skip)
        self._rates.keep(main_rates)
        return switched

    def _video_for(self, peer: Peer, site_id: int | None) -> Source | None:
        """The speaker's layer this viewer should get: the thumbnail on a poor link, if the
        speaker sends one; the main stream otherwise."""
        if peer.layer is not None and peer.layer.layer == SMALL:
            small = self._source(site_id, SMALL_VIDEO)
            if small is not None:
                return small
        return self._source(site_id, "video")

    def _run_layers(self) -> None:
        task = self._layers_task
        if self.closed or (task is not None and not task.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (plain tests): `adapt_layers` is called directly
        self._layers_task = loop.create_task(self._adapt_layers(), name=f"sfu-layers-{self.name}")

    async def _adapt_layers(self) -> None:
        while True:
            await asyncio.sleep(LAYER_TICK_INTERVAL_S)
            try:
                self.adapt_layers(time.monotonic())
            except Exception:
                log.exception("room %s: layer adaptation failed", self.name)

    def reroute(self) -> None:
        """Point every slot at the source the floor says it should carry."""
        for (site_id, kind), source in self._sources.items():
            if kind == "audio":
                source.muted = site_id in self.floor.muted
        for peer in self.peers.values():
            if peer.direction != "egress":
                continue
            if peer.gallery is not None:
                peer.gallery.route(self._source)
                continue
            if peer.role is PeerRole.relay:
                wanted_video, wanted_audio = self.floor.relay_sites()
                current_video = peer.relay_video or [None] * len(peer.video_slots)
                current_audio = peer.relay_audio or [None] * len(peer.audio_slots)
                video_sites = peer.relay_video = assign_tracks(current_video, wanted_video)
                audio_sites = peer.relay_audio = assign_tracks(current_audio, wanted_audio)
            else:
                video_sites = [self.floor.video_for(peer.site_id)] * len(peer.video_slots)
                audio_sites = self.floor.audio_for(peer.site_id, len(peer.audio_slots))
            for slot, site_id in zip(peer.video_slots, video_sites, strict=False):
                slot.switch_to(self._video_for(peer, site_id))
            for slot, site_id in zip(peer.audio_slots, audio_sites, strict=False):
                slot.switch_to(self._source(site_id, "audio"))
        if self.recorder is not None:
            self.recorder.follow(self.programme())

    def record(self, recorder: ProgrammeRecorder | None) -> None:
        """Feed the programme to `recorder` from now on; None: to none (the caller stops the
        one it replaces)."""
        self.recorder = recorder
        self.reroute()

    def programme(self) -> Programme:
        """What a recording of the room holds now: the speaker's camera and microphone, the
        chair's microphone while another site speaks, the content, and who they are."""
        speaker, chair = self.floor.speaker_site_id, self.chair_site_id
        presenter = self.floor.content_site_id
        content = self.content.source
        return Programme(
            video=self._source(speaker, "video"),
            audio=self._source(speaker, "audio"),
            chair_audio=self._source(chair, "audio") if chair != speaker else None,
            content=content,
            speaker_site_id=speaker,
            speaker_name=self.site_name(speaker),
            content_site_id=presenter if content is not None else None,
            content_name=self.site_name(presenter) if content is not None else "",
        )

    def site_name(self, site_id: int | None) -> str:
        """A present site's name (as its grant gave it), or `site <id>`."""
        if site_id is None:
            return ""
        names = (peer.site_name for peer in self.peers.values() if peer.site_id == site_id)
        return next((name for name in names if name), f"site {site_id}")

    def _source(self, site_id: int | None, kind: str) -> Source | None:
        if site_id is None:
            return None
        source = self._sources.get((site_id, kind))
        return source if source is not None and not source.closed else None

    async def close(self, http: httpx.AsyncClient | None = None) -> list[Peer]:
        """Close every peer (and the upstream session, told over `http` if given); returns
        the peers so the caller can report who left."""
        self.closed = True
        for pipe, _url, _token in self.pipes_out.values():
            pipe.close()
        self.pipes_out.clear()
        if self.pipe_in is not None:
            self.pipe_in.close()
            self.pipe_in = None
        self._run_voice(False)
        if self._layers_task is not None:
            self._layers_task.cancel()
            self._stopping.add(self._layers_task)
            self._layers_task = None
        stopping = list(self._stopping)
        await asyncio.gather(*stopping, return_exceptions=True)
        peers = list(self.peers.values())
        self.peers.clear()
        self._sources.clear()
        for peer in peers:
            await peer.close()
        if self.upstream is not None:  # after the halls: they should hear of it first
            await self.upstream.close(http)
            self.upstream = None
        return peers


def open_room(rooms: Mapping[str, Room], name: str) -> Room:
    """The open room called `name`; 404 if there is none."""
    room = rooms.get(name)
    if room is None or room.closed:
        raise SfuError(404, f"room {name} is not open")
    return room
