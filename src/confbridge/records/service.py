"""Invitations and agendas of series and occurrences, and the item a meeting is at."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.errors import Invalid
from confbridge.meetings.models import Booking, Occurrence, Series
from confbridge.recordings import chapters as recording_chapters
from confbridge.records.models import AgendaItem, Invitation, Progress
from confbridge.records.schemas import AgendaItemIn, InvitationWrite
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow

# The fields an occurrence's invitation may set itself; None there falls back to the series'.
TEXT_FIELDS = (
    "document_number",
    "document_date",
    "parent_body",
    "issuing_body",
    "place",
    "signer_name",
    "signer_title",
    "summary",
)


@dataclass
class EffectiveInvitation:
    """What an occurrence's invitation says: its own fields over the series'."""

    occurrence: Occurrence
    document_number: str | None = None
    document_date: date | None = None
    parent_body: str | None = None
    issuing_body: str | None = None
    place: str | None = None
    signer_name: str | None = None
    signer_title: str | None = None
    summary: str | None = None
    attendees: list[dict[str, Any]] = field(default_factory=list)
    items: list[AgendaItem] = field(default_factory=list)
    own_fields: list[str] = field(default_factory=list)
    updated_at: datetime | None = None

    @property
    def series(self) -> Series:
        return self.occurrence.series


def get(
    *, session: Session, series_id: int | None = None, occurrence_id: int | None = None
) -> Invitation | None:
    """The invitation a series or an occurrence holds itself, if any."""
    if (series_id is None) == (occurrence_id is None):
        raise ValueError("give series_id or occurrence_id")
    column = Invitation.series_id if series_id is not None else Invitation.occurrence_id
    return session.scalar(select(Invitation).where(column == (series_id or occurrence_id)))


def _check_sites(session: Session, site_ids: Iterable[int], where: str) -> None:
    wanted = set(site_ids)
    if not wanted:
        return
    found = set(session.scalars(select(Site.id).where(Site.id.in_(wanted))))
    missing = sorted(wanted - found)
    if missing:
        raise Invalid(f"{where}: site {missing[0]} does not exist")


def _write_items(
    session: Session, invitation: Invitation, items_in: list[AgendaItemIn] | None
) -> None:
    """Make the agenda hold `items_in`, in that order; items named by id keep their id."""
    _check_sites(
        session, (i.presenter_site_id for i in items_in or () if i.presenter_site_id), "agenda"
    )
    existing = {item.id: item for item in invitation.items}
    kept: list[AgendaItem] = []
    for position, item_in in enumerate(items_in or (), start=1):
        if item_in.id is not None:
            item = existing.pop(item_in.id, None)
            if item is None:
                raise Invalid(f"agenda[{position - 1}].id: item {item_in.id} is not on this agenda")
        else:
            item = AgendaItem()
        item.position = position
        item.title = item_in.title
        item.presenter = item_in.presenter
        item.presenter_site_id = item_in.presenter_site_id
        item.planned_min = item_in.planned_min
        kept.append(item)
    # Removed items go (their documents stay with the occurrence, on no item).
    invitation.items = kept
    invitation.has_agenda = items_in is not None


def write(
    *,
    session: Session,
    invitation_in: InvitationWrite,
    series: Series | None = None,
    occurrence: Occurrence | None = None,
) -> Invitation:
    """Create or update the invitation of `series` or of `occurrence` with the fields given."""
    owner = {"series_id": series.id} if series is not None else {}
    if occurrence is not None:
        owner = {"occurrence_id": occurrence.id}
    invitation = get(session=session, **owner)
    if invitation is None:
        invitation = Invitation(**owner, has_agenda=False)
        session.add(invitation)
    given = invitation_in.model_fields_set
    for name in TEXT_FIELDS:
        if name in given:
            setattr(invitation, name, getattr(invitation_in, name))
    if "attendees" in given:
        groups = invitation_in.attendees
        _check_sites(session, (g.site_id for g in groups or () if g.site_id), "attendees")
        invitation.attendees = (
            None if groups is None else [g.model_dump(mode="json") for g in groups]
        )
    if "agenda" in given:
        _write_items(session, invitation, invitation_in.agenda)
    session.flush()
    return invitation


def delete(
    *, session: Session, series_id: int | None = None, occurrence_id: int | None = None
) -> bool:
    """Remove a series' or an occurrence's own invitation; False when there was none."""
    invitation = get(session=session, series_id=series_id, occurrence_id=occurrence_id)
    if invitation is None:
        return False
    session.delete(invitation)
    session.flush()
    return True


def effective(*, session: Session, occurrence: Occurrence) -> EffectiveInvitation:
    """The invitation of `occurrence`: its own fields, else the series'."""
    own = get(session=session, occurrence_id=occurrence.id)
    base = get(session=session, series_id=occurrence.series_id)
    result = EffectiveInvitation(occurrence=occurrence)
    for name in TEXT_FIELDS:
        mine = getattr(own, name) if own is not None else None
        if mine is not None:
            result.own_fields.append(name)
        setattr(result, name, mine if mine is not None else getattr(base, name, None))
    if own is not None and own.attendees is not None:
        result.own_fields.append("attendees")
        result.attendees = list(own.attendees)
    elif base is not None and base.attendees is not None:
        result.attendees = list(base.attendees)
    if own is not None and own.has_agenda:
        result.own_fields.append("agenda")
        result.items = list(own.items)
    elif base is not None:
        result.items = list(base.items)
    stamps = [i.updated_at for i in (own, base) if i is not None]
    result.updated_at = max(stamps) if stamps else None
    return result


def site_names(*, session: Session, site_ids: Iterable[int]) -> dict[int, str]:
    wanted = {i for i in site_ids if i}
    if not wanted:
        return {}
    rows = session.execute(select(Site.id, Site.name).where(Site.id.in_(wanted)))
    return {site_id: name for site_id, name in rows}


def is_invited(*, session: Session, occurrence_id: int, site_id: int) -> bool:
    """Whether `site_id` is booked (and not released) in the occurrence."""
    found = session.scalar(
        select(Booking.id).where(
            Booking.occurrence_id == occurrence_id,
            Booking.site_id == site_id,
            Booking.active.is_(True),
        )
    )
    return found is not None


def item_of(*, session: Session, occurrence: Occurrence, item_id: int) -> AgendaItem:
    """An item of the occurrence's agenda (as `effective` gives it), or Invalid."""
    items = effective(session=session, occurrence=occurrence).items
    for item in items:
        if item.id == item_id:
            return item
    raise Invalid(f"agenda_item_id: item {item_id} is not on this meeting's agenda")


def current_item_id(*, session: Session, occurrence_id: int) -> int | None:
    progress = session.get(Progress, occurrence_id)
    return progress.current_item_id if progress is not None else None


def set_current_item(
    *, session: Session, occurrence: Occurrence, item_id: int | None, actor: str
) -> None:
    """Mark the agenda item the meeting is at (None: none); a recording running now gets a
    chapter for it."""
    item = None
    if item_id is not None:
        item = item_of(session=session, occurrence=occurrence, item_id=item_id)
    progress = session.get(Progress, occurrence.id)
    if progress is None:
        progress = Progress(occurrence_id=occurrence.id, updated_by=actor)
        session.add(progress)
    progress.current_item_id = item_id
    progress.updated_by = actor
    session.flush()
    if item is not None:
        recording_chapters.mark_agenda_item(
            session=session,
            occurrence_id=occurrence.id,
            title=f"{item.position}. {item.title}"
            + (f" – {item.presenter}" if item.presenter else ""),
            site_id=item.presenter_site_id,
            now=utcnow(),
        )


def _snapshot(invitation: Invitation | None) -> dict[str, Any]:
    """What an invitation says, comparable with what a file wants."""
    if invitation is None:
        return {"agenda": None, "attendees": None, **dict.fromkeys(TEXT_FIELDS)}
    items = [(i.title, i.presenter, i.presenter_site_id, i.planned_min) for i in invitation.items]
    return {
        **{name: getattr(invitation, name) for name in TEXT_FIELDS},
        "attendees": invitation.attendees,
        "agenda": items if invitation.has_agenda else None,
    }


def replace_series_invitation(
    *, session: Session, series: Series, invitation_in: InvitationWrite
) -> bool:
    """Make the series' invitation say exactly `invitation_in` (a schedule file's); items keep
    their ids by position, so their documents stay attached. True when something changed."""
    current = get(session=session, series_id=series.id)
    full = InvitationWrite.model_validate(
        {name: getattr(invitation_in, name) for name in InvitationWrite.model_fields}
    )
    wanted = _snapshot(None) | {name: getattr(full, name) for name in TEXT_FIELDS}
    wanted["attendees"] = (
        None if full.attendees is None else [g.model_dump(mode="json") for g in full.attendees]
    )
    wanted["agenda"] = (
        None
        if full.agenda is None
        else [(i.title, i.presenter, i.presenter_site_id, i.planned_min) for i in full.agenda]
    )
    if _snapshot(current) == wanted:
        return False
    if current is not None and full.agenda is not None:
        for item_in, item in zip(full.agenda, current.items, strict=False):
            item_in.id = item.id
    write(session=session, invitation_in=full, series=series)
    return True


def calendar_description(session: Session, series_id: int) -> str:
    """The series' invitation content and agenda, for its calendar events' description."""
    invitation = get(session=session, series_id=series_id)
    if invitation is None:
        return ""
    lines = []
    if invitation.document_number:
        lines.append(f"Giấy mời số {invitation.document_number}")
    if invitation.summary:
        lines.append(f"Nội dung: {' '.join(invitation.summary.split())}")
    if invitation.items:
        lines.append("Chương trình:")
        for item in invitation.items:
            line = f"{item.position}. {item.title}"
            if item.presenter:
                line += f" – {item.presenter}"
            if item.planned_min:
                line += f" ({item.planned_min} phút)"
            lines.append(line)
    return "\n".join(lines)
