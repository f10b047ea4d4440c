"""The control plane's health loop: finds silent nodes, bad links, growing spools and halls
whose terminals are offline before a meeting, and raises (or resolves) alerts for IT staff."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.alerts import service as alert_service
from confbridge.alerts.service import AlertIn, AlertKind, Severity
from confbridge.bridge import flows as bridge_flows
from confbridge.bridge.models import SfuEventRecord
from confbridge.db import Database
from confbridge.link_quality import LinkLimits
from confbridge.meetings.invited import InvitedSite, invited_soon
from confbridge.meetings.models import Occurrence, Series
from confbridge.nodes import service as node_service
from confbridge.nodes.models import NodeState
from confbridge.settings import AlertSettings, TerminalSettings
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow, zone
from confbridge_kernel.contracts import EventType
from confbridge_kernel.tasks import OwnedTask, every

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkReport:
    at: datetime
    loss_ratio: float | None
    rtt_ms: float | None


class Monitor:
    """Owns one task running `check()` every `alerts.check_interval_s`."""

    def __init__(
        self,
        database: Database,
        settings: AlertSettings,
        terminals: TerminalSettings | None = None,
        tz: str = "Asia/Ho_Chi_Minh",
    ) -> None:
        self._database = database
        self._settings = settings
        self._terminals = terminals or TerminalSettings()
        self._zone = zone(tz)  # the installation's: alert texts give local times
        self._task = OwnedTask("confbridge-monitor")

    def start(self) -> None:
        rounds = every(
            self._settings.check_interval_s, self.check, failed="health check failed", log=log
        )
        self._task.start(rounds)

    async def close(self) -> None:
        await self._task.close()

    def check(self, now: datetime | None = None) -> None:
        """One round of every check, in one transaction."""
        now = now or utcnow()
        with self._database.session() as session:
            self.check_nodes(session, now)
            self.check_links(session, now)
            self.check_readiness(session, now)
            session.commit()

    # nodes: down, spool growing

    def _local(self, instant: datetime) -> str:
        """`instant` as the installation's clocks read it: 07:31:05 04/12/2026."""
        return f"{instant.astimezone(self._zone):%H:%M:%S %d/%m/%Y}"

    def _deliver(self) -> bool:
        return bool(self._settings.webhook_url)

    def check_nodes(self, session: Session, now: datetime) -> None:
        node_service.mark_down(session=session, now=now)
        down_open = alert_service.open_subjects(session=session, kind=AlertKind.node_down)
        spool_open = alert_service.open_subjects(session=session, kind=AlertKind.spool_growing)
        for node in node_service.list_(session=session):
            subject = f"node:{node.id}"
            up = node_service.state_of(node, now) is not NodeState.down
            if not up and subject not in down_open:
                # its sessions ended when it went silent, though it could not say so
                self.end_sessions_of(session, node.id, node.last_seen_at, now)
                # silent for NODE_DOWN_AFTER_S, or found dead when a terminal reported it
                alert_service.raise_(
                    session=session,
                    alert_in=AlertIn(
                        kind=AlertKind.node_down,
                        severity=Severity.critical,
                        subject=subject,
                        node_id=node.id,
                        message=f"Máy chủ truyền hình {node.id} không còn hoạt động "
                        f"(lần cuối {self._local(node.last_seen_at)})",
                        message_en=f"SFU node {node.id} is down "
                        f"(last heard from at {self._local(node.last_seen_at)})",
                        details={
                            "last_seen_at": node.last_seen_at.isoformat(),
                            "rooms": node.rooms,
                        },
                    ),
                    now=now,
                    deliver=self._deliver(),
                )
            elif up and subject in down_open:
                alert_service.resolve(
                    session=session, kind=AlertKind.node_down, subject=subject, now=now
                )
            over = node.spool_events > self._settings.spool_events
            if up and over and subject not in spool_open:
                alert_service.raise_(
                    session=session,
                    alert_in=AlertIn(
                        kind=AlertKind.spool_growing,
                        severity=Severity.warning,
                        subject=subject,
                        node_id=node.id,
                        message=f"Máy chủ {node.id} có {node.spool_events} sự kiện chưa gửi "
                        "được về máy chủ điều khiển",
                        message_en=f"SFU node {node.id} holds {node.spool_events} events not "
                        "yet delivered to the control plane",
                        details={"spool_events": node.spool_events},
                    ),
                    now=now,
                    deliver=self._deliver(),
                )
            elif not over and subject in spool_open:
                alert_service.resolve(
                    session=session, kind=AlertKind.spool_growing, subject=subject, now=now
                )

    def end_sessions_of(
        self, session: Session, node_id: str, last_seen_at: datetime, now: datetime
    ) -> int:
        """Record a `left` event (reason `node_down`, at the node's last heartbeat) for every
        session the node reported joined and never reported left (see `bridge.flows`)."""
        return bridge_flows.end_sessions(
            session=session,
            node_id=node_id,
            at=last_seen_at,
            now=now,
            reason=bridge_flows.NODE_DOWN,
        )

    # links: a site with high loss or round-trip time for a while in a live meeting

    def _bad(self, report: LinkReport) -> bool:
        # the same judgement as the IT page's and the console's "poor"
        return LinkLimits.from_settings(self._settings).is_poor(report.loss_ratio, report.rtt_ms)

    def _bad_for_s(self, reports: list[LinkReport]) -> float:
        """How long the trailing run of bad reports has lasted (0 if the latest is good)."""
        if not reports or not self._bad(reports[-1]):
            return 0.0
        start = reports[-1].at
        for report in reversed(reports):
            if not self._bad(report):
                start = report.at  # the bad run began after this good report
                break
            start = report.at
        return (reports[-1].at - start).total_seconds()

    def check_links(self, session: Session, now: datetime) -> None:
        window = timedelta(seconds=2 * self._settings.link_bad_for_s + 30)
        rows = session.execute(
            select(
                SfuEventRecord.occurrence_id,
                SfuEventRecord.site_id,
                SfuEventRecord.peer_id,
                SfuEventRecord.at,
                SfuEventRecord.payload,
            )
            .where(SfuEventRecord.type == EventType.stats.value, SfuEventRecord.at >= now - window)
            .order_by(SfuEventRecord.at)
        )
        by_peer: dict[tuple[int, int, str], list[LinkReport]] = defaultdict(list)
        for occurrence_id, site_id, peer_id, at, payload in rows:
            stats = (payload or {}).get("stats") or {}
            if site_id is None or peer_id is None:
                continue
            by_peer[(occurrence_id, site_id, peer_id)].append(
                LinkReport(at, stats.get("loss_ratio"), stats.get("rtt_ms"))
            )
        # a site is as bad as its worst session; recent = reported in the last window
        worst: dict[tuple[int, int], tuple[float, LinkReport]] = {}
        for (occurrence_id, site_id, _peer), reports in by_peer.items():
            key = (occurrence_id, site_id)
            bad_for = self._bad_for_s(reports)
            if key not in worst or bad_for > worst[key][0]:
                worst[key] = (bad_for, reports[-1])
        open_subjects = alert_service.open_subjects(session=session, kind=AlertKind.link_quality)
        names = _names(session, {key for key in worst})
        seen = set()
        for (occurrence_id, site_id), (bad_for, latest) in worst.items():
            subject = f"occurrence:{occurrence_id}/site:{site_id}"
            seen.add(subject)
            if bad_for > self._settings.link_bad_for_s and subject not in open_subjects:
                loss = f"{latest.loss_ratio:.0%}" if latest.loss_ratio is not None else "?"
                rtt = f"{latest.rtt_ms:.0f} ms" if latest.rtt_ms is not None else "?"
                site_name, title = names.get((occurrence_id, site_id), (str(site_id), "?"))
                alert_service.raise_(
                    session=session,
                    alert_in=AlertIn(
                        kind=AlertKind.link_quality,
                        severity=Severity.warning,
                        subject=subject,
                        occurrence_id=occurrence_id,
                        site_id=site_id,
                        message=f"Đường truyền của điểm cầu {site_name} kém trong cuộc họp "
                        f"“{title}”: mất gói {loss}, trễ {rtt}, đã {bad_for:.0f} giây",
                        message_en=f"Site {site_name} has a bad link in “{title}”: "
                        f"loss {loss}, RTT {rtt}, for {bad_for:.0f} s",
                        details={
                            "loss_ratio": latest.loss_ratio,
                            "rtt_ms": latest.rtt_ms,
                            "bad_for_s": bad_for,
                        },
                    ),
                    now=now,
                    deliver=self._deliver(),
                )
            elif bad_for == 0.0 and subject in open_subjects:
                alert_service.resolve(
                    session=session, kind=AlertKind.link_quality, subject=subject, now=now
                )
        # a site no longer reporting (left, or the meeting ended) has no bad link any more
        for subject in open_subjects - seen:
            alert_service.resolve(
                session=session, kind=AlertKind.link_quality, subject=subject, now=now
            )

    # readiness: before a meeting, every invited hall needs a terminal online

    def check_readiness(self, session: Session, now: datetime) -> None:
        """From `terminals.readiness_lead_min` before an online or hybrid occurrence starts, an
        invited site without a terminal online gets a `terminal_offline` alert; it resolves when
        one of its terminals comes online, or when the occurrence ends (or is cancelled).
        A site with a room system (`sip_uri`) has no terminal: the SIP gateway's OPTIONS check
        (`confbridge.sip.readiness`) watches it instead."""
        lead = timedelta(minutes=self._terminals.readiness_lead_min)
        rows = [
            row
            for row in invited_soon(session=session, now=now, lead=lead)
            if row.online and row.sip_uri is None
        ]
        online = terminal_service.online_site_ids(
            session=session,
            site_ids=[r.site_id for r in rows],
            now=now,
            offline_after_s=self._terminals.offline_after_s,
        )
        last_seen = terminal_service.last_seen_by_site(
            session=session, site_ids=[r.site_id for r in rows if r.site_id not in online]
        )
        equipped = terminal_service.site_ids_with_terminals(
            session=session, site_ids=[r.site_id for r in rows if r.site_id not in online]
        )
        open_subjects = alert_service.open_subjects(
            session=session, kind=AlertKind.terminal_offline
        )
        current = set()
        for row in rows:
            subject = row.subject
            current.add(subject)
            if row.site_id in online:
                if subject in open_subjects:
                    alert_service.resolve(
                        session=session, kind=AlertKind.terminal_offline, subject=subject, now=now
                    )
                continue
            # raised before the start only: a hall that drops out mid-meeting is the link
            # checks' and the attendance's business
            if subject in open_subjects or now >= row.start_at:
                continue
            self._raise_offline(
                session, now, row, last_seen.get(row.site_id), row.site_id in equipped
            )
        for subject in open_subjects - current:
            alert_service.resolve(
                session=session, kind=AlertKind.terminal_offline, subject=subject, now=now
            )

    def _raise_offline(
        self,
        session: Session,
        now: datetime,
        row: InvitedSite,
        last_seen_at: datetime | None,
        has_terminal: bool,
    ) -> None:
        local_start = row.start_at.astimezone(zone(row.tz))
        minutes = max(0, round((row.start_at - now).total_seconds() / 60))
        starts_vi = f"cuộc họp “{row.title}” bắt đầu lúc {local_start:%H:%M %d/%m/%Y} "
        starts_vi += f"(còn {minutes} phút)"
        starts_en = f"“{row.title}” starts at {local_start:%H:%M %d/%m/%Y} ({row.tz}), "
        starts_en += f"in {minutes} min"
        if not has_terminal:
            # nothing lost its connection: the hall was never given a terminal
            message = f"Điểm cầu {row.site_name} chưa có thiết bị đầu cuối; {starts_vi}"
            message_en = f"Site {row.site_name} has no terminal; {starts_en}"
        elif last_seen_at is None:
            message = f"Thiết bị đầu cuối của điểm cầu {row.site_name} chưa từng kết nối; "
            message += starts_vi
            message_en = f"The terminal of site {row.site_name} has never connected; {starts_en}"
        else:
            message = f"Thiết bị đầu cuối của điểm cầu {row.site_name} mất kết nối (lần cuối "
            message += f"{self._local(last_seen_at)}); {starts_vi}"
            message_en = f"No terminal of site {row.site_name} is online (last seen at "
            message_en += f"{self._local(last_seen_at)}); {starts_en}"
        alert_service.raise_(
            session=session,
            alert_in=AlertIn(
                kind=AlertKind.terminal_offline,
                severity=Severity.warning,
                subject=row.subject,
                occurrence_id=row.occurrence_id,
                site_id=row.site_id,
                message=message,
                message_en=message_en,
                details={
                    "no_terminal": not has_terminal,
                    "starts_at": row.start_at.isoformat(),
                    "last_seen_at": last_seen_at.isoformat() if last_seen_at else None,
                    "offline_after_s": self._terminals.offline_after_s,
                },
            ),
            now=now,
            deliver=self._deliver(),
        )


def _names(session: Session, keys: set[tuple[int, int]]) -> dict[tuple[int, int], tuple[str, str]]:
    """The site's name and the meeting's title of each (occurrence id, site id)."""
    if not keys:
        return {}
    site_rows = session.execute(
        select(Site.id, Site.name).where(Site.id.in_({s for _o, s in keys}))
    ).tuples()
    title_rows = session.execute(
        select(Occurrence.id, Series.title)
        .join(Series, Series.id == Occurrence.series_id)
        .where(Occurrence.id.in_({o for o, _s in keys}))
    ).tuples()
    sites = {site_id: name for site_id, name in site_rows}
    titles = {occurrence_id: title for occurrence_id, title in title_rows}
    return {(o, s): (sites.get(s, str(s)), titles.get(o, str(o))) for o, s in keys}
