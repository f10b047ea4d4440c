"""The contract between the control plane and the worker that holds a room for recording its
programme (issue 20): the worker writes the file, the control plane keeps the list.

- `POST /rooms/{room}/recording` (`RecordingCommand`) → `RecordingInfo`: start (the control
  plane names the recording) or stop; 409 when the room is already in that state.
- `GET /recordings/{recording_id}` → `RecordingInfo` of a recording this worker wrote.
- `GET /recordings/{recording_id}/file` → the file itself (`media_type`: `video/webm` for
  VP8 rooms, `video/x-matroska` for H.264 rooms; byte ranges too).
- `DELETE /recordings/{recording_id}` → 204: the file and its state removed (retention); 409
  while it records, 404 if the worker has neither.

A recording that ends by itself (a write error, the room closing, a worker that died and was
recovered at its restart) is also reported as an `SfuEvent` of type `recording_ended` whose
`detail` is its final `RecordingInfo`.

Every call carries the control plane's admin token for the worker (method and path).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

RECORDING_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"


def recording_path(room: str) -> str:
    """The worker's admin endpoint that starts and stops a room's recording."""
    return f"/rooms/{room}/recording"


def recording_info_path(recording_id: str) -> str:
    """A recording's state on the worker that wrote it."""
    return f"/recordings/{recording_id}"


def recording_file_path(recording_id: str) -> str:
    """A recording's file on the worker that wrote it."""
    return f"/recordings/{recording_id}/file"


class RecordingCommand(BaseModel):
    """Start or stop the room's recording; `recording_id` names a new one (start only)."""

    action: Literal["start", "stop"]
    recording_id: str | None = Field(default=None, pattern=RECORDING_ID_PATTERN)


class RecordingChapter(BaseModel):
    """A marker in a recording: the floor moved, content started or stopped, an agenda item."""

    start_ms: int = Field(ge=0, description="ms since the recording began")
    kind: Literal["floor", "content_start", "content_stop", "agenda"]
    title: str
    site_id: int | None = None


class RecordingInfo(BaseModel):
    """One recording as its worker knows it; `ended_at`, `bytes` and `sha256` once stopped.
    `failure` says why a recording stopped by itself (`disk_full`, `write_error`,
    `worker_died`), None when it was stopped or its room closed."""

    recording_id: str
    room: str
    started_at: datetime
    ended_at: datetime | None = None
    bytes: int | None = None
    sha256: str | None = None
    media_type: str = "video/webm"
    chapters: list[RecordingChapter] = []
    failure: str | None = None
