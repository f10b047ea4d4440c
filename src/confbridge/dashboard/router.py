"""The IT dashboard's data over HTTP (the page reads it every few seconds)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from confbridge.alerts.router import alert_read
from confbridge.auth.dependencies import ITScope
from confbridge.dashboard import service as dashboard_service
from confbridge.dashboard.schemas import (
    LiveMeetingRead,
    MeetingEdgeRead,
    OfflineTerminalRead,
    OverviewRead,
    SipCallRead,
    SiteLinkRead,
)
from confbridge.deps import SessionDep, SettingsDep
from confbridge.nodes.router import node_read
from confbridge.signing import signer_for
from confbridge.timeutil import utcnow

router = APIRouter(tags=["dashboard"])


def overview_read(overview: dashboard_service.Overview) -> OverviewRead:
    return OverviewRead(
        at=overview.at,
        nodes=[node_read(node) for node, _state in overview.nodes],
        meetings=[
            LiveMeetingRead(
                occurrence_id=m.occurrence_id,
                title=m.title,
                start_at=m.start_at,
                end_at=m.end_at,
                sites=[SiteLinkRead(**asdict(s)) for s in m.sites],
                origin_node_id=m.origin_node_id,
                edges=[MeetingEdgeRead(**asdict(e)) for e in m.edges],
            )
            for m in overview.meetings
        ],
        offline_terminals=[OfflineTerminalRead(**asdict(t)) for t in overview.offline_terminals],
        offline_total=overview.offline_total,
        online_total=overview.online_total,
        alerts=[alert_read(a) for a in overview.alerts],
        sip_calls=[
            SipCallRead(**c.leg.model_dump(), node_id=c.node_id, guest=c.guest)
            for c in overview.sip.calls
        ],
        sip_unreachable_nodes=overview.sip.unreachable,
    )


@router.get("/overview", response_model=OverviewRead)
def overview(it: ITScope, session: SessionDep, settings: SettingsDep) -> OverviewRead:
    """Nodes, live meetings with each site's link (worst first), SIP calls (asked of the
    nodes), offline terminals, alerts: those of your units (nodes and SIP calls: for the
    whole installation's IT staff)."""
    signer = signer_for(settings.grant_key_path) if it.scope.whole else None
    return overview_read(
        dashboard_service.overview(
            session=session, settings=settings, now=utcnow(), signer=signer, scope=it.scope
        )
    )
