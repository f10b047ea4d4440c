"""Item by item changes of an occurrence's or a series' agenda (the web forms): add, change,
move, remove.

An occurrence that follows its series' agenda gets its own copy first; the documents and the
current item of this occurrence that pointed at the series' items follow their copies. A
series' agenda is changed in place: the occurrences that follow it follow the change.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.errors import Invalid
from confbridge.meetings.models import Occurrence, Series
from confbridge.records import service as record_service
from confbridge.records.models import AgendaItem, Document, Invitation, Progress
from confbridge.records.schemas import MAX_AGENDA_ITEMS, AgendaItemIn, InvitationWrite

Change = Callable[[list[AgendaItemIn]], list[AgendaItemIn]]


def _copy(item: AgendaItem) -> AgendaItem:
    return AgendaItem(
        position=item.position,
        title=item.title,
        presenter=item.presenter,
        presenter_site_id=item.presenter_site_id,
        planned_min=item.planned_min,
    )


def own_agenda(*, session: Session, occurrence: Occurrence) -> tuple[Invitation, dict[int, int]]:
    """The occurrence's own invitation, holding an agenda of its own (a copy of the series'
    when it had none), and the new ids of the series' items that were copied."""
    own = record_service.get(session=session, occurrence_id=occurrence.id)
    if own is not None and own.has_agenda:
        return own, {}
    base = record_service.get(session=session, series_id=occurrence.series_id)
    inherited = list(base.items) if base is not None else []
    if own is None:
        own = Invitation(occurrence_id=occurrence.id, has_agenda=False)
        session.add(own)
    copies = [_copy(item) for item in inherited]
    own.items = copies
    own.has_agenda = True
    session.flush()
    moved = {old.id: new.id for old, new in zip(inherited, copies, strict=True)}
    if moved:
        documents = session.scalars(
            select(Document).where(
                Document.occurrence_id == occurrence.id,
                Document.agenda_item_id.in_(list(moved)),
            )
        )
        for document in documents:
            document.agenda_item_id = moved[document.agenda_item_id or 0]
        progress = session.get(Progress, occurrence.id)
        if progress is not None and progress.current_item_id in moved:
            progress.current_item_id = moved[progress.current_item_id or 0]
        session.flush()
    return own, moved


def item_in(item: AgendaItem) -> AgendaItemIn:
    """An item as it stands, to be written back (keeping its id)."""
    return AgendaItemIn(
        id=item.id,
        title=item.title,
        presenter=item.presenter,
        presenter_site_id=item.presenter_site_id,
        planned_min=item.planned_min,
    )


def edit(
    *,
    session: Session,
    change: Change,
    occurrence: Occurrence | None = None,
    series: Series | None = None,
) -> Invitation:
    """Apply `change` to the occurrence's own agenda, or to the series' (its items as written,
    in order)."""
    if occurrence is not None:
        own, _renamed = own_agenda(session=session, occurrence=occurrence)
        current = list(own.items)
    elif series is not None:
        stored = record_service.get(session=session, series_id=series.id)
        current = list(stored.items) if stored is not None else []
    else:
        raise ValueError("give occurrence or series")
    items = change([item_in(item) for item in current])
    if len(items) > MAX_AGENDA_ITEMS:
        raise Invalid(f"agenda: at most {MAX_AGENDA_ITEMS} items")
    return record_service.write(
        session=session,
        invitation_in=InvitationWrite(agenda=items),
        series=series if occurrence is None else None,
        occurrence=occurrence,
    )


def index_of(items: list[AgendaItemIn], item_id: int) -> int:
    """Where item `item_id` is in `items`, or Invalid (it was removed meanwhile)."""
    for index, item in enumerate(items):
        if item.id == item_id:
            return index
    raise Invalid(f"agenda_item_id: item {item_id} is not on this meeting's agenda")


def moved(items: list[AgendaItemIn], item_id: int, step: int) -> list[AgendaItemIn]:
    """`items` with item `item_id` moved `step` places (-1: up, 1: down), kept in bounds."""
    index = index_of(items, item_id)
    target = min(max(index + step, 0), len(items) - 1)
    items.insert(target, items.pop(index))
    return items
