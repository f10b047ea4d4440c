"""Who a SIP call is, and where its media goes: the database side of a call, run in a thread.

A call to `sip:<meeting_number>@<bridge>` is looked up in the meetings (`meetings.dial_in`):
a caller whose URI is an invited site's `sip_uri` joins as that site with a join grant;
anyone else is put in a lobby on the room's node until it gives the series' PIN, then joins
as a guest site. The room is placed exactly as for a terminal (`bridge.service`).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from confbridge.bridge import service as bridge
from confbridge.db import Database
from confbridge.errors import DomainError
from confbridge.meetings import dial_in as dial_in_lookup
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.models import Booking, Occurrence, OccurrenceStatus
from confbridge.nodes import service as node_service
from confbridge.nodes.models import SfuNode
from confbridge.settings import Settings
from confbridge.signing import GrantSigner
from confbridge.sites import service as site_service
from confbridge.sites.models import Site
from confbridge_kernel.contracts import PeerRole, room_name

log = logging.getLogger(__name__)
UPSTREAM_NAME = "Trung ương"
"""What the bridge above is called in the room (the chair gives it the floor by this name)."""


class CallRefused(Exception):
    """The call cannot join: a SIP status and a reason the room system can show."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class MediaNode:
    node_id: str
    internal_url: str


@dataclass(frozen=True)
class Admission:
    """Where the call's media goes and as whom; `token` None: the caller must give the PIN."""

    occurrence_id: int
    room: str
    media: MediaNode
    site_id: int | None
    site_name: str | None
    token: str | None
    pin: str
    ends_at: datetime


_STATUS_OF_REASON = {"unknown": (404, "Not Found"), "cancelled": (410, "Gone")}


def _refusal(error: DomainError) -> CallRefused:
    reason_code = str(error.extra.get("reason", ""))
    status, phrase = _STATUS_OF_REASON.get(reason_code, (480, "Temporarily Unavailable"))
    return CallRefused(status, phrase, error.message)


@contextmanager
def _deciding(database: Database) -> Iterator[Session]:
    """A session for deciding a call: committed if it is admitted, else rolled back and the
    domain's refusal turned into the SIP one."""
    with database.session() as session:
        try:
            yield session
            session.commit()
        except DomainError as exc:
            session.rollback()
            raise _refusal(exc) from None


def _as_site(
    session: Session,
    settings: Settings,
    signer: GrantSigner,
    occurrence: Occurrence,
    site: Site,
    now: datetime,
) -> tuple[SfuNode, str]:
    """Join `site` as a terminal of it would: (the node of its media, its join grant)."""
    info = bridge.join(
        session=session,
        settings=settings.sfu,
        signer=signer,
        occurrence_id=occurrence.id,
        site=site,
        now=now,
        tz=occurrence.series.tz,
        overrun_grace_min=settings.meetings.overrun_grace_min,
    )
    return node_service.get(session=session, node_id=info.node_id or ""), info.token


def _room_node(
    session: Session, signer: GrantSigner, occurrence: Occurrence, now: datetime
) -> SfuNode:
    """The node of the room (placed now if it is not), for a caller with no site yet."""
    origin, _viewing = bridge.place_sessions(
        session=session,
        occurrence=occurrence,
        chair_site=bridge.chair_site_id(session=session, occurrence=occurrence),
        signer=signer,
        now=now,
    )
    return node_service.get(session=session, node_id=origin.node_id)


def _admission(
    occurrence: Occurrence,
    node: SfuNode,
    site: Site | None,
    token: str | None,
    pin: str,
    *,
    overrun_grace_min: int,
) -> Admission:
    return Admission(
        occurrence_id=occurrence.id,
        room=room_name(occurrence.id),
        media=MediaNode(node_id=node.id, internal_url=node.internal_url),
        site_id=site.id if site is not None else None,
        site_name=site.name if site is not None else None,
        token=token,
        pin=pin,
        ends_at=occurrence_service.closes_at(occurrence, overrun_grace_min=overrun_grace_min),
    )


def admit(
    database: Database,
    settings: Settings,
    signer: GrantSigner,
    *,
    meeting_number: str,
    caller_uri: str,
    now: datetime,
) -> Admission:
    """Decide a call to `meeting_number` from `caller_uri`; raises `CallRefused`."""
    with _deciding(database) as session:
        found = dial_in_lookup.find_dial_in(
            session,
            meeting_number=meeting_number,
            now=now,
            early_min=settings.sip.join_early_min,
            overrun_grace_min=settings.meetings.overrun_grace_min,
        )
        occurrence = found.occurrence
        grace_min = settings.meetings.overrun_grace_min
        site = dial_in_lookup.match_site(found, caller_uri)
        if site is not None:
            node, token = _as_site(session, settings, signer, occurrence, site, now)
            return _admission(
                occurrence, node, site, token, found.series.pin, overrun_grace_min=grace_min
            )
        node = _room_node(session, signer, occurrence, now)
        return _admission(  # the lobby
            occurrence, node, None, None, found.series.pin, overrun_grace_min=grace_min
        )


@dataclass(frozen=True)
class DialTarget:
    """A call the bridge should be in now: an invited room system, or the bridge above."""

    occurrence_id: int
    uri: str
    site_id: int | None  # None: the bridge above (it joins as its own site, made on demand)
    upstream: bool
    title: str
    meeting_number: str
    ends_at: datetime

    @property
    def key(self) -> tuple[int, str]:
        return (self.occurrence_id, self.uri)


def due_dial_outs(database: Database, settings: Settings, *, now: datetime) -> list[DialTarget]:
    """Targets of occurrences from `sip.dial_out_lead_min` before their start until they end
    (ended, or their end plus the time they may run over by)."""
    lead = timedelta(minutes=settings.sip.dial_out_lead_min)
    grace_min = settings.meetings.overrun_grace_min
    targets: list[DialTarget] = []
    with database.session() as session:
        query = (
            select(Occurrence)
            .where(Occurrence.status == OccurrenceStatus.scheduled.value)
            .where(
                Occurrence.start_at <= now + lead,
                Occurrence.end_at > now - timedelta(minutes=grace_min),
                Occurrence.ended_at.is_(None),
            )
            .options(selectinload(Occurrence.series))
        )
        for occurrence in session.scalars(query):
            series = occurrence.series
            common = {
                "occurrence_id": occurrence.id,
                "title": series.title,
                "meeting_number": series.meeting_number,
                "ends_at": occurrence_service.closes_at(occurrence, overrun_grace_min=grace_min),
            }
            rooms = session.execute(
                select(Site.id, Site.sip_uri)
                .join(Booking, Booking.site_id == Site.id)
                .where(Booking.occurrence_id == occurrence.id, Booking.active.is_(True))
                .where(Site.sip_uri.is_not(None))
            )
            for site_id, uri in rooms:
                targets.append(DialTarget(uri=uri, site_id=site_id, upstream=False, **common))
            upstream = occurrence.upstream_sip_uri or series.upstream_sip_uri
            if upstream:
                targets.append(DialTarget(uri=upstream, site_id=None, upstream=True, **common))
    return targets


def prepare_dial(
    database: Database,
    settings: Settings,
    signer: GrantSigner,
    *,
    target: DialTarget,
    now: datetime,
) -> Admission:
    """Place the room and issue the grant for a call we are about to make."""
    with _deciding(database) as session:
        occurrence = occurrence_service.get_occurrence(
            session=session, occurrence_id=target.occurrence_id
        )
        if target.site_id is not None:
            site = session.get(Site, target.site_id)
            if site is None:
                raise CallRefused(404, "Not Found", "the site is gone")
            node, token = _as_site(session, settings, signer, occurrence, site, now)
        else:
            site, token = _guest(
                session, settings, signer, occurrence, target.uri, UPSTREAM_NAME, now, prefix=""
            )
            node = _room_node(session, signer, occurrence, now)
        return _admission(
            occurrence,
            node,
            site,
            token,
            pin="",
            overrun_grace_min=settings.meetings.overrun_grace_min,
        )


def pin_matches(given: str, pin: str) -> bool:
    return bool(pin) and hmac.compare_digest(given.encode(), pin.encode())


def guest_grant(
    database: Database,
    settings: Settings,
    signer: GrantSigner,
    *,
    occurrence_id: int,
    caller_uri: str,
    display_name: str,
    now: datetime,
) -> tuple[int, str, str]:
    """A caller gave the PIN: (site id, site name, join grant) of its guest site."""
    with database.session() as session:
        occurrence = occurrence_service.get_occurrence(session=session, occurrence_id=occurrence_id)
        site, token = _guest(session, settings, signer, occurrence, caller_uri, display_name, now)
        session.commit()
        log.info("SIP guest joins occurrence %s as site %s", occurrence_id, site.id)
        return site.id, site.name, token


def _guest(
    session: Session,
    settings: Settings,
    signer: GrantSigner,
    occurrence: Occurrence,
    uri: str,
    display_name: str,
    now: datetime,
    *,
    prefix: str = site_service.GUEST_SITE_PREFIX,
) -> tuple[Site, str]:
    site = site_service.sip_guest_site(
        session=session, caller_uri=uri, display_name=display_name, prefix=prefix
    )
    closes_at = occurrence_service.closes_at(
        occurrence, overrun_grace_min=settings.meetings.overrun_grace_min
    )
    expires_at = bridge.grant_expiry(
        end_at=closes_at, now=now, grant_ttl_s=settings.sfu.grant_ttl_s
    ).replace(microsecond=0)
    grant = bridge.issue_grant(
        signer=signer,
        occurrence=occurrence,
        site_id=site.id,
        site_name=site.name,
        role=PeerRole.site,
        chair_site=bridge.chair_site_id(session=session, occurrence=occurrence),
        now=now,
        expires_at=expires_at,
    )
    return site, grant.token
