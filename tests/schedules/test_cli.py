"""`confbridge schedules apply`: the real command on a temporary SQLite database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text
from typer.testing import CliRunner, Result

from confbridge.cli import app

SCHEDULES = Path(__file__).resolve().parents[2] / "schedules"
HA_LONG = SCHEDULES / "ha-long.yaml"


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["schedules", "apply", *args])


def counts(path: Path) -> dict[str, int]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            return {
                table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("units", "sites", "series", "occurrences", "bookings")
            }
    finally:
        engine.dispose()


def test_schedules_apply_prints_one_line_per_object_and_a_summary(database_file: Path) -> None:
    result = run(str(HA_LONG))

    lines = result.stdout.splitlines()
    assert result.exit_code == 0, result.stderr
    assert lines[0] == "created unit Quảng Ninh"
    assert "created site Hội trường UBND phường Bãi Cháy" in lines
    assert lines[-2:] == [
        "created series ha-long/giao-ban-tuan",
        "created 51, updated 0, unchanged 0",
    ]
    assert counts(database_file)["sites"] == 24


def test_schedules_apply_twice_reports_everything_unchanged(database_file: Path) -> None:
    run(str(HA_LONG))
    before = counts(database_file)

    result = run(str(HA_LONG))

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "created 0, updated 0, unchanged 51"
    assert "unchanged site Hội trường UBND thành phố Hạ Long" in result.stdout
    assert counts(database_file) == before


def test_schedules_apply_dry_run_changes_nothing(database_file: Path) -> None:
    result = run(str(HA_LONG), "--dry-run")

    assert result.exit_code == 0, result.stderr
    assert "created series ha-long/giao-ban-tuan" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "dry run, nothing changed: created 51, updated 0, unchanged 0"
    )
    assert counts(database_file) == dict.fromkeys(
        ("units", "sites", "series", "occurrences", "bookings"), 0
    )
    assert run(str(HA_LONG)).stdout.splitlines()[-1] == "created 51, updated 0, unchanged 0"


def test_schedules_apply_edited_file_reports_the_update(
    database_file: Path, tmp_path: Path
) -> None:
    run(str(HA_LONG))
    copy = tmp_path / "ha-long.yaml"
    copy.write_text(
        HA_LONG.read_text(encoding="utf-8").replace("duration_min: 90", "duration_min: 75"),
        encoding="utf-8",
    )

    result = run(str(copy))

    assert result.exit_code == 0, result.stderr
    assert "updated series ha-long/giao-ban-tuan: duration_min" in result.stdout
    assert result.stdout.splitlines()[-1] == "created 0, updated 1, unchanged 50"


def test_schedules_apply_invalid_file_exits_with_file_line_and_reason(
    database_file: Path, tmp_path: Path
) -> None:
    run(str(HA_LONG))
    before = counts(database_file)
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        HA_LONG.read_text(encoding="utf-8").replace(
            "  - key: ha-long/giao-ban-tuan\n", "  - key: ha-long/giao-ban-tuan\n    room: 1\n"
        ),
        encoding="utf-8",
    )
    room_line = broken.read_text(encoding="utf-8").splitlines().index("    room: 1") + 1

    result = run(str(broken))

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {broken}:{room_line}: unknown key 'room'")
    assert len(result.stderr.splitlines()) == 1
    assert counts(database_file) == before


def test_schedules_apply_conflict_exits_non_zero_and_rolls_back(
    database_file: Path, tmp_path: Path
) -> None:
    clash = tmp_path / "clash.yaml"
    clash.write_text(
        HA_LONG.read_text(encoding="utf-8")
        + "  - key: ha-long/so-ket\n    title: Sơ kết quý\n    kind: so_ket\n"
        "    rrule: FREQ=WEEKLY;BYDAY=MO;COUNT=2\n    dtstart: 2026-01-12T08:00\n"
        "    duration_min: 60\n    chair: ha-long/hoi-truong\n",
        encoding="utf-8",
    )
    series_line = clash.read_text(encoding="utf-8").splitlines().index("  - key: ha-long/so-ket")

    result = run(str(clash))

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {clash}:{series_line + 1}: 2 booking(s) would overlap")
    assert "Hội trường UBND thành phố Hạ Long is in 'Giao ban tuần" in result.stderr
    assert counts(database_file)["units"] == 0


def test_schedules_apply_missing_file_is_one_clean_line(
    database_file: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "none.yaml"

    result = run(str(missing))

    assert result.exit_code == 1
    assert result.stderr == f"error: {missing}: cannot read the file: No such file or directory\n"
