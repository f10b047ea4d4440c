"""Terminals: creation with a pairing code, pairing, revocation, heartbeats, online status."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, joinedload

from confbridge.auth import service as auth_service
from confbridge.auth.models import GrantRevocation, Terminal
from confbridge.auth.scope import Scope
from confbridge.errors import Conflict, Invalid, NotFound, Unauthorized
from confbridge.meetings import occurrences as occurrence_service
from confbridge.meetings.models import Booking
from confbridge.sites import service as site_service
from confbridge.sites.models import Site
from confbridge.terminals.models import PairingCode, TerminalState
from confbridge.terminals.schemas import HeartbeatIn, TerminalStatus

# Upper-case letters and digits without the ones people confuse (0/O, 1/I/L): 31 symbols,
# 8 of them about 39.6 bits.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: str) -> str:
    """What people type: any case, with spaces or a dash between the halves."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


def format_code(code: str) -> str:
    """`ABCD-EFGH`: easier to read aloud and type."""
    return f"{code[:4]}-{code[4:]}"


def hash_code(code: str, *, secret_key: str) -> str:
    """HMAC with the server's secret: a stolen database alone cannot be searched for codes."""
    return hmac.new(secret_key.encode(), code.encode(), hashlib.sha256).hexdigest()


def _valid_shape(code: str) -> bool:
    return len(code) == CODE_LENGTH and all(ch in CODE_ALPHABET for ch in code)


# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TerminalView:
    """A terminal with its site and its latest heartbeat."""

    terminal: Terminal
    state: TerminalState | None
    status: TerminalStatus


def status_of(terminal: Terminal, *, now: datetime, offline_after_s: int) -> TerminalStatus:
    if terminal.revoked_at is not None:
        return TerminalStatus.revoked
    seen = terminal.last_seen_at
    if seen is not None and now - seen <= timedelta(seconds=offline_after_s):
        return TerminalStatus.online
    return TerminalStatus.offline


def get(*, session: Session, terminal_id: int) -> Terminal:
    terminal = session.get(Terminal, terminal_id, options=[joinedload(Terminal.site)])
    if terminal is None:
        raise NotFound(f"terminal {terminal_id} does not exist")
    return terminal


def view(
    *, session: Session, terminal: Terminal, now: datetime, offline_after_s: int
) -> TerminalView:
    state = session.get(TerminalState, terminal.id)
    return TerminalView(
        terminal, state, status_of(terminal, now=now, offline_after_s=offline_after_s)
    )


def list_(
    *,
    session: Session,
    now: datetime,
    offline_after_s: int,
    site_id: int | None = None,
    unit_id: int | None = None,
    status: TerminalStatus | None = None,
    limit: int = 100,
    offset: int = 0,
    scope: Scope | None = None,
) -> tuple[list[TerminalView], int]:
    """Terminals with their status (of `scope`'s sites, when given); `status` filters in
    SQL, so paging stays exact."""
    query = select(Terminal).join(Terminal.site)
    if scope is not None:
        query = query.where(scope.clause(Site.unit_id))
    if site_id is not None:
        query = query.where(Terminal.site_id == site_id)
    if unit_id is not None:
        site_service.get_unit(session=session, unit_id=unit_id)
        units = site_service.descendant_unit_ids(session=session, unit_ids=[unit_id])
        query = query.where(Site.unit_id.in_(units))
    online_since = now - timedelta(seconds=offline_after_s)
    if status is TerminalStatus.revoked:
        query = query.where(Terminal.revoked_at.is_not(None))
    elif status is TerminalStatus.online:
        query = query.where(Terminal.revoked_at.is_(None), Terminal.last_seen_at >= online_since)
    elif status is TerminalStatus.offline:
        query = query.where(
            Terminal.revoked_at.is_(None),
            (Terminal.last_seen_at.is_(None)) | (Terminal.last_seen_at < online_since),
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(
        session.scalars(
            query.options(joinedload(Terminal.site))
            .order_by(Site.name, Terminal.id)
            .limit(limit)
            .offset(offset)
        )
    )
    states = {
        s.terminal_id: s
        for s in session.scalars(
            select(TerminalState).where(TerminalState.terminal_id.in_([t.id for t in rows]))
        )
    }
    return [
        TerminalView(t, states.get(t.id), status_of(t, now=now, offline_after_s=offline_after_s))
        for t in rows
    ], total


def online_site_ids(
    *, session: Session, site_ids: Iterable[int], now: datetime, offline_after_s: int
) -> set[int]:
    """Of `site_ids`, those with at least one terminal online now."""
    wanted = list(set(site_ids))
    if not wanted:
        return set()
    query = select(Terminal.site_id).where(
        Terminal.site_id.in_(wanted),
        Terminal.revoked_at.is_(None),
        Terminal.last_seen_at >= now - timedelta(seconds=offline_after_s),
    )
    return set(session.scalars(query.distinct()))


def site_ids_with_terminals(*, session: Session, site_ids: Iterable[int]) -> set[int]:
    """Of `site_ids`, those with at least one terminal that is not revoked (paired or not)."""
    wanted = list(set(site_ids))
    if not wanted:
        return set()
    query = select(Terminal.site_id).where(
        Terminal.site_id.in_(wanted), Terminal.revoked_at.is_(None)
    )
    return set(session.scalars(query.distinct()))


def last_seen_by_site(*, session: Session, site_ids: Iterable[int]) -> dict[int, datetime]:
    """The latest heartbeat of any active terminal of each site (sites never seen are left out)."""
    wanted = list(set(site_ids))
    if not wanted:
        return {}
    query = (
        select(Terminal.site_id, func.max(Terminal.last_seen_at))
        .where(Terminal.site_id.in_(wanted), Terminal.revoked_at.is_(None))
        .group_by(Terminal.site_id)
    )
    return {site_id: seen for site_id, seen in session.execute(query) if seen is not None}


# --- provisioning --------------------------------------------------------------------------------


def issue_pairing_code(
    *,
    session: Session,
    terminal: Terminal,
    secret_key: str,
    ttl_min: int,
    now: datetime,
    created_by: str,
) -> tuple[PairingCode, str]:
    """A new one-time code for `terminal`; earlier unused codes of it stop working."""
    if terminal.revoked_at is not None:
        raise Conflict(f"terminal {terminal.id} is revoked; create a new terminal")
    session.execute(
        update(PairingCode)
        .where(PairingCode.terminal_id == terminal.id, PairingCode.used_at.is_(None))
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    code = new_code()
    row = PairingCode(
        terminal_id=terminal.id,
        code_hash=hash_code(code, secret_key=secret_key),
        created_at=now,
        created_by=created_by,
        expires_at=now + timedelta(minutes=ttl_min),
    )
    session.add(row)
    session.flush()
    return row, code


def create_with_token(*, session: Session, site: Site, name: str = "") -> tuple[Terminal, str]:
    """Create a terminal for `site`; returns it with its token, which is not stored (the
    token is shown once: `POST /sites/{id}/terminals`, and the demo chair site at first start)."""
    if site.archived_at is not None:
        raise Conflict(f"site {site.id} is archived")
    if site.guest_uri is not None:
        # A guest is a SIP caller the gateway admitted by PIN: a terminal would let it in alone.
        raise Conflict(f"site {site.id} is a SIP guest; guests have no terminals")
    token, token_hash = auth_service.new_terminal_token()
    terminal = Terminal(site_id=site.id, name=name, token_hash=token_hash)
    session.add(terminal)
    session.flush()
    if not name:
        terminal.name = f"{site.name} #{terminal.id}"
    return terminal, token


def create(
    *,
    session: Session,
    site_id: int,
    name: str,
    secret_key: str,
    ttl_min: int,
    now: datetime,
    created_by: str,
) -> tuple[Terminal, PairingCode, str]:
    """A terminal for the site and its first pairing code (the terminal has no usable token
    until a device pairs)."""
    site = site_service.get_site(session=session, site_id=site_id)
    terminal, _unused_token = create_with_token(session=session, site=site, name=name)
    # The token made there is never shown: no token hashes to this, and pairing replaces it.
    terminal.token_hash = auth_service.UNPAIRED_TOKEN_HASH_PREFIX + secrets.token_hex(24)
    pairing, code = issue_pairing_code(
        session=session,
        terminal=terminal,
        secret_key=secret_key,
        ttl_min=ttl_min,
        now=now,
        created_by=created_by,
    )
    return terminal, pairing, code


def pair(
    *, session: Session, code: str, secret_key: str, now: datetime, grant_ttl_s: int
) -> tuple[Terminal, str]:
    """Exchange a pairing code for the terminal's long-lived token.

    A new token replaces the terminal's previous one, so pairing a replacement device cuts the
    old device off, the join grants it holds included (`grant_ttl_s`: how long they may last).
    Raises `Invalid` for a malformed code and `Unauthorized` for a wrong,
    used or expired one (one message for all three, so nothing is learnt by guessing).
    """
    normalised = normalise_code(code)
    if not _valid_shape(normalised):
        raise Invalid(
            f"a pairing code has {CODE_LENGTH} letters and digits, e.g. ABCD-EFGH "
            "(no 0, O, 1, I or L)"
        )
    row = session.scalar(
        select(PairingCode)
        .where(PairingCode.code_hash == hash_code(normalised, secret_key=secret_key))
        .with_for_update()
    )
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise Unauthorized("unknown, used or expired pairing code; ask IT staff for a new one")
    terminal = get(session=session, terminal_id=row.terminal_id)
    if terminal.revoked_at is not None:
        raise Unauthorized("unknown, used or expired pairing code; ask IT staff for a new one")
    # Single use even with two devices racing: only one UPDATE finds the code unused.
    claimed = session.execute(
        update(PairingCode)
        .where(PairingCode.id == row.id, PairingCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized("unknown, used or expired pairing code; ask IT staff for a new one")
    _void_grants(session, terminal, now=now, grant_ttl_s=grant_ttl_s)
    token, token_hash = auth_service.new_terminal_token()
    terminal.token_hash = token_hash
    terminal.paired_at = now
    session.flush()
    return terminal, token


def _void_grants(session: Session, terminal: Terminal, *, now: datetime, grant_ttl_s: int) -> None:
    """The join grants issued to the terminal's current token are void from now on (a new
    token replaces it); a token that was never handed out has none."""
    if terminal.token_hash.startswith(auth_service.UNPAIRED_TOKEN_HASH_PREFIX):
        return
    session.add(
        GrantRevocation(
            terminal_id=terminal.id,
            credential_id=auth_service.credential_id(terminal),
            revoked_at=now,
            expires_at=now + timedelta(seconds=grant_ttl_s) + auth_service.REVOCATION_MARGIN,
        )
    )


def revoke(*, session: Session, terminal: Terminal, now: datetime) -> Terminal:
    """Stop the terminal's token at once (every request checks it), its pending codes, and
    the join grants it holds (workers learn it with their next heartbeat,
    `grant_revocations`)."""
    if terminal.revoked_at is not None:
        raise Conflict(
            f"terminal {terminal.id} was revoked at {terminal.revoked_at:%Y-%m-%d %H:%M} UTC"
        )
    terminal.revoked_at = now
    session.execute(
        update(PairingCode)
        .where(PairingCode.terminal_id == terminal.id, PairingCode.used_at.is_(None))
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return terminal


# --- heartbeats ----------------------------------------------------------------------------------


def heartbeat(
    *, session: Session, terminal: Terminal, beat: HeartbeatIn, seen_ip: str | None, now: datetime
) -> TerminalState:
    """Record a heartbeat: the terminal is seen now, its report replaces the previous one.

    The meeting it says it is in must exist (else `NotFound`) and invite its site (else
    `Invalid`): IT staff read it as where the terminal is.
    """
    if beat.occurrence_id is not None:
        occurrence = occurrence_service.get_occurrence(
            session=session, occurrence_id=beat.occurrence_id
        )
        booking = session.scalar(
            select(Booking.id).where(
                Booking.occurrence_id == occurrence.id, Booking.site_id == terminal.site_id
            )
        )
        if booking is None:
            raise Invalid(
                f"occurrence_id: site {terminal.site_id} ({terminal.site.name}) is not invited "
                f"to occurrence {occurrence.id}; report the meeting the terminal is in, or none"
            )
    state = session.get(TerminalState, terminal.id)
    if state is None:
        state = TerminalState(terminal_id=terminal.id)
        session.add(state)
    state.reported_at = now
    state.kind = beat.kind
    state.version = beat.version
    # the address the terminal reports (its LAN address), else the one it came from
    state.ip = (beat.ip or seen_ip or "")[:64]
    state.camera = beat.camera
    state.microphone = beat.microphone
    state.occurrence_id = beat.occurrence_id
    state.last_error = beat.last_error
    terminal.last_seen_at = now
    session.flush()
    return state
