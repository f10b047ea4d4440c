"""Conclusions (thông báo kết luận) of an occurrence and the tasks they assign."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.errors import Invalid, NotFound
from confbridge.meetings.models import Occurrence
from confbridge.records.models import AssignedTask, Conclusion
from confbridge.records.schemas import ConclusionWrite
from confbridge.sites.models import Unit

FIELDS = ("document_number", "document_date", "signer_name", "signer_title", "text")


def get(*, session: Session, occurrence_id: int) -> Conclusion:
    conclusion = session.scalar(select(Conclusion).where(Conclusion.occurrence_id == occurrence_id))
    if conclusion is None:
        raise NotFound(f"occurrence {occurrence_id} has no conclusions recorded")
    return conclusion


def write(
    *, session: Session, occurrence: Occurrence, conclusion_in: ConclusionWrite, actor: str
) -> Conclusion:
    """Record (or replace) the occurrence's conclusions and tasks."""
    unit_ids = {task.unit_id for task in conclusion_in.tasks if task.unit_id}
    if unit_ids:
        found = set(session.scalars(select(Unit.id).where(Unit.id.in_(unit_ids))))
        missing = sorted(unit_ids - found)
        if missing:
            raise Invalid(f"tasks: unit {missing[0]} does not exist")
    conclusion = session.scalar(select(Conclusion).where(Conclusion.occurrence_id == occurrence.id))
    if conclusion is None:
        conclusion = Conclusion(occurrence_id=occurrence.id)
        session.add(conclusion)
    for name in FIELDS:
        setattr(conclusion, name, getattr(conclusion_in, name))
    conclusion.recorded_by = actor[:150]
    conclusion.tasks = [
        AssignedTask(
            position=position,
            content=task.content,
            unit=task.unit,
            unit_id=task.unit_id,
            deadline_date=task.deadline_date,
        )
        for position, task in enumerate(conclusion_in.tasks, start=1)
    ]
    session.flush()
    return conclusion
