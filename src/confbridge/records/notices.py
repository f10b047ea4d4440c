"""Notices of meetings to the invited sites' contacts: planned into an outbox (one row per
e-mail or webhook call, unique by kind, occurrence, calendar SEQUENCE and address), then sent
with retries.

Kinds: `invitation` (sent on request), `change` (the occurrence moved: its SEQUENCE went up),
`cancellation`, and the reminders `reminder_1d` and `reminder_30m` before the start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.meetings.models import Booking, Displacement, Occurrence, OccurrenceStatus
from confbridge.records.models import (
    Notice,
    NoticeChannel,
    NoticeStatus,
    SiteContact,
    SiteWebhook,
)

# Each reminder goes out when the start is within its window (from, to] ahead of now.
REMINDERS = {
    "reminder_1d": (timedelta(minutes=30), timedelta(days=1)),
    "reminder_30m": (timedelta(0), timedelta(minutes=30)),
}
# Changes and cancellations are told for meetings up to this far ahead.
CHANGE_HORIZON = timedelta(days=60)
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=1)
# A notice handed to the server this long ago without an answer is given up, not resent.
SENDING_STALE = timedelta(minutes=15)


class NoticeKind(StrEnum):
    invitation = "invitation"
    change = "change"
    cancellation = "cancellation"
    reminder_1d = "reminder_1d"
    reminder_30m = "reminder_30m"


@dataclass(frozen=True)
class ContactIn:
    email: str
    name: str | None = None


def list_contacts(*, session: Session, site_id: int) -> list[SiteContact]:
    query = select(SiteContact).where(SiteContact.site_id == site_id).order_by(SiteContact.id)
    return list(session.scalars(query))


def set_contacts(*, session: Session, site_id: int, contacts: Iterable[ContactIn]) -> None:
    """Make the site's contacts exactly `contacts` (addresses compared case-insensitively)."""
    wanted = {c.email.lower(): c for c in contacts}
    for contact in list_contacts(session=session, site_id=site_id):
        given = wanted.pop(contact.email.lower(), None)
        if given is None:
            session.delete(contact)
        else:
            contact.name = given.name
    for contact in wanted.values():
        session.add(SiteContact(site_id=site_id, email=contact.email, name=contact.name))
    session.flush()


def _recipients(
    session: Session, occurrence: Occurrence, kind: NoticeKind
) -> dict[str, tuple[int, str, int | None]]:
    """By dedupe key: the site, address and webhook of each contact the notice goes to."""
    booked = select(Booking.site_id).where(Booking.occurrence_id == occurrence.id)
    if kind != NoticeKind.cancellation:
        # a cancellation releases the bookings: the sites that were booked are told
        booked = booked.where(Booking.active.is_(True))
    prefix = f"{kind}:{occurrence.id}:{occurrence.sequence}"
    emails = session.execute(
        select(SiteContact.site_id, SiteContact.email)
        .where(SiteContact.site_id.in_(booked))
        .order_by(SiteContact.site_id, SiteContact.email)
    )
    found: dict[str, tuple[int, str, int | None]] = {
        f"{prefix}:{email.lower()}": (site_id, email, None) for site_id, email in emails
    }
    hooks = session.execute(
        select(SiteWebhook.site_id, SiteWebhook.url, SiteWebhook.id)
        .where(SiteWebhook.site_id.in_(booked))
        .order_by(SiteWebhook.site_id, SiteWebhook.id)
    )
    found.update({f"{prefix}:webhook:{hook_id}": (s, url, hook_id) for s, url, hook_id in hooks})
    return found


def enqueue(*, session: Session, occurrence: Occurrence, kind: NoticeKind, now: datetime) -> int:
    """Queue `kind` for every contact (e-mail or webhook) of the occurrence's invited sites;
    returns how many are new (a notice already queued for the same SEQUENCE is not queued
    again)."""
    keys = _recipients(session, occurrence, kind)
    if not keys:
        return 0
    known = set(session.scalars(select(Notice.dedupe_key).where(Notice.dedupe_key.in_(keys))))
    added = 0
    for key, (site_id, address, webhook_id) in keys.items():
        if key in known:
            continue
        session.add(
            Notice(
                occurrence_id=occurrence.id,
                site_id=site_id,
                email=address,
                channel=(
                    NoticeChannel.email if webhook_id is None else NoticeChannel.webhook
                ).value,
                webhook_id=webhook_id,
                kind=kind.value,
                sequence=occurrence.sequence,
                dedupe_key=key,
                status=NoticeStatus.pending.value,
                attempts=0,
                next_attempt_at=now,
            )
        )
        added += 1
    session.flush()
    return added


def plan_emergencies(*, session: Session, now: datetime) -> int:
    """Tell the sites of meetings an emergency meeting (họp khẩn) displaced, however far
    ahead, and invite the emergency meeting's sites at once."""
    added = 0
    displaced = session.execute(
        select(Occurrence, Displacement.action)
        .join(Displacement, Displacement.occurrence_id == Occurrence.id)
        .where(Displacement.sequence == Occurrence.sequence, Occurrence.end_at > now)
        .order_by(Displacement.id)
    )
    for occurrence, action in displaced:
        kind = NoticeKind.cancellation if action == "cancel" else NoticeKind.change
        added += enqueue(session=session, occurrence=occurrence, kind=kind, now=now)
    coming = session.scalars(
        select(Occurrence)
        .where(
            Occurrence.id.in_(select(Displacement.emergency_occurrence_id)),
            Occurrence.status == OccurrenceStatus.scheduled.value,
            Occurrence.end_at > now,
        )
        .order_by(Occurrence.id)
    )
    for occurrence in coming:
        added += enqueue(
            session=session, occurrence=occurrence, kind=NoticeKind.invitation, now=now
        )
    return added


def displacement_of(*, session: Session, notice: Notice) -> Displacement | None:
    """The emergency that caused this notice's change or cancellation, if one did."""
    if notice.kind not in (NoticeKind.change, NoticeKind.cancellation):
        return None
    query = select(Displacement).where(
        Displacement.occurrence_id == notice.occurrence_id,
        Displacement.sequence == notice.sequence,
    )
    return session.scalar(query.order_by(Displacement.id.desc()).limit(1))


def plan(*, session: Session, now: datetime) -> int:
    """Queue the reminders that are due, and changes and cancellations not told yet."""
    added = plan_emergencies(session=session, now=now)
    for kind, (after, until) in REMINDERS.items():
        soon = session.scalars(
            select(Occurrence).where(
                Occurrence.status == OccurrenceStatus.scheduled.value,
                Occurrence.start_at > now + after,
                Occurrence.start_at <= now + until,
            )
        )
        for occurrence in soon:
            added += enqueue(session=session, occurrence=occurrence, kind=NoticeKind(kind), now=now)
    changed = session.scalars(
        select(Occurrence).where(
            Occurrence.sequence > 0,
            Occurrence.start_at > now,
            Occurrence.start_at <= now + CHANGE_HORIZON,
        )
    )
    for occurrence in changed:
        cancelled = occurrence.status == OccurrenceStatus.cancelled.value
        kind = NoticeKind.cancellation if cancelled else NoticeKind.change
        added += enqueue(session=session, occurrence=occurrence, kind=kind, now=now)
    return added


def list_(*, session: Session, occurrence_id: int) -> list[Notice]:
    query = select(Notice).where(Notice.occurrence_id == occurrence_id).order_by(Notice.id)
    return list(session.scalars(query))


def claim_due(
    *,
    session: Session,
    now: datetime,
    limit: int,
    channels: Iterable[NoticeChannel] = tuple(NoticeChannel),
) -> list[int]:
    """Mark up to `limit` due notices of `channels` as being sent (the caller commits before
    sending)."""
    wanted = [c.value for c in channels]
    stale = session.scalars(
        select(Notice).where(
            Notice.status == NoticeStatus.sending.value,
            Notice.next_attempt_at <= now - SENDING_STALE,
        )
    )
    for notice in stale:
        # it may have gone out: never risk a second copy
        notice.status = NoticeStatus.failed.value
        notice.last_error = "no answer from the receiver; not sent again"
    due = list(
        session.scalars(
            select(Notice)
            .where(
                Notice.status == NoticeStatus.pending.value,
                Notice.next_attempt_at <= now,
                Notice.channel.in_(wanted),
            )
            .order_by(Notice.next_attempt_at, Notice.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for notice in due:
        notice.status = NoticeStatus.sending.value
        notice.attempts += 1
        notice.next_attempt_at = now
    session.flush()
    return [notice.id for notice in due]


def mark_sent(*, session: Session, notice: Notice, now: datetime) -> None:
    notice.status = NoticeStatus.sent.value
    notice.sent_at = now
    notice.last_error = None


def mark_refused(
    *, session: Session, notice: Notice, error: str, now: datetime, max_attempts: int
) -> None:
    """The server refused or could not be reached: try again later, or give up."""
    notice.last_error = error[:500]
    if notice.attempts >= max_attempts:
        notice.status = NoticeStatus.failed.value
        return
    notice.status = NoticeStatus.pending.value
    delay = min(FIRST_RETRY * (2 ** (notice.attempts - 1)), MAX_RETRY)
    notice.next_attempt_at = now + delay
