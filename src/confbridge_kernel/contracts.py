"""Messages between the control plane and the SFU workers: join grants' claims, floor
commands, events, heartbeats, cascade requests.

These schemas are the whole contract between the planes; besides them the SFU imports only the
rest of this kernel (logging, tasks, redaction, TURN credentials), never `confbridge` (the
import contracts in `pyproject.toml` check it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

GRANT_ISSUER = "confbridge"
GRANT_AUDIENCE = "confbridge-sfu"
# Ed25519 signatures: workers hold only the public key, so a worker cannot mint grants.
GRANT_ALGORITHM = "EdDSA"
MAX_EVENT_ID = 2**63 - 1


class PeerRole(StrEnum):
    """What a grant lets its holder do in a room."""

    chair = "chair"  # the chair site: publishes, holds the programme by default
    site = "site"  # an invited site: publishes, speaks when given the floor
    viewer = "viewer"  # watches only (e.g. a screen in a hall)
    relay = "relay"  # another media server that relays the programme to its own sites


class GrantPurpose(StrEnum):
    """What a grant's session carries: the site's camera and microphone, or its content."""

    media = "media"
    # a presentation (screen, window, a file's slides) published beside the camera; viewers
    # get it on a second video track (sfu.content)
    content = "content"
    # the chair's gallery (điểm danh): a WHEP session whose video m-lines each carry one
    # hall's thumbnail, or one hall's camera large, as its viewer points them (sfu.gallery)
    gallery = "gallery"


RELAY_SITE_ID = 0
"""The `site_id` of a relay grant (a node, not a site; real site ids start at 1)."""
GALLERY_PAGE_TILES = 25
"""Halls' thumbnails on one page of the chair's gallery, and at most on a gallery session."""
VIEWER_SITE_ID = 0
"""The `site_id` of a grant that watches without being a site of the meeting (the chair
console's programme, a gallery): attendance and the live status ignore it."""


class FloorAction(StrEnum):
    give = "give"
    take = "take"
    mute = "mute"
    unmute = "unmute"
    mute_all = "mute_all"
    raise_hand = "raise_hand"
    lower_hand = "lower_hand"
    voice_on = "voice_on"
    voice_off = "voice_off"
    stop_content = "stop_content"  # end the presentation, whoever shares it


def room_name(occurrence_id: int) -> str:
    return f"occ-{occurrence_id}"


# HTTP paths both sides use. Control plane, called by workers with their own node key:
EVENTS_PATH = "/api/v1/sfu/events"
GRANT_KEY_PATH = "/api/v1/sfu/grant-key"
NODE_KEY_PREFIX = "cbn_"
"""Node keys (enrolled per node on the control plane) start with this."""


def floor_path(room: str) -> str:
    """The worker's admin endpoint for floor commands, called by the control plane."""
    return f"/rooms/{room}/floor"


class GrantClaims(BaseModel):
    """The signed part of a join grant (a JWT): who may join which room, as what, until when."""

    model_config = ConfigDict(extra="ignore")

    iss: Literal["confbridge"] = GRANT_ISSUER
    aud: Literal["confbridge-sfu"] = GRANT_AUDIENCE
    jti: str = Field(description="grant id")
    room: str
    occurrence_id: int
    site_id: int
    site_name: str
    role: PeerRole
    chair_site_id: int
    starts_at: AwareDatetime
    ends_at: AwareDatetime = Field(description="the room closes after this")
    iat: int
    exp: int
    # Who holds the grant, so that revoking the terminal reaches workers (`GrantRevocation`);
    # None in a relay grant (a node, not a terminal).
    terminal_id: int | None = None
    credential_id: str | None = Field(
        default=None, description="the terminal token it was issued to (a one-way fingerprint)"
    )
    purpose: GrantPurpose = Field(
        default=GrantPurpose.media,
        description="content: the grant publishes the site's presentation (WHIP only); "
        "gallery: it views every hall's thumbnail (WHEP only, sfu.gallery)",
    )
    prefers_h264: bool = Field(
        default=False,
        description="SIP room systems are expected in the room: its WebRTC sessions are "
        "answered with H.264 first from the start, not only once the first SIP leg joins",
    )


ADMIN_AUDIENCE = "confbridge-sfu-admin"
ADMIN_TOKEN_TTL_S = 60


class AdminClaims(BaseModel):
    """The control plane's call to one node's admin API, signed with the grant key.

    The control plane keeps only a hash of each node's key, so it authenticates to a node with
    this short token instead: it names the node (`sub`), the method and the path, so a token
    sent to one node is worth nothing at another node or for another command.
    """

    model_config = ConfigDict(extra="ignore")

    iss: Literal["confbridge"] = GRANT_ISSUER
    aud: Literal["confbridge-sfu-admin"] = ADMIN_AUDIENCE
    sub: str = Field(description="the node id")
    method: str
    path: str
    jti: str
    iat: int
    exp: int


class CascadeRequest(BaseModel):
    """Control plane → an edge node: relay the room from the node above it in the tree.

    The edge opens a WHEP session at `upstream_whep_url` with `token`, a relay grant, and
    serves the programme it receives to its own sites.
    """

    upstream_whep_url: str = Field(min_length=1, max_length=500)
    token: str = Field(min_length=1)
    occurrence_id: int
    chair_site_id: int
    ends_at: AwareDatetime


def cascade_path(room: str) -> str:
    """The edge's admin endpoint that makes it relay `room` (`CascadeRequest`)."""
    return f"/rooms/{room}/cascade"


class RoomSchedule(BaseModel):
    """Control plane → every node holding or relaying a room: the meeting was extended (the
    room now closes after `ends_at`) or ended (`ended`: the room closes now)."""

    ends_at: AwareDatetime = Field(description="the room closes after this")
    ended: bool = False


def schedule_path(room: str) -> str:
    """The admin endpoint that tells a node when the room's meeting ends (`RoomSchedule`)."""
    return f"/rooms/{room}/schedule"


def hold_path(room: str) -> str:
    """The admin endpoint that makes a node the room's origin (the room moved there): a copy
    it relayed stops relaying and keeps its halls and floor."""
    return f"/rooms/{room}/hold"


class FloorCommand(BaseModel):
    """A floor action sent by the control plane to the worker that hosts the room."""

    action: FloorAction
    site_id: int | None = Field(default=None, description="target site; None for mute_all")
    by: str = Field(description="who acted, for the event log (e.g. 'user:vanphong')")


class FloorState(BaseModel):
    """The room's floor as the worker holds it."""

    room: str
    speaker_site_id: int | None
    previous_speaker_site_id: int | None = Field(
        default=None, description="who spoke before (the speaking hall sees them)"
    )
    chair_site_id: int
    muted_site_ids: list[int]
    hands: list[int] = Field(description="sites with a raised hand, in the order raised")
    voice_activated: bool = False
    content_site_id: int | None = Field(
        default=None, description="the site presenting content now, if any"
    )


class EventType(StrEnum):
    joined = "joined"
    left = "left"
    floor_changed = "floor_changed"
    stats = "stats"
    content_started = "content_started"  # a site began presenting (detail: its name)
    content_stopped = "content_stopped"  # ... and stopped (detail: the reason)
    # a recording ended by itself, or its worker recovered it after dying (detail: its final
    # `confbridge_kernel.recordings.RecordingInfo`)
    recording_ended = "recording_ended"


class PeerStats(BaseModel):
    """Link quality of one peer over the last reporting interval."""

    rtt_ms: float | None = None
    loss_ratio: float | None = Field(default=None, ge=0, le=1)
    jitter_ms: float | None = None
    bitrate_kbps: float | None = None
    packets: int = Field(
        default=0,
        description="RTP packets since the peer connected: received from the hall (ingest) "
        "or sent to it (egress); a rise between two reports means media flowed",
    )
    frames: int | None = None
    interval_s: float | None = Field(
        default=None, gt=0, description="the worker's reporting interval (stats_interval_s)"
    )
    layer: Literal["main", "small"] | None = Field(
        default=None,
        description="a hall viewer's layer of the speaker's camera: the main stream, or the "
        "thumbnail while its link is poor (none for publishers and relays)",
    )


def _in_utc(value: datetime) -> datetime:
    """The instant in UTC; near year 1 or 9999 an offset leaves the range of `datetime`."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the instant is out of range") from None


UtcInstant = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class SfuEvent(BaseModel):
    """One thing that happened on a worker; `id` makes delivery idempotent."""

    id: str = Field(min_length=8, max_length=64)
    type: EventType
    at: UtcInstant
    node_id: str = Field(max_length=100)
    room: str = Field(max_length=100)
    # Bounded so that any id a worker sends fits the control plane's 64-bit columns.
    occurrence_id: int = Field(ge=0, le=MAX_EVENT_ID)
    site_id: int | None = Field(default=None, ge=0, le=MAX_EVENT_ID)
    peer_id: str | None = Field(default=None, max_length=64)
    direction: Literal["ingest", "egress"] | None = None
    stats: PeerStats | None = None
    floor: FloorState | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class EventBatch(BaseModel):
    events: list[SfuEvent] = Field(max_length=1000)


class EventAck(BaseModel):
    stored: int
    duplicates: int


class JoinInfo(BaseModel):
    """What a terminal gets from `POST /api/v1/occurrences/{id}/join`."""

    whip_url: str
    whep_url: str
    token: str
    ice_servers: list[dict[str, Any]]
    expires_at: datetime
    role: PeerRole
    purpose: GrantPurpose = GrantPurpose.media
    node_id: str | None = Field(
        default=None, description="the media server of the room (None: the configured one)"
    )
    viewing_node_id: str | None = Field(
        default=None,
        description="the media server of whep_url: the room's, or a node relaying it",
    )


# --- the node registry: workers heartbeat to the control plane ----------------------------------

NODE_HEARTBEAT_PATH = "/api/v1/sfu/nodes/heartbeat"


class NodeLoad(BaseModel):
    """How busy a worker is, as it reports itself every few seconds."""

    rooms: int = Field(default=0, ge=0)
    peers: int = Field(default=0, ge=0, description="connected WHIP and WHEP sessions")
    packets_per_s: float = Field(default=0.0, ge=0, description="RTP packets forwarded")
    cpu_ratio: float = Field(default=0.0, ge=0, description="CPU time / wall time (1.0 = a core)")
    spool_events: int = Field(default=0, ge=0, description="events waiting to be delivered")


class NodeHeartbeat(BaseModel):
    """A worker's registration and heartbeat (the same message): who it is and its load."""

    node_id: str = Field(min_length=1, max_length=100)
    public_url: str = Field(max_length=500, description="where terminals send WHIP/WHEP")
    internal_url: str = Field(max_length=500, description="its admin API, for the control plane")
    version: str = Field(default="", max_length=50)
    capacity_peers: int = Field(ge=1, le=1_000_000, description="sessions it accepts at most")
    load: NodeLoad = Field(default_factory=NodeLoad)
    machine_id: str = Field(
        default="", max_length=100, description="workers of one machine are piped, not cascaded"
    )
    region: str = Field(
        default="", max_length=20, description="the province it serves (its code, e.g. '22')"
    )
    incarnation: str = Field(
        default="",
        max_length=64,
        description="a new value at every start of the worker process: a change means that "
        "the sessions of the previous one are gone",
    )
    started_at: AwareDatetime | None = Field(
        default=None, description="when this incarnation started (the worker's clock)"
    )


class GrantRevocation(BaseModel):
    """Grants issued to one terminal token are void: the terminal was revoked, or a new device
    paired in its place. Listed until every such grant has expired (`until`)."""

    terminal_id: int
    credential_id: str = Field(description="`GrantClaims.credential_id` of the void grants")
    until: AwareDatetime


class NodeHeartbeatAck(BaseModel):
    """The control plane's view of the node: `draining` nodes get no new rooms."""

    node_id: str
    draining: bool
    revocations: list[GrantRevocation] = Field(
        default_factory=list,
        description="every grant revocation in force: the worker refuses those grants and "
        "closes their sessions",
    )
