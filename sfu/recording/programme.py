"""What a room hands its recorder: the sources of the programme and who they belong to."""

from __future__ import annotations

from dataclasses import dataclass

from sfu.forwarding import Source


@dataclass(frozen=True)
class Programme:
    """The speaker's camera and microphone, the chair's microphone (None while the chair
    speaks: it is the speaker's then), the content being presented, and the sites behind
    them by id and name (the recording's chapters are named after them)."""

    video: Source | None
    audio: Source | None
    chair_audio: Source | None = None
    content: Source | None = None
    speaker_site_id: int | None = None
    speaker_name: str = ""
    content_site_id: int | None = None
    content_name: str = ""
