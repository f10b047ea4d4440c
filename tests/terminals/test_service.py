"""The terminals service: the grant revocations workers receive with their heartbeats."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.models import GrantRevocation, Terminal
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from tests.support.factories import TEST_SECRET

TTL_S = 3600


def _pair(session: Session, terminal: Terminal, now) -> str:
    _row, code = terminal_service.issue_pairing_code(
        session=session,
        terminal=terminal,
        secret_key=TEST_SECRET,
        ttl_min=15,
        now=now,
        created_by="test",
    )
    _paired, token = terminal_service.pair(
        session=session, code=code, secret_key=TEST_SECRET, now=now, grant_ttl_s=TTL_S
    )
    return token


def test_grant_revocations_name_revoked_and_replaced_tokens_until_their_grants_expire(
    session: Session, sites: dict[str, Site]
) -> None:
    now = utcnow()

    def listed(at=now) -> set[tuple[int, str]]:
        found = auth_service.grant_revocations(session=session, now=at, grant_ttl_s=TTL_S)
        return {(r.terminal_id, r.credential_id) for r in found}

    # made for pairing: its first token was never handed out, so pairing voids nothing
    fresh, _pairing, _code = terminal_service.create(
        session=session,
        site_id=sites["p1"].id,
        name="",
        secret_key=TEST_SECRET,
        ttl_min=15,
        now=now,
        created_by="test",
    )
    _pair(session, fresh, now)
    assert listed() == set()

    # made with a token shown once: a device may hold grants of it
    shown, _token = terminal_service.create_with_token(
        session=session, site=session.get(Site, sites["p2"].id)
    )
    first = auth_service.credential_id(shown)
    _pair(session, shown, now)  # a replacement device
    second = auth_service.credential_id(shown)
    assert first != second
    assert listed() == {(shown.id, first)}

    terminal_service.revoke(session=session, terminal=fresh, now=now)
    assert listed() == {(shown.id, first), (fresh.id, auth_service.credential_id(fresh))}

    # once every grant they void has expired, they are dropped (and the rows deleted)
    later = now + timedelta(seconds=TTL_S) + auth_service.REVOCATION_MARGIN
    assert listed(later - timedelta(seconds=1)) == listed()
    assert listed(later) == set()
    assert session.scalar(select(func.count()).select_from(GrantRevocation)) == 0


def test_credential_id_reveals_nothing_of_the_token_hash(
    session: Session, sites: dict[str, Site]
) -> None:
    terminal, _token = terminal_service.create_with_token(
        session=session, site=session.get(Site, sites["p1"].id)
    )
    credential = auth_service.credential_id(terminal)
    assert len(credential) == auth_service.CREDENTIAL_ID_CHARS
    assert credential not in terminal.token_hash
