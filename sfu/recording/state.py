"""A recording's state file, `<id>.json` beside its media file: written when it starts, at
every chapter and when it ends, so that a worker that dies leaves what recovery needs (the
room, the start, the chapters so far; `info.ended_at` None means it never ended)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from confbridge_kernel.recordings import RecordingInfo


class RecordingState(BaseModel):
    """The recording as the control plane knows it, and the meeting it belongs to."""

    info: RecordingInfo
    occurrence_id: int = 0


def read_state(path: Path) -> RecordingState | None:
    """The state in `path`, None if there is none or it is unreadable (cut mid-write)."""
    try:
        return RecordingState.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None
