"""Whether an occurrence is being recorded now, for the halls' and the console's indicator."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.recordings.models import Recording


def recording_now(*, session: Session, occurrence_id: int) -> Recording | None:
    """The occurrence's recording not yet ended, if any (started and not stopped here)."""
    return session.scalar(
        select(Recording)
        .where(Recording.occurrence_id == occurrence_id, Recording.ended_at.is_(None))
        .order_by(Recording.started_at.desc())
        .limit(1)
    )
