"""The control plane's side of the bridge: join grants, floor control, events from workers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from confbridge.auth import service as auth_service
from confbridge.auth.models import Role, User
from confbridge.auth.service import Principal
from confbridge.bridge.models import SfuEventRecord
from confbridge.errors import Conflict, Forbidden, Invalid
from confbridge.media_settings import SfuSettings
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.models import Booking, Occurrence, OccurrenceStatus
from confbridge.nodes import placement
from confbridge.nodes.models import SfuNode
from confbridge.nodes.worker_client import WorkerClient
from confbridge.signing import GrantSigner
from confbridge.sites.models import Site, UnitKind
from confbridge.timeutil import zone
from confbridge_kernel.contracts import (
    RELAY_SITE_ID,
    VIEWER_SITE_ID,
    FloorAction,
    FloorCommand,
    FloorState,
    GrantClaims,
    GrantPurpose,
    JoinInfo,
    PeerRole,
    room_name,
)
from confbridge_kernel.turn import turn_ice_server

log = logging.getLogger(__name__)

# A grant outlives the scheduled end by this much: briefings overrun, and a terminal that drops
# out at the end must rejoin with the grant it has, even while the control plane is away.
GRANT_OVERRUN_MARGIN = timedelta(minutes=30)
CHAIR_ACTIONS = frozenset(
    {
        FloorAction.give,
        FloorAction.take,
        FloorAction.mute,
        FloorAction.unmute,
        FloorAction.mute_all,
        FloorAction.voice_on,
        FloorAction.voice_off,
        FloorAction.stop_content,
    }
)
UNTARGETED_ACTIONS = frozenset(
    {
        FloorAction.take,
        FloorAction.mute_all,
        FloorAction.voice_on,
        FloorAction.voice_off,
        FloorAction.stop_content,
    }
)
FLOOR_ROLES = frozenset({Role.admin.value, Role.secretariat.value})
# Who may watch the gallery of every hall's thumbnail: the secretariat runs the meeting,
# IT staff watch the halls' pictures (read-only: the floor stays with FLOOR_ROLES).
GALLERY_ROLES = frozenset({Role.admin.value, Role.secretariat.value, Role.it.value})


# --- joining -----------------------------------------------------------------------------------


def get_booking(*, session: Session, occurrence_id: int, site_id: int) -> Booking | None:
    query = select(Booking).where(
        Booking.occurrence_id == occurrence_id, Booking.site_id == site_id
    )
    return session.scalar(query)


def chair_site_id(*, session: Session, occurrence: Occurrence) -> int:
    """The occurrence's chair: its own booking says so, even if the series changed chair since."""
    query = select(Booking.site_id).where(
        Booking.occurrence_id == occurrence.id, Booking.is_chair.is_(True)
    )
    return session.scalar(query) or occurrence.series.chair_site_id


def region_of(site: Site) -> str | None:
    """The code of the province the site belongs to, if its units lead to one."""
    unit = site.unit
    while unit is not None:
        if unit.kind == UnitKind.province.value and unit.code:
            return unit.code
        unit = unit.parent
    return None


@dataclass(frozen=True)
class IssuedGrant:
    """A join grant as issued: its claims, and the signed token that carries them."""

    claims: GrantClaims
    token: str


def issue_grant(
    *,
    signer: GrantSigner,
    occurrence: Occurrence,
    site_id: int,
    site_name: str,
    role: PeerRole,
    chair_site: int,
    now: datetime,
    expires_at: datetime,
    terminal_id: int | None = None,
    credential_id: str | None = None,
    purpose: GrantPurpose = GrantPurpose.media,
    overrun_grace_min: int = 0,
) -> IssuedGrant:
    """Build and sign a grant to the occurrence's room for one holder (a site's terminal, a
    relaying node, the chair console); every grant the control plane hands out comes from here.

    Its `ends_at` is when the room closes: the meeting's end plus the time it may run over
    (`meetings.overrun_grace_min`), or when it was ended."""
    claims = GrantClaims(
        jti=uuid.uuid4().hex,
        room=room_name(occurrence.id),
        occurrence_id=occurrence.id,
        site_id=site_id,
        site_name=site_name,
        role=role,
        chair_site_id=chair_site,
        starts_at=occurrence.start_at,
        ends_at=occurrence_service.closes_at(occurrence, overrun_grace_min=overrun_grace_min),
        iat=int(now.timestamp()),
        exp=int(expires_at.timestamp()),
        terminal_id=terminal_id,
        credential_id=credential_id,
        purpose=purpose,
        prefers_h264=expects_room_systems(occurrence),
    )
    return IssuedGrant(claims=claims, token=signer.sign(claims))


def expects_room_systems(occurrence: Occurrence) -> bool:
    """True if SIP room systems are due in the occurrence's room (the bridge above, or an
    invited site with a `sip_uri`): its WebRTC sessions then send H.264 from the start, which
    room systems take without transcoding. A guest dialling in by PIN switches the room later."""
    if occurrence.upstream_sip_uri or occurrence.series.upstream_sip_uri:
        return True
    session = object_session(occurrence)
    if session is None:
        return False
    query = (
        select(Booking.id)
        .join(Site, Site.id == Booking.site_id)
        .where(Booking.occurrence_id == occurrence.id, Booking.active, Site.sip_uri.is_not(None))
        .limit(1)
    )
    return session.scalar(query) is not None


def relay_grant(
    *,
    occurrence: Occurrence,
    node_id: str,
    chair_site: int,
    signer: GrantSigner,
    now: datetime,
    overrun_grace_min: int = 0,
) -> str:
    """A node's signed grant to pull the room's programme from the node above it (the
    cascade); it lasts as long as the meeting may, so the relay can reconnect on its own."""
    closes_at = occurrence_service.closes_at(occurrence, overrun_grace_min=overrun_grace_min)
    expires_at = (closes_at + GRANT_OVERRUN_MARGIN).replace(microsecond=0)
    grant = issue_grant(
        signer=signer,
        occurrence=occurrence,
        site_id=RELAY_SITE_ID,
        site_name=f"node {node_id}",
        role=PeerRole.relay,
        chair_site=chair_site,
        now=now,
        expires_at=expires_at,
        overrun_grace_min=overrun_grace_min,
    )
    return grant.token


def join_window(
    *, occurrence: Occurrence, join_early_min: int, overrun_grace_min: int = 0
) -> tuple[datetime, datetime]:
    """[opens_at, closes_at): terminals may join a little early, and until the meeting ends
    (ended, or its end plus the time it may run over by)."""
    closes_at = occurrence_service.closes_at(occurrence, overrun_grace_min=overrun_grace_min)
    return occurrence.start_at - timedelta(minutes=join_early_min), closes_at


def grant_expiry(*, end_at: datetime, now: datetime, grant_ttl_s: int) -> datetime:
    """The earlier of "shortly after the meeting" and "the configured grant lifetime"."""
    return min(end_at + GRANT_OVERRUN_MARGIN, now + timedelta(seconds=grant_ttl_s))


def _local(instant: datetime, tz: str) -> str:
    return f"{instant.astimezone(zone(tz)):%Y-%m-%d %H:%M} ({tz})"


def _refuse_cancelled(occurrence: Occurrence) -> None:
    if occurrence.status == OccurrenceStatus.cancelled.value:
        raise Conflict(f"occurrence {occurrence.id} has been cancelled")


def _invited_booking(session: Session, occurrence: Occurrence, site: Site) -> Booking:
    booking = get_booking(session=session, occurrence_id=occurrence.id, site_id=site.id)
    if booking is None:
        raise Forbidden(
            f"site {site.id} ({site.name}) is not invited to occurrence {occurrence.id}"
        )
    return booking


def _join_role(session: Session, occurrence: Occurrence, site: Site, as_guest: bool) -> PeerRole:
    """The role `site` joins in: from its booking, or as a SIP guest (which is never invited,
    so never the chair)."""
    if as_guest and site.guest_uri is not None:
        return PeerRole.site
    booking = _invited_booking(session, occurrence, site)
    return PeerRole.chair if booking.is_chair else PeerRole.site


def _check_window(
    occurrence: Occurrence, *, join_early_min: int, overrun_grace_min: int, now: datetime, tz: str
) -> None:
    opens_at, closes_at = join_window(
        occurrence=occurrence, join_early_min=join_early_min, overrun_grace_min=overrun_grace_min
    )
    if now < opens_at:
        raise Conflict(
            f"joining opens at {_local(opens_at, tz)}, "
            f"{join_early_min} minutes before the meeting starts",
            opens_at=opens_at.isoformat(),
        )
    if now >= closes_at:
        raise Conflict(
            f"the meeting ended at {_local(closes_at, tz)}; joining is closed",
            closed_at=closes_at.isoformat(),
        )


def _check_open(
    occurrence: Occurrence, settings: SfuSettings, *, now: datetime, tz: str, overrun_grace_min: int
) -> None:
    """Conflict unless the meeting is on and within its join window."""
    _refuse_cancelled(occurrence)
    _check_window(
        occurrence,
        join_early_min=settings.join_early_min,
        overrun_grace_min=overrun_grace_min,
        now=now,
        tz=tz,
    )


def _grant_expires_at(
    occurrence: Occurrence, settings: SfuSettings, now: datetime, overrun_grace_min: int
) -> datetime:
    """When a grant issued now expires, in whole seconds as in the grant's `exp`."""
    closes_at = occurrence_service.closes_at(occurrence, overrun_grace_min=overrun_grace_min)
    expiry = grant_expiry(end_at=closes_at, now=now, grant_ttl_s=settings.grant_ttl_s)
    return expiry.replace(microsecond=0)


def _admit(
    session: Session,
    occurrence: Occurrence,
    site: Site,
    *,
    settings: SfuSettings,
    now: datetime,
    tz: str,
    signer: GrantSigner,
    as_guest: bool,
    purpose: GrantPurpose,
    overrun_grace_min: int,
) -> tuple[PeerRole, int]:
    """The role `site` joins in and the room's chair site, once the site may join now
    (invited or a guest, the meeting not cancelled, within its join window, and for content a
    site that may present)."""
    role = _join_role(session, occurrence, site, as_guest)
    _check_open(occurrence, settings, now=now, tz=tz, overrun_grace_min=overrun_grace_min)
    chair = chair_site_id(session=session, occurrence=occurrence)
    if purpose is GrantPurpose.content:
        _check_presenter(session, occurrence, site, chair=chair, signer=signer)
    return role, chair


def ice_servers(
    settings: SfuSettings, *, site_id: int, now: datetime, expires_at: datetime
) -> list[dict[str, Any]]:
    """The configured STUN/TURN servers, plus TURN with a credential that lasts as long as the
    grant (at most `sfu.turn.credential_ttl_s`)."""
    servers = [s.model_dump(exclude_none=True) for s in settings.ice_servers]
    turn = settings.turn
    if turn.enabled and turn.shared_secret:
        ttl_s = min(turn.credential_ttl_s, max(60, int((expires_at - now).total_seconds())))
        servers.append(
            turn_ice_server(
                urls=turn.urls,
                secret=turn.shared_secret,
                user=str(site_id),
                ttl_s=ttl_s,
                now_unix=now.timestamp(),
            )
        )
    return servers


def place_origin(
    *,
    session: Session,
    occurrence: Occurrence,
    chair_site: int,
    signer: GrantSigner,
    now: datetime,
) -> placement.MediaServer:
    """The node holding the room (placed now, in the chair's province, if it is not yet)."""
    chair = session.get(Site, chair_site)
    room = room_name(occurrence.id)
    return placement.place_room(
        session=session,
        occurrence_id=occurrence.id,
        now=now,
        region=region_of(chair) if chair is not None else None,
        hold=lambda node: placement.hold_room(node, room=room, signer=signer),
    )


def place_sessions(
    *,
    session: Session,
    occurrence: Occurrence,
    chair_site: int,
    signer: GrantSigner,
    now: datetime,
    region: str | None = None,
    overrun_grace_min: int = 0,
) -> tuple[placement.MediaServer, placement.MediaServer]:
    """Where a grant sends its holder (of province `region`): WHIP to the room's origin;
    WHEP to a node of its own province relaying the room, or to the origin while it has
    room, then to a node that relays it (extended now if none does yet)."""
    room = room_name(occurrence.id)
    origin = place_origin(
        session=session, occurrence=occurrence, chair_site=chair_site, signer=signer, now=now
    )

    def extend(node: SfuNode, kind: placement.EdgeKind, upstream: SfuNode) -> bool:
        token = relay_grant(
            occurrence=occurrence,
            node_id=node.id,
            chair_site=chair_site,
            signer=signer,
            now=now,
            overrun_grace_min=overrun_grace_min,
        )
        return placement.relay_room(
            node,
            kind,
            upstream,
            room=room,
            occurrence_id=occurrence.id,
            chair_site_id=chair_site,
            ends_at=occurrence_service.closes_at(occurrence, overrun_grace_min=overrun_grace_min),
            token=token,
            signer=signer,
        )

    viewing = placement.place_viewer(
        session=session,
        occurrence_id=occurrence.id,
        origin=origin,
        now=now,
        extend=extend,
        region=region,
    )
    return origin, viewing


def join(
    *,
    session: Session,
    occurrence_id: int,
    site: Site,
    settings: SfuSettings,
    signer: GrantSigner,
    now: datetime,
    tz: str,
    failed_node_id: str | None = None,
    terminal_id: int | None = None,
    credential_id: str | None = None,
    as_guest: bool = False,
    purpose: GrantPurpose = GrantPurpose.media,
    overrun_grace_min: int = 0,
) -> JoinInfo:
    """Issue a join grant for `site` in the occurrence's room, if the site may join now.

    With `failed_node_id`, a node the terminal lost is checked first; a node that does not
    answer is taken as down, and the room moves to another. `terminal_id` and `credential_id`
    name the terminal token the grant goes to, so that revoking it voids the grant on workers.
    `as_guest` (the SIP gateway, once the caller gave the PIN) lets a guest site
    (`sites.service.sip_guest_site`) in without a booking; a terminal never passes it.
    `purpose` content asks for a grant to present (`_check_presenter`). `overrun_grace_min`:
    how long past its end a meeting nobody ended still runs (`meetings.overrun_grace_min`).
    """
    occurrence = occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
    role, chair = _admit(
        session,
        occurrence,
        site,
        settings=settings,
        now=now,
        tz=tz,
        signer=signer,
        as_guest=as_guest,
        purpose=purpose,
        overrun_grace_min=overrun_grace_min,
    )
    expires_at = _grant_expires_at(occurrence, settings, now, overrun_grace_min)
    grant = issue_grant(
        signer=signer,
        occurrence=occurrence,
        site_id=site.id,
        site_name=site.name,
        role=role,
        chair_site=chair,
        now=now,
        expires_at=expires_at,
        terminal_id=terminal_id,
        credential_id=credential_id,
        purpose=purpose,
        overrun_grace_min=overrun_grace_min,
    )
    if failed_node_id is not None:
        placement.check_reported_failure(
            session=session, occurrence_id=occurrence.id, node_id=failed_node_id, now=now
        )
    server, viewing = place_sessions(
        session=session,
        occurrence=occurrence,
        chair_site=chair,
        signer=signer,
        now=now,
        region=region_of(site),
        overrun_grace_min=overrun_grace_min,
    )
    return _join_info(grant, server, viewing, settings=settings, now=now, expires_at=expires_at)


def _join_info(
    grant: IssuedGrant,
    server: placement.MediaServer,
    viewing: placement.MediaServer,
    *,
    settings: SfuSettings,
    now: datetime,
    expires_at: datetime,
) -> JoinInfo:
    """What the terminal is told: where to publish and view, with the grant and ICE servers."""
    claims = grant.claims
    log.info(
        "join grant %s: site %s, room %s on %s, as %s (%s)",
        *(claims.jti, claims.site_id, claims.room, server.node_id, claims.role, claims.purpose),
    )
    return JoinInfo(
        whip_url=f"{server.public_url}/whip/{claims.room}",
        whep_url=f"{viewing.public_url}/whep/{claims.room}",
        token=grant.token,
        ice_servers=ice_servers(settings, site_id=claims.site_id, now=now, expires_at=expires_at),
        expires_at=expires_at,
        role=claims.role,
        purpose=claims.purpose,
        node_id=server.node_id,
        viewing_node_id=viewing.node_id,
    )


def gallery(
    *,
    session: Session,
    occurrence_id: int,
    principal: Principal,
    settings: SfuSettings,
    signer: GrantSigner,
    now: datetime,
    tz: str,
    viewer_name: str,
    overrun_grace_min: int = 0,
) -> JoinInfo:
    """A grant to watch every hall's thumbnail (the chair's gallery, điểm danh, sfu.gallery).

    For the chair site's terminal, and for users of `GALLERY_ROLES`; it views only, as a
    viewer that is no site of the meeting (`VIEWER_SITE_ID`). Thumbnails stay on the room's
    node (edges carry main layers only), so `whep_url` is always the room's node.
    """
    occurrence = occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
    chair = chair_site_id(session=session, occurrence=occurrence)
    if principal.user is not None:
        if principal.user.role not in GALLERY_ROLES:
            raise Forbidden(
                f"your role '{principal.user.role}' may not watch the gallery "
                "(needs admin, secretariat or it)"
            )
    else:
        terminal = principal.terminal
        assert terminal is not None
        if terminal.site_id != chair:
            raise Forbidden("only the chair site's terminal may watch the gallery")
    _check_open(occurrence, settings, now=now, tz=tz, overrun_grace_min=overrun_grace_min)
    expires_at = _grant_expires_at(occurrence, settings, now, overrun_grace_min)
    grant = issue_grant(
        signer=signer,
        occurrence=occurrence,
        site_id=VIEWER_SITE_ID,
        site_name=viewer_name,
        role=PeerRole.viewer,
        chair_site=chair,
        now=now,
        expires_at=expires_at,
        purpose=GrantPurpose.gallery,
    )
    origin = place_origin(
        session=session, occurrence=occurrence, chair_site=chair, signer=signer, now=now
    )
    room = room_name(occurrence.id)
    log.info(
        "gallery grant %s: %s, room %s on %s", grant.claims.jti, viewer_name, room, origin.node_id
    )
    return JoinInfo(
        whip_url=f"{origin.public_url}/whip/{room}",
        whep_url=f"{origin.public_url}/whep/{room}",
        token=grant.token,
        ice_servers=ice_servers(settings, site_id=VIEWER_SITE_ID, now=now, expires_at=expires_at),
        expires_at=expires_at,
        role=PeerRole.viewer,
        purpose=GrantPurpose.gallery,
        node_id=origin.node_id,
        viewing_node_id=origin.node_id,
    )


def _check_presenter(
    session: Session, occurrence: Occurrence, site: Site, *, chair: int, signer: GrantSigner
) -> None:
    """Only the chair site, or the site that has the floor now, may present. The floor is the
    worker's: asked of it, so a site that lost the floor a moment ago gets no grant (the
    worker checks again when the presentation is published)."""
    if site.id == chair:
        return
    if site.guest_uri is not None:
        raise Forbidden("a SIP guest cannot present content")
    client = room_client(session=session, occurrence_id=occurrence.id, signer=signer)
    state = client.get_floor(room=room_name(occurrence.id))
    if state.speaker_site_id != site.id:
        raise Forbidden(
            f"site {site.id} ({site.name}) may not present: only the chair site or the site "
            "that has the floor may share content"
        )


# --- the floor ---------------------------------------------------------------------------------


def _require_floor_role(user: User) -> None:
    if user.role not in FLOOR_ROLES:
        raise Forbidden(
            f"your role '{user.role}' may not control the floor (needs admin or secretariat)"
        )


def _terminal_floor_target(
    session: Session,
    principal: Principal,
    occurrence: Occurrence,
    action: FloorAction,
    site_id: int | None,
) -> int | None:
    terminal = principal.terminal
    assert terminal is not None
    _invited_booking(session, occurrence, terminal.site)
    if action in CHAIR_ACTIONS:
        if terminal.site_id != chair_site_id(session=session, occurrence=occurrence):
            raise Forbidden(f"only the chair site's terminal may {action.value.replace('_', ' ')}")
        return site_id
    if site_id not in (None, terminal.site_id):
        raise Forbidden("a terminal may raise or lower only its own site's hand")
    return terminal.site_id


def authorize_floor(
    *,
    session: Session,
    occurrence: Occurrence,
    principal: Principal,
    action: FloorAction,
    site_id: int | None,
) -> int | None:
    """Check that the caller may take `action`; return its target site (None: the room)."""
    if principal.user is not None:
        _require_floor_role(principal.user)
        target = site_id
    else:
        target = _terminal_floor_target(session, principal, occurrence, action, site_id)
    if action in UNTARGETED_ACTIONS:
        return None
    if target is None:
        raise Invalid(f"{action.value} needs a site_id")
    booking = get_booking(session=session, occurrence_id=occurrence.id, site_id=target)
    if booking is not None and booking.active:
        return target
    if (
        booking is None
        and target in guest_sites(session=session, occurrence_ids=[occurrence.id])[occurrence.id]
    ):
        return target  # a SIP guest in the room, e.g. the bridge above ("Trung ương")
    raise Invalid(f"site {target} is not invited to occurrence {occurrence.id}")


def guest_sites(*, session: Session, occurrence_ids: Sequence[int]) -> dict[int, list[int]]:
    """SIP guests (sites with a `guest_uri`) that joined these occurrences: they came in
    without a booking (by the PIN, or as the bridge above that the room called)."""
    guests: dict[int, list[int]] = {i: [] for i in occurrence_ids}
    query = (
        select(SfuEventRecord.occurrence_id, SfuEventRecord.site_id)
        .join(Site, Site.id == SfuEventRecord.site_id)
        .where(SfuEventRecord.occurrence_id.in_(occurrence_ids), Site.guest_uri.is_not(None))
        .distinct()
    )
    for occurrence_id, site_id in session.execute(query):
        guests[occurrence_id].append(site_id)
    return guests


def room_client(*, session: Session, occurrence_id: int, signer: GrantSigner) -> WorkerClient:
    """The client of the node holding the occurrence's room; Conflict if it was never placed
    (nobody has joined: the room is not open anywhere)."""
    server = placement.room_server(session=session, occurrence_id=occurrence_id)
    if server is None:
        raise Conflict("the meeting room is not open yet", room=room_name(occurrence_id))
    return WorkerClient(server.internal_url, node_id=server.node_id, signer=signer)


def floor(
    *,
    session: Session,
    occurrence_id: int,
    principal: Principal,
    action: FloorAction,
    site_id: int | None,
    signer: GrantSigner,
) -> FloorState:
    """Apply a floor action in the occurrence's room through its worker, and audit it."""
    occurrence = occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
    _refuse_cancelled(occurrence)
    target = authorize_floor(
        session=session, occurrence=occurrence, principal=principal, action=action, site_id=site_id
    )
    command = FloorCommand(action=action, site_id=target, by=principal.actor)
    client = room_client(session=session, occurrence_id=occurrence.id, signer=signer)
    state = client.send_floor(room=room_name(occurrence.id), command=command)
    auth_service.record(
        session=session,
        actor=principal.actor,
        action=f"floor_{action.value}",
        entity="occurrence",
        entity_id=occurrence.id,
        detail={"site_id": target, "speaker_site_id": state.speaker_site_id},
    )
    return state


# --- events from workers -----------------------------------------------------------------------
