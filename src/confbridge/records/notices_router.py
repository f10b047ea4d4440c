"""Sites' contacts and the meetings' notices (e-mail and webhooks) over HTTP."""

from __future__ import annotations

from fastapi import APIRouter, status

from confbridge.auth import service as auth_service
from confbridge.auth.dependencies import ReadScope, SiteEditorScope
from confbridge.deps import SessionDep
from confbridge.errors import Conflict, Invalid
from confbridge.meetings import access as meeting_access
from confbridge.meetings.models import OccurrenceStatus
from confbridge.pagination import IdPath
from confbridge.records import notices as notice_service
from confbridge.records import webhooks
from confbridge.records.router import EditableOccurrence, actor
from confbridge.records.schemas import (
    ContactRead,
    ContactWrite,
    NoticeRead,
    NoticeRequest,
    NoticesQueued,
)
from confbridge.sites import access as site_access
from confbridge.timeutil import utcnow

router = APIRouter(tags=["meeting record"])


# --- sites' contacts and notices -----------------------------------------------------------------

MAX_CONTACTS = 50


@router.get("/sites/{site_id}/contacts", response_model=list[ContactRead])
def get_contacts(site_id: IdPath, reader: ReadScope, session: SessionDep) -> list[ContactRead]:
    """The e-mail addresses and webhooks that receive the site's meeting notices (sites in
    your scope); webhooks' secrets are never shown."""
    site_access.visible_site(session=session, site_id=site_id, scope=reader.scope)
    emails = [
        ContactRead(id=c.id, email=c.email, name=c.name)
        for c in notice_service.list_contacts(session=session, site_id=site_id)
    ]
    hooks = [
        ContactRead(id=w.id, kind="webhook", webhook_url=w.url, name=w.name)
        for w in webhooks.list_webhooks(session=session, site_id=site_id)
    ]
    return emails + hooks


@router.put("/sites/{site_id}/contacts", response_model=list[ContactRead])
def put_contacts(
    site_id: IdPath, body: list[ContactWrite], editor: SiteEditorScope, session: SessionDep
) -> list[ContactRead]:
    """Replace the site's contacts (invitations, changes, cancellations, reminders): e-mail
    addresses and webhooks; the secretariat or IT staff of the site's unit (404 for a site
    outside their scope)."""
    site_access.visible_site(session=session, site_id=site_id, scope=editor.scope)
    if len(body) > MAX_CONTACTS:
        raise Invalid(f"at most {MAX_CONTACTS} contacts per site")
    notice_service.set_contacts(
        session=session,
        site_id=site_id,
        contacts=[notice_service.ContactIn(c.email, c.name) for c in body if c.email],
    )
    webhooks.set_webhooks(
        session=session,
        site_id=site_id,
        webhooks=[
            webhooks.WebhookIn(c.webhook_url, c.secret, c.name) for c in body if c.webhook_url
        ],
    )
    auth_service.record(
        session=session,
        actor=actor(editor.user),
        action="contacts_set",
        entity="site",
        entity_id=site_id,
    )
    session.commit()
    return get_contacts(site_id, editor, session)


@router.post(
    "/occurrences/{occurrence_id}/notices",
    response_model=NoticesQueued,
    status_code=status.HTTP_202_ACCEPTED,
)
def send_notices(
    editing: EditableOccurrence, body: NoticeRequest, session: SessionDep
) -> NoticesQueued:
    """Send the invitation to the invited sites' contacts (once per calendar SEQUENCE)."""
    occurrence, user = editing.occurrence, editing.user
    now = utcnow()
    if occurrence.status == OccurrenceStatus.cancelled.value:
        raise Conflict("the meeting is cancelled: its sites were told so, no invitation is sent")
    if occurrence.end_at <= now:
        raise Conflict("the meeting is over: no invitation is sent")
    queued = notice_service.enqueue(
        session=session,
        occurrence=occurrence,
        kind=notice_service.NoticeKind(body.kind),
        now=now,
    )
    auth_service.record(
        session=session,
        actor=actor(user),
        action="notices_queued",
        entity="occurrence",
        entity_id=occurrence.id,
        detail={"kind": body.kind, "queued": queued},
    )
    session.commit()
    return NoticesQueued(queued=queued)


@router.get("/occurrences/{occurrence_id}/notices", response_model=list[NoticeRead])
def list_notices(occurrence_id: IdPath, reader: ReadScope, session: SessionDep) -> list[NoticeRead]:
    """The notices of the occurrence and how their delivery went."""
    meeting_access.visible_occurrence(
        session=session, occurrence_id=occurrence_id, scope=reader.scope
    )
    return [
        NoticeRead.model_validate(n, from_attributes=True)
        for n in notice_service.list_(session=session, occurrence_id=occurrence_id)
    ]
