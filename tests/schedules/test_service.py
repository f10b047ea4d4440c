"""Applying schedule files to the database: idempotent, in place, all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from confbridge.auth.models import AuditEntry
from confbridge.meetings.models import Booking, Occurrence, Series
from confbridge.schedules import service
from confbridge.schedules.loader import ScheduleError
from confbridge.schedules.service import ApplyReport, Change
from confbridge.settings import Settings
from confbridge.sites import service as site_service
from confbridge.sites.models import Site, Unit, UnitKind

SCHEDULES = Path(__file__).resolve().parents[2] / "schedules"
HA_LONG = SCHEDULES / "ha-long.yaml"
QUANG_NINH = SCHEDULES / "quang-ninh.yaml"
NOW = datetime(2026, 3, 1, 5, 0, tzinfo=UTC)  # a Sunday: some briefings past, most to come
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
TABLES = (
    "units",
    "sites",
    "series",
    "series_sites",
    "series_units",
    "occurrences",
    "bookings",
    "terminals",
)

Apply = Callable[[Path], ApplyReport]


@pytest.fixture
def apply(session: Session, settings: Settings) -> Apply:
    """Apply a file and commit, as the CLI does."""

    def run(path: Path) -> ApplyReport:
        report = service.apply_file(path, session=session, settings=settings, now=NOW)
        session.commit()
        return report

    return run


def snapshot(session: Session) -> dict[str, list[tuple]]:
    """Every row of the schedule's tables, to show that nothing changed."""
    return {
        table: [tuple(r) for r in session.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))]
        for table in TABLES
    }


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def edited(tmp_path: Path, source: Path, *replacements: tuple[str, str]) -> Path:
    """A copy of `source` with each (old, new) replaced once below the header comment."""
    text = source.read_text(encoding="utf-8")
    header_end = text.index("\nunits:\n") + 1
    header, body = text[:header_end], text[header_end:]
    for old, new in replacements:
        assert old in body, old
        body = body.replace(old, new, 1)
    path = tmp_path / source.name
    path.write_text(header + body, encoding="utf-8")
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """The line of the `occurrence`-th line holding `needle`, comments left out."""
    lines = path.read_text(encoding="utf-8").splitlines()
    hits = [
        n
        for n, line in enumerate(lines, start=1)
        if needle in line and not line.lstrip().startswith("#")
    ]
    return hits[occurrence - 1]


def site_named(session: Session, name: str) -> Site:
    return session.scalars(select(Site).where(Site.name == name)).one()


def invited(session: Session, series: Series) -> set[int]:
    first = session.scalars(
        select(Occurrence).where(Occurrence.series_id == series.id, Occurrence.start_at > NOW)
    ).first()
    assert first is not None
    return set(session.scalars(select(Booking.site_id).where(Booking.occurrence_id == first.id)))


# --- the shipped files ----------------------------------------------------------------------


def test_apply_file_ha_long_books_24_sites_for_the_monday_briefing(
    session: Session, apply: Apply
) -> None:
    report = apply(HA_LONG)

    series = session.scalars(select(Series)).one()
    city_hall = site_named(session, "Hội trường UBND thành phố Hạ Long")
    wards = session.scalars(select(Unit).where(Unit.kind == UnitKind.ward.value)).all()
    assert count(session, Site) == 24
    assert len(wards) == 20
    assert report.summary() == "created 51, updated 0, unchanged 0"
    assert "created site Hội trường UBND phường Bãi Cháy" in report.lines()
    assert report.lines()[-1] == "created series ha-long/giao-ban-tuan"
    assert report.first_series_chair_site_id() == city_hall.id == series.chair_site_id
    assert (series.source_key, series.duration_min, series.skip_holidays) == (
        "ha-long/giao-ban-tuan",
        90,
        True,
    )
    assert len(invited(session, series)) == 24
    local_starts = {o.start_at.astimezone(HANOI) for o in series.occurrences}
    assert {(s.weekday(), s.hour, s.minute) for s in local_starts} == {(0, 7, 30)}


def test_apply_file_quang_ninh_imports_54_communes_with_halls_and_departments(
    session: Session, apply: Apply
) -> None:
    apply(QUANG_NINH)

    province = session.scalars(select(Unit).where(Unit.code == "22")).one()
    communes = session.scalars(
        select(Unit).where(
            Unit.parent_id == province.id,
            Unit.kind.in_(["commune", "ward", "special_zone"]),
        )
    ).all()
    departments = session.scalars(select(Unit).where(Unit.kind == "department")).all()
    hall = site_named(session, "Hội trường UBND tỉnh Quảng Ninh")
    series = session.scalars(select(Series)).one()
    assert len(communes) == 54
    assert all(
        len(c.sites) == 1 and c.sites[0].name.startswith("Hội trường UBND") for c in communes
    )
    assert hall.unit_id == province.id
    assert len(departments) >= 4 and all(len(d.sites) == 1 for d in departments)
    assert series.chair_site_id == hall.id
    assert len(invited(session, series)) == count(session, Site) == 54 + 1 + 1 + len(departments)


@pytest.mark.parametrize("order", [(HA_LONG, QUANG_NINH), (QUANG_NINH, HA_LONG)])
def test_apply_file_both_files_share_one_province(
    session: Session, apply: Apply, order: tuple[Path, Path]
) -> None:
    """City and province files on one database, in either order, meet in province 22."""
    for path in order:
        apply(path)
    # Applied first, the province briefing did not know the city's rooms: applying its file
    # again books them into the coming meetings.
    again = apply(QUANG_NINH)

    provinces = session.scalars(select(Unit).where(Unit.kind == "province")).all()
    briefings = {s.source_key: s for s in session.scalars(select(Series))}
    refreshed = "updated series quang-ninh/giao-ban-tuan: invited sites" in again.lines()
    assert refreshed == (order[0] == QUANG_NINH)
    assert [(p.code, p.name) for p in provinces] == [("22", "Quảng Ninh")]
    assert set(briefings) == {"ha-long/giao-ban-tuan", "quang-ninh/giao-ban-tuan"}
    # The province briefing invites everything under the province, Hạ Long city included.
    assert len(invited(session, briefings["quang-ninh/giao-ban-tuan"])) == count(session, Site)
    assert count(session, Site) == 24 + 64
    assert len(invited(session, briefings["ha-long/giao-ban-tuan"])) == 24


# --- idempotence and updates ------------------------------------------------------------------


@pytest.mark.parametrize("path", [HA_LONG, QUANG_NINH])
def test_apply_file_second_apply_is_unchanged_and_writes_nothing(
    session: Session, apply: Apply, path: Path
) -> None:
    first = apply(path)
    before = snapshot(session)
    audit_before = count(session, AuditEntry)

    second = apply(path)

    assert second.summary() == f"created 0, updated 0, unchanged {len(first.changes)}"
    assert all(line.startswith("unchanged ") for line in second.lines())
    assert snapshot(session) == before
    assert count(session, AuditEntry) == audit_before


def test_apply_file_edited_series_is_updated_in_place(
    session: Session, apply: Apply, tmp_path: Path
) -> None:
    """Monday 90 min becomes Tuesday 60 min from now on; past briefings keep their day."""
    apply(HA_LONG)
    series_id = session.scalars(select(Series.id)).one()
    copy = edited(
        tmp_path, HA_LONG, ("BYDAY=MO", "BYDAY=TU"), ("duration_min: 90", "duration_min: 60")
    )

    report = apply(copy)

    series = session.get(Series, series_id)
    assert series is not None
    session.refresh(series)
    assert "updated series ha-long/giao-ban-tuan: rrule, duration_min" in report.lines()
    assert report.summary() == "created 0, updated 1, unchanged 50"
    assert session.scalars(select(Series.id)).all() == [series_id]
    past = [o for o in series.occurrences if o.start_at < NOW]
    coming = [o for o in series.occurrences if o.start_at >= NOW]
    assert past and all(o.start_at.astimezone(HANOI).weekday() == 0 for o in past)
    assert coming and all(o.start_at.astimezone(HANOI).weekday() == 1 for o in coming)
    assert all(o.end_at - o.start_at == timedelta(minutes=60) for o in coming)


def test_apply_file_title_change_updates_only_the_title(
    session: Session, apply: Apply, tmp_path: Path
) -> None:
    apply(HA_LONG)
    occurrences_before = snapshot(session)["occurrences"]
    copy = edited(tmp_path, HA_LONG, ("title: Giao ban tuần", "title: Họp giao ban tuần"))

    report = apply(copy)

    assert "updated series ha-long/giao-ban-tuan: title" in report.lines()
    assert session.scalars(select(Series.title)).one() == "Họp giao ban tuần UBND thành phố Hạ Long"
    assert snapshot(session)["occurrences"] == occurrences_before


def test_apply_file_renamed_site_is_created_and_booked(
    session: Session, apply: Apply, tmp_path: Path
) -> None:
    apply(HA_LONG)
    copy = edited(
        tmp_path,
        HA_LONG,
        ("name: Hội trường UBND phường Tuần Châu", "name: Hội trường UBND phường Tuần Châu (mới)"),
    )

    report = apply(copy)

    new_site = site_named(session, "Hội trường UBND phường Tuần Châu (mới)")
    series = session.scalars(select(Series)).one()
    assert report.summary() == "created 1, updated 1, unchanged 49"
    assert "created site Hội trường UBND phường Tuần Châu (mới)" in report.lines()
    # The briefing invites the whole city, so its coming meetings now book the new room.
    assert "updated series ha-long/giao-ban-tuan: invited sites" in report.lines()
    assert count(session, Site) == 25  # the old room stays: it has a booking history
    assert new_site.id in invited(session, series)


def test_apply_file_added_ward_is_created(session: Session, apply: Apply, tmp_path: Path) -> None:
    apply(HA_LONG)
    ward = (
        "          - key: ha-long/hoanh-bo\n"
        "            name: Phường Hoành Bồ\n"
        "            kind: ward\n"
        "            sites:\n"
        "              - key: ha-long/hoanh-bo/hoi-truong\n"
        "                name: Hội trường UBND phường Hoành Bồ\n"
    )
    copy = edited(tmp_path, HA_LONG, ("\nseries:\n", f"{ward}\nseries:\n"))

    report = apply(copy)

    assert report.lines()[-3:] == [
        "created unit Phường Hoành Bồ",
        "created site Hội trường UBND phường Hoành Bồ",
        "updated series ha-long/giao-ban-tuan: invited sites",
    ]
    assert count(session, Site) == 25
    assert len(invited(session, session.scalars(select(Series)).one())) == 25
    assert apply(copy).summary() == "created 0, updated 0, unchanged 53"


def test_apply_file_unit_found_by_code_is_renamed(
    session: Session, apply: Apply, tmp_path: Path
) -> None:
    apply(HA_LONG)
    copy = edited(tmp_path, HA_LONG, ("    name: Quảng Ninh\n", "    name: Tỉnh Quảng Ninh\n"))

    report = apply(copy)

    assert report.lines()[0] == "updated unit Tỉnh Quảng Ninh: name"
    assert session.scalars(select(Unit.name).where(Unit.code == "22")).one() == "Tỉnh Quảng Ninh"


def test_apply_file_records_changes_in_the_audit_log(session: Session, apply: Apply) -> None:
    apply(HA_LONG)

    entries = session.scalars(select(AuditEntry)).all()
    assert len(entries) == 51
    assert {e.actor for e in entries} == {"schedule:ha-long.yaml"}
    assert sum(e.action == "series_created" for e in entries) == 1


def test_apply_file_series_may_invite_a_unit_by_code(
    session: Session, apply: Apply, tmp_path: Path
) -> None:
    apply(HA_LONG)
    path = tmp_path / "tap-huan.yaml"
    path.write_text(
        "units:\n"
        "  - key: so\n    name: Sở Thông tin và Truyền thông\n    kind: province\n"
        "    sites:\n      - {key: so/phong-hop, name: Phòng họp Sở}\n"
        "series:\n"
        "  - key: tap-huan\n    title: Tập huấn\n    kind: tap_huan\n"
        "    rrule: FREQ=MONTHLY;BYMONTHDAY=15;COUNT=3\n    dtstart: 2026-04-15T14:00\n"
        '    duration_min: 120\n    chair: so/phong-hop\n    unit_codes: ["22"]\n',
        encoding="utf-8",
    )

    report = apply(path)

    series = session.scalars(select(Series).where(Series.source_key == "tap-huan")).one()
    assert report.lines()[-1] == "created series tap-huan"
    assert len(series.occurrences) == 3
    assert len(invited(session, series)) == 25


def test_apply_import_adopts_communes_entered_by_hand(session: Session, apply: Apply) -> None:
    province = site_service.create_unit(session=session, name="Quảng Ninh", kind=UnitKind.province)
    ward = site_service.create_unit(
        session=session, name="Phường Bãi Cháy", kind=UnitKind.ward, parent_id=province.id
    )
    session.commit()

    report = apply(QUANG_NINH)

    assert report.lines()[0] == "updated unit Quảng Ninh: code"
    assert "updated unit Phường Bãi Cháy: code" in report.lines()
    assert session.scalars(select(Unit.code).where(Unit.id == ward.id)).one().startswith("22.")
    assert count(session, Unit) == 1 + 54 + 9


# --- errors: file and line, and nothing changed ---------------------------------------------


# case: (text replaced, its replacement, which use of the replacement is reported, reason)
BROKEN = {
    "syntax": ("title: Giao ban tuần", "title: Giao ban: tuần", 1, "invalid YAML"),
    "type": ("duration_min: 90", "duration_min: ninety", 1, "duration_min: Input should be"),
    "unknown key": ("skip_holidays: true", "skip_holiday: true", 1, "unknown key 'skip_holiday'"),
    "unknown reference": (
        "chair: ha-long/hoi-truong",
        "chair: ha-long/hoi-truongg",
        1,
        "unknown site key 'ha-long/hoi-truongg'",
    ),
    "duplicated key": (
        "key: ha-long/yet-kieu/hoi-truong\n",
        "key: ha-long/tuan-chau/hoi-truong\n",
        2,
        "duplicate key 'ha-long/tuan-chau/hoi-truong'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_apply_file_broken_copy_fails_at_its_line_and_changes_nothing(
    session: Session, apply: Apply, settings: Settings, tmp_path: Path, case: str
) -> None:
    apply(HA_LONG)
    old, new, use, reason = BROKEN[case]
    copy = edited(tmp_path, HA_LONG, (old, new))
    before = snapshot(session)

    with pytest.raises(ScheduleError) as caught:
        service.apply_file(copy, session=session, settings=settings, now=NOW)

    assert caught.value.path == str(copy)
    assert caught.value.line == line_of(copy, new.strip(), use)
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{copy}:{caught.value.line}: ")
    assert snapshot(session) == before


def test_apply_file_conflicting_series_names_the_clash_and_rolls_back(
    session: Session, apply: Apply, settings: Settings, tmp_path: Path
) -> None:
    """A training booked over the Monday briefing is refused, with all else in the file."""
    apply(HA_LONG)
    before = snapshot(session)
    training = (
        "  - key: ha-long/tap-huan\n"
        "    title: Tập huấn chuyển đổi số\n"
        "    kind: tap_huan\n"
        "    rrule: FREQ=WEEKLY;BYDAY=MO;COUNT=4\n"
        "    dtstart: 2026-03-09T08:00\n"
        "    duration_min: 60\n"
        "    chair: ha-long/bai-chay/hoi-truong\n"
    )
    # A new ward before the clash shows that everything applied before it is undone too.
    copy = edited(
        tmp_path,
        HA_LONG,
        ("Phường Yết Kiêu\n", "Phường Yết Kiêu Mới\n"),
        ("units: [ha-long]\n", f"units: [ha-long]\n{training}"),
    )

    with pytest.raises(ScheduleError) as caught:
        service.apply_file(copy, session=session, settings=settings, now=NOW)

    assert caught.value.line == line_of(copy, "key: ha-long/tap-huan")
    # Four Mondays, each clashing for the chair's room only.
    assert caught.value.reason == (
        "4 booking(s) would overlap meetings already booked; first: "
        "Hội trường UBND phường Bãi Cháy is in 'Giao ban tuần UBND thành phố Hạ Long' "
        "at 2026-03-09 07:30 (Asia/Ho_Chi_Minh)"
    )
    assert snapshot(session) == before
    session.commit()  # the session is still usable after the refusal
    assert apply(HA_LONG).summary() == "created 0, updated 0, unchanged 51"


def test_apply_file_province_briefing_at_the_city_time_conflicts(
    session: Session, apply: Apply, settings: Settings, tmp_path: Path
) -> None:
    """Moving the province briefing onto the city's Monday morning is refused."""
    apply(HA_LONG)
    copy = edited(tmp_path, QUANG_NINH, ("dtstart: 2026-01-05T14:00", "dtstart: 2026-01-05T07:00"))
    before = snapshot(session)

    with pytest.raises(ScheduleError) as caught:
        service.apply_file(copy, session=session, settings=settings, now=NOW)

    assert caught.value.line == line_of(copy, "key: quang-ninh/giao-ban-tuan")
    assert "'Giao ban tuần UBND thành phố Hạ Long' at 2026-01-05 07:30" in caught.value.reason
    assert snapshot(session) == before


def test_apply_file_existing_unit_of_another_kind_is_refused(
    session: Session, settings: Settings, tmp_path: Path
) -> None:
    site_service.create_unit(session=session, name="Quảng Ninh", kind=UnitKind.city, code="22")
    session.commit()
    before = snapshot(session)

    with pytest.raises(ScheduleError) as caught:
        service.apply_file(HA_LONG, session=session, settings=settings, now=NOW)

    assert caught.value.line == line_of(HA_LONG, "kind: province")
    assert caught.value.reason == "'Quảng Ninh' already exists as a city"
    assert snapshot(session) == before


def test_apply_file_unknown_unit_code_points_at_it(
    session: Session, settings: Settings, tmp_path: Path
) -> None:
    copy = edited(
        tmp_path, HA_LONG, ("units: [ha-long]", 'units: [ha-long]\n    unit_codes: ["99"]')
    )

    with pytest.raises(ScheduleError) as caught:
        service.apply_file(copy, session=session, settings=settings, now=NOW)

    assert caught.value.line == line_of(copy, "unit_codes:")
    assert caught.value.reason == "no unit has code '99'"
    assert count(session, Unit) == 0


def test_apply_file_too_long_meeting_is_refused_at_its_duration(
    session: Session, settings: Settings, tmp_path: Path
) -> None:
    settings.meetings.max_duration_min = 60
    with pytest.raises(ScheduleError) as caught:
        service.apply_file(HA_LONG, session=session, settings=settings, now=NOW)

    assert caught.value.line == line_of(HA_LONG, "duration_min:")
    assert caught.value.reason == "duration_min: at most 60 minutes"
    assert count(session, Site) == 0


# --- the report ---------------------------------------------------------------------------


def test_apply_report_lines_summary_and_first_chair() -> None:
    report = ApplyReport(Path("x.yaml"))
    report.changes += [
        Change("created", "unit", "Phường Bãi Cháy"),
        Change("unchanged", "site", "Hội trường UBND phường Bãi Cháy"),
        Change("updated", "series", "ha-long/giao-ban-tuan", ("rrule", "duration_min")),
    ]
    report.chair_site_ids += [7, 9]

    assert report.lines() == [
        "created unit Phường Bãi Cháy",
        "unchanged site Hội trường UBND phường Bãi Cháy",
        "updated series ha-long/giao-ban-tuan: rrule, duration_min",
    ]
    assert report.summary() == "created 1, updated 1, unchanged 1"
    assert report.first_series_chair_site_id() == 7
    assert ApplyReport(Path("x.yaml")).first_series_chair_site_id() is None
