"""Grants the control plane issues: what they tell a worker about the room."""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from confbridge import signing
from confbridge.bridge import service as bridge_service
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import PeerRole
from tests.support.factories import make_occurrences


def test_service_grants_ask_for_h264_when_room_systems_are_due(
    session: Session, sites: dict[str, Site]
) -> None:
    (occurrence,) = make_occurrences(session, sites, count=1)
    signer = signing.GrantSigner(Ed25519PrivateKey.generate())
    now = utcnow()

    def prefers_h264() -> bool:
        grant = bridge_service.issue_grant(
            signer=signer,
            occurrence=occurrence,
            site_id=sites["p1"].id,
            site_name=sites["p1"].name,
            role=PeerRole.site,
            chair_site=sites["hq"].id,
            now=now,
            expires_at=now + timedelta(hours=1),
        )
        return grant.claims.prefers_h264

    assert not prefers_h264()  # WebRTC halls only: the configured codec
    sites["p2"].sip_uri = "sip:p2-hall@10.0.0.2"
    session.flush()
    assert prefers_h264()  # an invited room system will be called
    sites["p2"].sip_uri = None
    occurrence.upstream_sip_uri = "sip:900100@bridge.gov.vn"
    session.flush()
    assert prefers_h264()  # the bridge above will be called
