"""Schedule files give sites their room systems' SIP addresses and series their dial-in fields."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.meetings.models import Series
from confbridge.schedules import loader, service
from confbridge.schedules.loader import ScheduleError
from confbridge.schedules.service import ApplyReport
from confbridge.settings import Settings
from confbridge.sites.models import Site
from tests.schedules.test_loader import VALID, error_of, line_of

SCHEDULES = Path(__file__).resolve().parents[2] / "schedules"
NOW = datetime(2026, 3, 1, 5, 0, tzinfo=UTC)
WITH_SIP = VALID.replace(
    "        name: Hội trường UBND tỉnh Thử\n",
    "        name: Hội trường UBND tỉnh Thử\n        sip_uri: SIP:Tinh@Rooms.Example.VN:5060\n",
).replace(
    "    units: [tinh]\n",
    '    units: [tinh]\n    meeting_number: 2468135\n    pin: "012345"\n'
    "    upstream_sip_uri: sip:cp@bridge.chinhphu.vn\n",
)
Apply = Callable[[str], ApplyReport]


@pytest.fixture
def apply(session: Session, settings: Settings, tmp_path: Path) -> Apply:
    def run(text: str) -> ApplyReport:
        path = tmp_path / "plan.yaml"
        path.write_text(text, encoding="utf-8")
        report = service.apply_file(path, session=session, settings=settings, now=NOW)
        session.commit()
        return report

    return run


def test_load_reads_sip_uri_of_sites_and_dial_in_fields_of_series() -> None:
    schedule = loader.parse(WITH_SIP, "plan.yaml")
    assert schedule.units[0].sites[0].sip_uri == "sip:Tinh@rooms.example.vn"
    series = schedule.series[0]
    assert (series.meeting_number, series.pin) == ("2468135", "012345")
    assert series.upstream_sip_uri == "sip:cp@bridge.chinhphu.vn"
    ha_long = loader.load(SCHEDULES / "ha-long.yaml")
    addresses = [s.sip_uri for unit in ha_long.units for s in unit.sites if s.sip_uri]
    assert addresses == []  # the province's own sites; the city's are below
    found = [
        site.sip_uri
        for _loc, unit, _parent in loader.iter_units(ha_long)
        for site in unit.sites
        if site.sip_uri
    ]
    assert len(found) == 3 and all(a.startswith("sip:halong-") for a in found)


@pytest.mark.parametrize(
    ("old", "new", "needle", "reason"),
    [
        ('pin: "012345"', "pin: 12345", "pin:", 'give the PIN as quoted text, e.g. pin: "012345"'),
        ('pin: "012345"', 'pin: "12"', "pin:", "a PIN is 4 to 8 digits"),
        ("meeting_number: 2468135", "meeting_number: 12345", "meeting_number", "6 to 9 digits"),
        ("meeting_number: 2468135", 'meeting_number: "0246813"', "meeting_number", "not start"),
        ("sip_uri: SIP:Tinh", "sip_uri: http:Tinh", "sip_uri", "must start with sip: or sips:"),
        ("upstream_sip_uri: sip:cp@", "upstream_sip_uri: sip:", "upstream_sip_uri", "not a SIP"),
    ],
)
def test_load_bad_sip_fields_are_file_line_errors(
    old: str, new: str, needle: str, reason: str
) -> None:
    text = WITH_SIP.replace(old, new)
    error = error_of(text)
    assert error.line == line_of(text, needle)
    assert reason in str(error) and str(error).startswith(f"plan.yaml:{error.line}: ")


def test_apply_sets_addresses_and_dial_in_fields_then_changes_nothing(
    session: Session, apply: Apply
) -> None:
    apply(WITH_SIP)
    site = session.scalars(select(Site).where(Site.sip_uri.is_not(None))).one()
    assert site.sip_uri == "sip:Tinh@rooms.example.vn"
    series = session.scalars(select(Series)).one()
    assert (series.meeting_number, series.pin) == ("2468135", "012345")
    assert series.upstream_sip_uri == "sip:cp@bridge.chinhphu.vn"
    again = apply(WITH_SIP)
    assert again.counts()["updated"] == 0 and again.counts()["created"] == 0
    changed = apply(
        WITH_SIP.replace('pin: "012345"', 'pin: "5555"').replace("SIP:Tinh@", "SIP:TinhMoi@")
    )
    assert "updated series tinh/giao-ban: pin" in changed.lines()
    assert "updated site Hội trường UBND tỉnh Thử: sip_uri" in changed.lines()
    session.refresh(series)
    assert series.pin == "5555" and series.meeting_number == "2468135"


def test_apply_without_dial_in_fields_generates_them_once_and_keeps_them(
    session: Session, apply: Apply
) -> None:
    apply(VALID)
    series = session.scalars(select(Series)).one()
    number, pin = series.meeting_number, series.pin
    assert len(number) == 7 and len(pin) == 6
    assert apply(VALID).counts()["updated"] == 0
    session.refresh(series)
    assert (series.meeting_number, series.pin) == (number, pin)


def test_apply_a_taken_number_or_address_is_refused_on_its_line(
    session: Session, apply: Apply
) -> None:
    apply(WITH_SIP)
    other = (
        WITH_SIP.replace("key: tinh/giao-ban", "key: tinh/tap-huan")
        .replace("BYDAY=MO", "BYDAY=TU")
        .replace("tinh/hoi-truong\n        name", "tinh/phong-hop\n        name")
        .replace("name: Hội trường UBND tỉnh Thử", "name: Phòng họp tỉnh")
        .replace("chair: tinh/hoi-truong", "chair: tinh/phong-hop")
    )
    with pytest.raises(ScheduleError) as caught:
        apply(other)
    assert caught.value.line == line_of(other, "sip_uri")
    assert "already the address of site" in str(caught.value)
    other = other.replace("SIP:Tinh@", "SIP:PhongHop@")
    with pytest.raises(ScheduleError) as caught:
        apply(other)
    assert caught.value.line == line_of(other, "meeting_number")
    assert "2468135 is already the number of series" in str(caught.value)
