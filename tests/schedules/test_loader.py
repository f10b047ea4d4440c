"""Reading schedule files: models, line numbers, and one clear error per bad file."""

from __future__ import annotations

import textwrap
import unicodedata
from datetime import date, datetime
from pathlib import Path

import pytest

from confbridge.errors import DomainError
from confbridge.meetings.models import MeetingKind
from confbridge.schedules import loader
from confbridge.schedules.loader import ScheduleError
from confbridge.sites.models import UnitKind

SCHEDULES = Path(__file__).resolve().parents[2] / "schedules"

# A small valid file; tests break one thing in it at a time.
VALID = """\
units:
  - key: tinh
    name: Tỉnh Thử
    kind: province
    sites:
      - key: tinh/hoi-truong
        name: Hội trường UBND tỉnh Thử
    children:
      - key: phuong-mot
        name: Phường Một
        kind: ward
        sites:
          - key: phuong-mot/hoi-truong
            name: Hội trường UBND phường Một
series:
  - key: tinh/giao-ban
    title: Giao ban tuần
    kind: giao_ban
    rrule: FREQ=WEEKLY;BYDAY=MO
    dtstart: 2026-01-05T07:30
    duration_min: 90
    chair: tinh/hoi-truong
    units: [tinh]
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th line containing `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def error_of(text: str, path: str = "plan.yaml") -> ScheduleError:
    with pytest.raises(ScheduleError) as caught:
        loader.parse(text, path)
    return caught.value


def test_parse_valid_file_gives_models_and_lines() -> None:
    schedule = loader.parse(VALID, "plan.yaml")

    province = schedule.units[0]
    series = schedule.series[0]
    assert (province.kind, province.children[0].kind) == (UnitKind.province, UnitKind.ward)
    assert series.kind == MeetingKind.giao_ban
    assert series.dtstart == datetime(2026, 1, 5, 7, 30)
    assert series.skip_holidays is True
    assert schedule.line_of(("series", 0, "rrule")) == line_of(VALID, "rrule:")
    assert schedule.line_of(("units", 0, "children", 0)) == line_of(VALID, "key: phuong-mot")


def test_line_of_unspelled_key_falls_back_to_its_entry() -> None:
    schedule = loader.parse(VALID, "plan.yaml")

    assert schedule.line_of(("series", 0, "tz")) == line_of(VALID, "key: tinh/giao-ban")


def test_iter_units_lists_parents_before_children() -> None:
    schedule = loader.parse(VALID, "plan.yaml")

    found = [(loc, entry.key, parent) for loc, entry, parent in loader.iter_units(schedule)]

    assert found == [
        (("units", 0), "tinh", None),
        (("units", 0, "children", 0), "phuong-mot", ("units", 0)),
    ]


def test_load_ha_long_declares_24_sites_and_the_monday_briefing() -> None:
    schedule = loader.load(SCHEDULES / "ha-long.yaml")

    units = [entry for _, entry, _ in loader.iter_units(schedule)]
    sites = [site.name for unit in units for site in unit.sites]
    wards = [unit for unit in units if unit.kind == UnitKind.ward]
    briefing = schedule.series[0]
    assert len(sites) == 24
    assert len(wards) == 20
    assert "Hội trường UBND phường Bãi Cháy" in sites
    assert units[0].code == "22"
    assert (briefing.rrule, briefing.dtstart) == (
        "FREQ=WEEKLY;BYDAY=MO",
        datetime(2026, 1, 5, 7, 30),
    )
    assert (briefing.kind, briefing.duration_min, briefing.units) == (
        MeetingKind.giao_ban,
        90,
        ["ha-long"],
    )


def test_load_quang_ninh_imports_divisions_and_meets_on_monday_afternoon() -> None:
    schedule = loader.load(SCHEDULES / "quang-ninh.yaml")

    province = schedule.units[0]
    departments = [c for c in province.children if c.kind == UnitKind.department]
    briefing = schedule.series[0]
    assert province.import_divisions is True
    assert loader.division_code(province) == "22"
    assert len(departments) >= 4
    assert all(len(d.sites) == 1 for d in departments)
    assert briefing.dtstart == datetime(2026, 1, 5, 14, 0)
    assert briefing.units == ["quang-ninh"]


def test_schedule_error_is_one_line_with_file_and_line() -> None:
    error = ScheduleError("plan.yaml", 7, "first\n  second")

    assert str(error) == "plan.yaml:7: first second"
    assert isinstance(error, DomainError)
    assert str(ScheduleError("plan.yaml", None, "cannot read")) == "plan.yaml: cannot read"


def test_parse_yaml_syntax_error_names_file_and_line() -> None:
    text = VALID.replace("    kind: giao_ban", "    kind: [giao_ban")

    error = error_of(text)

    assert error.path == "plan.yaml"
    assert error.reason.startswith("invalid YAML:")
    assert f"line {line_of(text, 'kind: [giao_ban')}" in error.reason
    assert str(error).startswith(f"plan.yaml:{error.line}: invalid YAML")


def test_parse_bad_indentation_points_at_its_line() -> None:
    text = VALID.replace("    title: Giao ban tuần", "   title: Giao ban tuần")

    error = error_of(text)

    assert error.line == line_of(text, "title: Giao ban tuần")
    assert "invalid YAML" in error.reason


def test_parse_wrong_type_points_at_the_value() -> None:
    text = VALID.replace("duration_min: 90", "duration_min: an hour")

    error = error_of(text)

    assert error.line == line_of(text, "duration_min:")
    assert error.reason.startswith("duration_min: Input should be a valid integer")


def test_parse_unknown_key_names_the_allowed_ones() -> None:
    text = VALID.replace("    kind: ward\n", "    kind: ward\n        colour: blue\n")

    error = error_of(text)

    assert error.line == line_of(text, "colour:")
    assert error.reason.startswith("unknown key 'colour' (allowed here: key, name, kind, code")


def test_parse_unknown_top_level_key_is_refused() -> None:
    text = VALID + "meetings: []\n"

    error = error_of(text)

    assert (error.line, error.reason) == (
        line_of(text, "meetings:"),
        "unknown key 'meetings' (allowed here: units, series)",
    )


def test_parse_missing_key_points_at_its_entry() -> None:
    text = VALID.replace("    duration_min: 90\n", "")

    error = error_of(text)

    assert error.line == line_of(text, "key: tinh/giao-ban")
    assert error.reason == "missing required key 'duration_min'"


def test_parse_unknown_enum_value_lists_the_choices() -> None:
    text = VALID.replace("kind: giao_ban", "kind: briefing")

    error = error_of(text)

    assert error.line == line_of(text, "kind: briefing")
    assert "giao_ban" in error.reason and "tap_huan" in error.reason


def test_parse_reports_first_problem_in_file_order_with_a_count() -> None:
    text = VALID.replace("kind: ward", "kind: wardd").replace("duration_min: 90", "duration_min: x")

    error = error_of(text)

    assert error.line == line_of(text, "kind: wardd")
    assert error.reason.endswith("(and 1 more problem)")


def test_parse_unquoted_code_asks_for_quotes() -> None:
    text = VALID.replace("    kind: province\n", "    kind: province\n    code: 22\n")

    error = error_of(text)

    assert error.line == line_of(text, "code: 22")
    assert error.reason == 'code: give the code as quoted text, e.g. code: "22"'


def test_parse_unknown_site_reference_points_at_the_reference() -> None:
    text = VALID.replace("chair: tinh/hoi-truong", "chair: tinh/hoi-truongg")

    error = error_of(text)

    assert error.line == line_of(text, "chair:")
    assert error.reason == "unknown site key 'tinh/hoi-truongg' (did you mean 'tinh/hoi-truong'?)"


def test_parse_unit_key_given_as_site_says_so() -> None:
    text = VALID.replace("    units: [tinh]\n", "    sites:\n      - phuong-mot\n")

    error = error_of(text)

    assert error.line == line_of(text, "- phuong-mot")
    assert "that is a unit" in error.reason


def test_parse_unknown_unit_reference_points_at_the_list_item() -> None:
    text = VALID.replace("    units: [tinh]\n", "    units:\n      - tinh\n      - huyen\n")

    error = error_of(text)

    assert (error.line, error.reason) == (line_of(text, "- huyen"), "unknown unit key 'huyen'")


def test_parse_duplicated_key_points_at_the_second_use() -> None:
    text = VALID.replace("key: phuong-mot/hoi-truong", "key: tinh/hoi-truong")

    error = error_of(text)

    assert error.line == line_of(text, "key: tinh/hoi-truong", occurrence=2)
    first = line_of(text, "key: tinh/hoi-truong")
    assert error.reason == f"duplicate key 'tinh/hoi-truong' (first at line {first})"


def test_parse_duplicated_mapping_key_is_refused() -> None:
    text = VALID.replace("    duration_min: 90\n", "    duration_min: 90\n    duration_min: 60\n")

    error = error_of(text)

    assert error.line == line_of(text, "duration_min: 60")
    assert error.reason == f"duplicate key 'duration_min' (first at line {error.line - 1})"


def test_parse_bad_key_shape_is_refused() -> None:
    text = VALID.replace("key: phuong-mot\n", "key: phường một\n")

    error = error_of(text)

    assert error.line == line_of(text, "key: phường một")
    assert error.reason.startswith("key: a key is letters, digits")


def test_parse_ward_at_the_top_is_refused_at_its_kind() -> None:
    text = "units:\n  - key: p\n    name: Phường Lẻ\n    kind: ward\n"

    error = error_of(text)

    assert error.line == 4
    assert error.reason.startswith("a ward cannot sit at the top")


def test_parse_bad_rrule_points_at_the_rule() -> None:
    text = VALID.replace("FREQ=WEEKLY;BYDAY=MO", "FREQ=HOURLY")

    error = error_of(text)

    assert error.line == line_of(text, "rrule:")
    assert error.reason.startswith("rrule: FREQ must be one of")


def test_parse_unknown_zone_points_at_tz() -> None:
    text = VALID.replace("    duration_min: 90\n", "    duration_min: 90\n    tz: Asia/Ha_Long\n")

    error = error_of(text)

    assert error.line == line_of(text, "tz:")
    assert "unknown IANA time zone 'Asia/Ha_Long'" in error.reason


def test_parse_exdates_accept_dates_and_local_times() -> None:
    text = VALID + "    exdates: [2026-02-16, '2026-03-02T07:30']\n"

    schedule = loader.parse(text, "plan.yaml")

    assert schedule.series[0].exdates == [date(2026, 2, 16), datetime(2026, 3, 2, 7, 30)]


def test_parse_impossible_date_points_at_it() -> None:
    text = VALID + "    exdates:\n      - 2026-02-30\n"

    error = error_of(text)

    assert error.line == line_of(text, "- 2026-02-30")
    assert error.reason == "'2026-02-30' is not a valid date or date-time"


def test_parse_empty_file_is_refused() -> None:
    error = error_of("# nothing yet\n")

    assert (error.line, error.reason) == (
        1,
        "the file is empty; expected 'units:' and/or 'series:'",
    )


def test_parse_list_at_top_is_refused() -> None:
    error = error_of("- units\n")

    assert error.line == 1
    assert error.reason.startswith("the file must be a mapping")


def test_parse_recursive_alias_is_refused() -> None:
    error = error_of("units: &loop\n  - *loop\n")

    assert error.reason == "an alias refers to a value that contains it"


def test_parse_alias_bomb_is_refused() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    text = "\n".join(levels) + "\n"

    error = error_of(text)

    assert error.reason.startswith("the file expands to too many values")


def test_parse_merge_key_is_refused() -> None:
    text = "base: &b {kind: ward}\nunits:\n  - <<: *b\n    key: p\n"

    error = error_of(text)

    assert error.line == 3
    assert error.reason.startswith("merge keys ('<<') are not supported")


def test_parse_python_tags_are_refused() -> None:
    on_list = error_of("units: !!python/object/apply:os.system ['true']\n")
    on_text = error_of("units: !!python/name:os.system x\n")

    assert on_list.reason.startswith("YAML tags such as 'tag:yaml.org,2002:python/object/apply")
    assert on_text.reason.startswith("invalid YAML: could not determine a constructor")


def test_parse_import_divisions_needs_a_known_province() -> None:
    text = (
        "units:\n  - key: p\n    name: Tỉnh Không Có\n    kind: province\n"
        "    import_divisions: true\n"
    )

    error = error_of(text)

    assert error.line == 3
    assert error.reason.startswith("no province named 'Tỉnh Không Có'")


def test_parse_import_divisions_code_must_match_the_data() -> None:
    text = (
        "units:\n  - key: p\n    name: Quảng Ninh\n    kind: province\n"
        '    code: "23"\n    import_divisions: true\n'
    )

    error = error_of(text)

    assert error.line == 5
    assert error.reason == "Quảng Ninh has code '22' in the divisions data, not '23'"


def test_parse_import_divisions_only_for_a_province() -> None:
    text = (
        "units:\n  - key: c\n    name: Thành phố Thử\n    kind: city\n    import_divisions: true\n"
    )

    error = error_of(text)

    assert (error.line, error.reason) == (5, "only a province can import its communes, not a city")


def test_load_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ScheduleError) as caught:
        loader.load(path)

    assert str(caught.value) == f"{path}: cannot read the file: No such file or directory"


def test_load_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("units: []\n# Hạ Long\n".encode("utf-16"))

    with pytest.raises(ScheduleError) as caught:
        loader.load(path)

    assert caught.value.reason.startswith("not UTF-8 text")


def test_load_reads_the_file_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(textwrap.dedent(VALID), encoding="utf-8")

    schedule = loader.load(path)

    assert [s.key for s in schedule.series] == ["tinh/giao-ban"]


def test_parse_start_without_time_is_refused() -> None:
    text = VALID.replace("dtstart: 2026-01-05T07:30", "dtstart: 2026-01-05")

    error = error_of(text)

    assert error.line == line_of(text, "dtstart:")
    assert error.reason == "dtstart: give the local start time, e.g. 2026-01-05T07:30"


def test_parse_start_in_a_far_year_is_refused() -> None:
    text = VALID.replace("dtstart: 2026-01-05T07:30", "dtstart: 0001-01-01T07:30")

    error = error_of(text)

    assert error.reason == "dtstart: the year must be between 2000 and 2199"


def test_parse_numbers_as_exdates_are_refused() -> None:
    text = VALID + "    exdates: [20260216]\n"

    error = error_of(text)

    assert error.line == line_of(text, "exdates:")
    assert error.reason.startswith("exdates: give dates (2026-02-16)")


def test_parse_decomposed_vietnamese_names_are_composed() -> None:
    decomposed = unicodedata.normalize("NFD", "Phường Một")
    text = VALID.replace("name: Phường Một", f"name: {decomposed}")

    schedule = loader.parse(text, "plan.yaml")

    assert schedule.units[0].children[0].name == unicodedata.normalize("NFC", "Phường Một")


def test_parse_two_sites_with_one_name_in_a_unit_are_refused() -> None:
    text = VALID.replace(
        "        name: Hội trường UBND tỉnh Thử\n",
        "        name: Hội trường UBND tỉnh Thử\n"
        "      - key: tinh/hoi-truong-2\n        name: Hội trường UBND tỉnh Thử\n",
    )

    error = error_of(text)

    first = line_of(text, "name: Hội trường UBND tỉnh Thử")
    assert error.line == line_of(text, "name: Hội trường UBND tỉnh Thử", occurrence=2)
    assert error.reason == f"duplicate site name 'Hội trường UBND tỉnh Thử' (first at line {first})"


def test_parse_one_code_on_two_units_is_refused() -> None:
    text = VALID.replace("    kind: province\n", '    kind: province\n    code: "99"\n').replace(
        "        kind: ward\n", '        kind: ward\n        code: "99"\n'
    )

    error = error_of(text)

    assert error.line == line_of(text, 'code: "99"', occurrence=2)
    assert error.reason.startswith("duplicate unit code '99'")
