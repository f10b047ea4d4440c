"""Invitations and agendas applied from schedule files."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from confbridge.meetings import service as meeting_service
from confbridge.records import service as record_service
from confbridge.schedules import service as schedule_service
from confbridge.schedules.loader import ScheduleError
from confbridge.settings import Settings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "ha-long/giao-ban-tuan"
HA_LONG = Path(__file__).resolve().parents[2] / "schedules" / "ha-long.yaml"


def _apply(session: Session, settings: Settings, path: Path) -> list[str]:
    report = schedule_service.apply_file(path, session=session, settings=settings, now=NOW)
    session.commit()
    return report.lines()


def test_schedule_invitation_is_applied_and_reapplying_changes_nothing(
    session: Session, settings: Settings
) -> None:
    path = HA_LONG
    _apply(session, settings, path)
    series = meeting_service.get_by_source_key(session=session, source_key=KEY)
    assert series is not None
    invitation = record_service.get(session=session, series_id=series.id)
    assert invitation is not None
    assert invitation.document_number == "01/GM-UBND"
    assert invitation.document_date == date(2026, 1, 2)
    assert invitation.issuing_body == "ỦY BAN NHÂN DÂN THÀNH PHỐ HẠ LONG"
    assert [item.planned_min for item in invitation.items] == [15, 15, 40, 20]
    assert invitation.items[1].presenter_site_id is not None
    assert invitation.attendees is not None and invitation.attendees[1]["roles"][0] == (
        "Chủ tịch UBND phường"
    )
    again = _apply(session, settings, path)
    assert f"unchanged series {KEY}" in again


def test_schedule_invitation_edit_updates_in_place_keeping_item_ids(
    session: Session, settings: Settings, tmp_path: Path
) -> None:
    source = HA_LONG
    _apply(session, settings, source)
    series = meeting_service.get_by_source_key(session=session, source_key=KEY)
    assert series is not None
    invitation = record_service.get(session=session, series_id=series.id)
    assert invitation is not None
    ids = [item.id for item in invitation.items]
    edited = tmp_path / "ha-long.yaml"
    text = source.read_text(encoding="utf-8").replace("number: 01/GM-UBND", "number: 02/GM-UBND")
    edited.write_text(text.replace("minutes: 40", "minutes: 45"), encoding="utf-8")
    lines = _apply(session, settings, edited)
    assert f"updated series {KEY}: invitation" in lines
    session.expire_all()
    invitation = record_service.get(session=session, series_id=series.id)
    assert invitation is not None
    assert invitation.document_number == "02/GM-UBND"
    assert [item.id for item in invitation.items] == ids
    assert invitation.items[2].planned_min == 45


def test_schedule_invitation_unknown_presenter_site_names_its_line(
    session: Session, settings: Settings, tmp_path: Path
) -> None:
    source = HA_LONG
    text = source.read_text(encoding="utf-8")
    edited = tmp_path / "ha-long.yaml"
    edited.write_text(
        text.replace("presenter_site: ha-long/phong-tckh/phong-hop", "presenter_site: ha-long/x"),
        encoding="utf-8",
    )
    line = next(i for i, row in enumerate(edited.read_text().splitlines(), 1) if "ha-long/x" in row)
    with pytest.raises(ScheduleError) as raised:
        _apply(session, settings, edited)
    assert raised.value.line == line
    assert "unknown site key 'ha-long/x'" in str(raised.value)
