"""Recordings that ended without the control plane asking (recordings + alerts): the worker
reports each as a `recording_ended` event with its final info; the row takes it, and one that
stopped by itself (a full disk, a write error, its worker died) raises an alert."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy.orm import Session

from confbridge.alerts import service as alert_service
from confbridge.alerts.service import AlertIn, AlertKind, Severity
from confbridge.recordings import service
from confbridge.recordings.models import Recording
from confbridge_kernel.contracts import EventType, SfuEvent
from confbridge_kernel.recordings import RecordingInfo

log = logging.getLogger(__name__)

FAILURES_VI = {
    "disk_full": "hết dung lượng đĩa",
    "write_error": "lỗi ghi tệp",
    "worker_died": "tiến trình máy chủ media bị dừng đột ngột",
}


def settle_ended(
    *, session: Session, events: Iterable[SfuEvent], now: datetime, deliver: bool
) -> list[Recording]:
    """Apply each `recording_ended` event's final info to its recording (once: a row that
    ended already is left alone); alert IT staff of those that stopped by themselves."""
    settled = []
    for event in events:
        if event.type is not EventType.recording_ended:
            continue
        try:
            info = RecordingInfo.model_validate(event.detail)
        except ValidationError:
            log.warning("event %s: not a recording's info", event.id)
            continue
        row = session.get(Recording, info.recording_id)
        if row is None or row.occurrence_id != event.occurrence_id or info.ended_at is None:
            continue
        if row.ended_at is None:
            service.apply_info(row, info)
            settled.append(row)
        if info.failure is not None:
            _alert(session, row, info, now=now, deliver=deliver)
    session.flush()
    return settled


def _alert(
    session: Session, row: Recording, info: RecordingInfo, *, now: datetime, deliver: bool
) -> None:
    failure = info.failure or ""
    why_vi = FAILURES_VI.get(failure, failure)
    alert_service.raise_(
        session=session,
        alert_in=AlertIn(
            kind=AlertKind.recording_failed,
            severity=Severity.warning if failure == "worker_died" else Severity.critical,
            subject=f"recording:{row.id}",
            node_id=row.node_id,
            occurrence_id=row.occurrence_id,
            message=(
                f"Ghi hình cuộc họp đã dừng ({why_vi}) trên máy chủ {row.node_id}; "
                f"phần đã ghi ({info.bytes or 0} byte) được giữ lại"
            ),
            message_en=(
                f"Recording stopped ({failure}) on media server {row.node_id}; "
                f"the {info.bytes or 0} bytes written are kept"
            ),
            details={"recording_id": row.id, "failure": failure, "bytes": info.bytes},
        ),
        now=now,
        deliver=deliver,
    )
