"""What IT staff watch: nodes, live meetings with each site's link (worst first), SIP calls,
terminals offline, open alerts, in one read."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.alerts import service as alert_service
from confbridge.alerts.models import Alert
from confbridge.auth.scope import WHOLE, Scope
from confbridge.bridge.models import SfuEventRecord
from confbridge.errors import DomainError
from confbridge.link_quality import LinkLimits, Quality
from confbridge.meetings import access as meeting_access
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.models import Occurrence, Series
from confbridge.nodes import service as node_service
from confbridge.nodes.models import NodeState, RoomEdge, RoomPlacement, SfuNode
from confbridge.nodes.worker_client import WorkerClient
from confbridge.settings import Settings
from confbridge.signing import GrantSigner
from confbridge.sites.models import Site, Unit, UnitKind
from confbridge.terminals import service as terminal_service
from confbridge.terminals.schemas import TerminalStatus
from confbridge.text import vietnamese_key
from confbridge_kernel.contracts import EventType
from confbridge_kernel.sip_legs import SipLegInfo

log = logging.getLogger(__name__)

LINK_WINDOW = timedelta(seconds=60)
"""A site's link is judged on the stats reported in the last minute."""
MAX_OFFLINE_TERMINALS = 200
# the page refreshes every few seconds: a node slow to list its calls must not hold it up
SIP_LIST_TIMEOUT = httpx.Timeout(2.0, connect=1.0)


@dataclass(frozen=True)
class SiteLink:
    site_id: int
    site_name: str
    rtt_ms: float | None
    loss_ratio: float | None
    reported_at: datetime
    bad: bool
    quality: str | None = None  # good / fair / poor, as the console says (confbridge.link_quality)
    # the layer of the speaker's camera the site's screen last received: "main", or "small"
    # (the thumbnail) while its downlink is poor; None before its viewer reported
    layer: str | None = None


@dataclass(frozen=True)
class MeetingEdge:
    """A node relaying a live meeting's room, and how (a pipe or the cascade)."""

    node_id: str
    kind: str


@dataclass(frozen=True)
class LiveMeeting:
    occurrence_id: int
    title: str
    start_at: datetime
    end_at: datetime
    sites: list[SiteLink]  # worst link first
    origin_node_id: str | None = None  # where the room is held (None: not placed yet)
    edges: list[MeetingEdge] = field(default_factory=list)


@dataclass(frozen=True)
class OfflineTerminal:
    terminal_id: int
    name: str
    site_id: int
    site_name: str
    last_seen_at: datetime | None


@dataclass(frozen=True)
class SipCall:
    """A SIP call's media leg as its node reports it, and whether the site is a guest."""

    node_id: str
    leg: SipLegInfo
    guest: bool


@dataclass(frozen=True)
class SipCalls:
    calls: list[SipCall] = field(default_factory=list)  # the longest first
    unreachable: list[str] = field(default_factory=list)  # nodes up that did not list theirs


@dataclass(frozen=True)
class Overview:
    at: datetime
    nodes: list[tuple[SfuNode, NodeState]]
    meetings: list[LiveMeeting]
    offline_terminals: list[OfflineTerminal]
    offline_total: int
    alerts: list[Alert]
    online_total: int = 0  # terminals online now (not revoked, heard from recently)
    # province code → name, for the nodes' regions
    regions: dict[str, str] = field(default_factory=dict)
    sip: SipCalls = field(default_factory=SipCalls)


def _room_nodes(
    session: Session, occurrence_ids: list[int]
) -> tuple[dict[int, str], dict[int, list[MeetingEdge]]]:
    """Per occurrence: the node holding its room, and the edges relaying it."""
    origins = {
        occurrence_id: node_id
        for occurrence_id, node_id in session.execute(
            select(RoomPlacement.occurrence_id, RoomPlacement.node_id).where(
                RoomPlacement.occurrence_id.in_(occurrence_ids)
            )
        )
    }
    edges: dict[int, list[MeetingEdge]] = {}
    for edge in session.scalars(
        select(RoomEdge)
        .where(RoomEdge.occurrence_id.in_(occurrence_ids))
        .order_by(RoomEdge.node_id)
    ):
        edges.setdefault(edge.occurrence_id, []).append(MeetingEdge(edge.node_id, edge.kind))
    return origins, edges


def _live_meetings(
    session: Session, settings: Settings, now: datetime, scope: Scope
) -> list[LiveMeeting]:
    rows = session.execute(
        select(Occurrence, Series.title)
        .join(Series, Series.id == Occurrence.series_id)
        .where(
            occurrence_service.live_clause(
                now=now, overrun_grace_min=settings.meetings.overrun_grace_min
            ),
            meeting_access.occurrence_clause(scope),
        )
        .order_by(Occurrence.start_at)
    ).all()
    if not rows:
        return []
    ids = [occurrence.id for occurrence, _title in rows]
    latest, layers = _worst_link_stats(session, ids, now)
    if not scope.whole:
        # a meeting of several provinces shows each only its own sites' links
        shown = set(
            meeting_access.visible_site_ids(
                session=session, site_ids={site_id for _o, site_id in latest}, scope=scope
            )
        )
        latest = {key: value for key, value in latest.items() if key[1] in shown}
    site_ids = {site_id for _occurrence, site_id in latest}
    names = {
        site_id: name
        for site_id, name in session.execute(
            select(Site.id, Site.name).where(Site.id.in_(site_ids))
        )
    }
    origins, edges = _room_nodes(session, ids)
    limits = LinkLimits.from_settings(settings.alerts)
    meetings = []
    for occurrence, title in rows:
        sites = []
        for (occurrence_id, site_id), (at, stats) in latest.items():
            if occurrence_id != occurrence.id or site_id not in names:
                continue
            quality = limits.grade(stats.get("loss_ratio"), stats.get("rtt_ms"))
            sites.append(
                SiteLink(
                    site_id=site_id,
                    site_name=names[site_id],
                    rtt_ms=stats.get("rtt_ms"),
                    loss_ratio=stats.get("loss_ratio"),
                    reported_at=at,
                    bad=quality is Quality.poor,
                    quality=quality.value if quality else None,
                    layer=layers.get((occurrence_id, site_id), (at, None))[1],
                )
            )
        sites.sort(
            key=lambda s: (-(s.loss_ratio or 0), -(s.rtt_ms or 0), vietnamese_key(s.site_name))
        )
        meetings.append(
            LiveMeeting(
                occurrence.id,
                title,
                occurrence.start_at,
                occurrence.end_at,
                sites,
                origin_node_id=origins.get(occurrence.id),
                edges=edges.get(occurrence.id, []),
            )
        )
    return meetings


def _worst_link_stats(
    session: Session, occurrence_ids: list[int], now: datetime
) -> tuple[
    dict[tuple[int, int], tuple[datetime, dict]], dict[tuple[int, int], tuple[datetime, str]]
]:
    """Each site's link in each meeting now, by (occurrence id, site id): the latest report of
    each of its sessions (publish, view) in the last minute, the worst of them, with when it
    was reported; and the layer its screen received last, with when.

    Only a session's latest report counts, as on the console: the worst report of the whole
    minute would show a passing spike (a keyframe burst, a moment the worker was busy) as the
    link's state for a minute."""
    latest_by_peer: dict[tuple[int, int, str], tuple[datetime, dict]] = {}
    layers: dict[tuple[int, int], tuple[datetime, str]] = {}
    for occurrence_id, site_id, peer_id, at, payload in session.execute(
        select(
            SfuEventRecord.occurrence_id,
            SfuEventRecord.site_id,
            SfuEventRecord.peer_id,
            SfuEventRecord.at,
            SfuEventRecord.payload,
        ).where(
            SfuEventRecord.occurrence_id.in_(occurrence_ids),
            SfuEventRecord.type == EventType.stats.value,
            SfuEventRecord.at >= now - LINK_WINDOW,
        )
    ):
        if not site_id:  # None, or 0: the chair console's own viewer, not a site
            continue
        stats = (payload or {}).get("stats") or {}
        key = (occurrence_id, site_id)
        peer_key = (occurrence_id, site_id, peer_id or "")
        if peer_key not in latest_by_peer or latest_by_peer[peer_key][0] <= at:
            latest_by_peer[peer_key] = (at, stats)
        layer = stats.get("layer")
        if layer is not None and (key not in layers or layers[key][0] <= at):
            layers[key] = (at, layer)
    latest: dict[tuple[int, int], tuple[datetime, dict]] = {}
    for (occurrence_id, site_id, _peer), (at, stats) in latest_by_peer.items():
        key = (occurrence_id, site_id)
        worst = latest.get(key)
        # a site is as bad as its worst session (publish or view)
        if worst is None or _badness(stats) > _badness(worst[1]):
            latest[key] = (at, stats)
    return latest, layers


def _badness(stats: dict) -> tuple[float, float]:
    return (stats.get("loss_ratio") or 0.0, stats.get("rtt_ms") or 0.0)


def sip_calls(
    *, session: Session, nodes: list[tuple[SfuNode, NodeState]], signer: GrantSigner
) -> SipCalls:
    """The SIP calls of every node that is not down, asked of the nodes themselves (the
    gateway's calls are media legs there); a node that does not answer is named."""
    legs: list[tuple[str, SipLegInfo]] = []
    unreachable = []
    for node, state in nodes:
        if state is NodeState.down:
            continue
        client = WorkerClient(
            node.internal_url, node_id=node.id, signer=signer, timeout=SIP_LIST_TIMEOUT
        )
        try:
            listed = client.list_sip_legs()
        except DomainError as exc:
            log.info("node %s did not list its SIP calls: %s", node.id, exc.message)
            unreachable.append(node.id)
            continue
        legs.extend((node.id, leg) for leg in listed.legs)
    site_ids = {leg.site_id for _node, leg in legs if leg.site_id is not None}
    guests = set(
        session.scalars(select(Site.id).where(Site.id.in_(site_ids), Site.guest_uri.is_not(None)))
    )
    calls = [SipCall(node_id, leg, leg.site_id in guests) for node_id, leg in legs]
    calls.sort(key=lambda call: (-call.leg.duration_s, call.leg.leg_id))
    return SipCalls(calls=calls, unreachable=unreachable)


def overview(
    *,
    session: Session,
    settings: Settings,
    now: datetime,
    signer: GrantSigner | None = None,
    scope: Scope = WHOLE,
) -> Overview:
    """Everything IT staff watch, of `scope`; with `signer`, the nodes are asked for their
    SIP calls. SFU nodes and their calls serve the whole installation: only a whole scope
    sees them."""
    nodes: list[tuple[SfuNode, NodeState]] = []
    if scope.whole:
        nodes = [
            (node, node_service.state_of(node, now)) for node in node_service.list_(session=session)
        ]
    views, offline_total = terminal_service.list_(
        session=session,
        now=now,
        offline_after_s=settings.terminals.offline_after_s,
        status=TerminalStatus.offline,
        limit=MAX_OFFLINE_TERMINALS,
        scope=scope,
    )
    offline = sorted(
        (
            OfflineTerminal(
                terminal_id=view.terminal.id,
                name=view.terminal.name,
                site_id=view.terminal.site_id,
                site_name=view.terminal.site.name,
                last_seen_at=view.terminal.last_seen_at,
            )
            for view in views
        ),
        key=lambda t: (
            t.last_seen_at is not None,
            t.last_seen_at or now,
            vietnamese_key(t.site_name),
            vietnamese_key(t.name),
        ),
    )
    _online, online_total = terminal_service.list_(
        session=session,
        now=now,
        offline_after_s=settings.terminals.offline_after_s,
        status=TerminalStatus.online,
        limit=0,
    )
    alerts, _total = alert_service.list_(
        session=session, open_only=True, kind=None, limit=100, offset=0, scope=scope
    )
    codes = {node.region for node, _state in nodes if node.region}
    provinces = session.execute(
        select(Unit.code, Unit.name).where(
            Unit.kind == UnitKind.province.value, Unit.code.in_(codes)
        )
    )
    return Overview(
        at=now,
        nodes=nodes,
        regions={code: name for code, name in provinces if code is not None},
        meetings=_live_meetings(session, settings, now, scope),
        offline_terminals=offline,
        offline_total=offline_total,
        online_total=online_total,
        alerts=alerts,
        sip=sip_calls(session=session, nodes=nodes, signer=signer) if signer else SipCalls(),
    )
