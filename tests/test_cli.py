"""The `confbridge` command: migrations, province import, users, configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner, Result

from confbridge import migrate
from confbridge.cli import app
from tests.support.servers import free_port


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def count(path: Path, table: str) -> int:
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        value = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    engine.dispose()
    return value


def test_db_upgrade_then_current(database_file: Path) -> None:
    assert run("db", "current").exit_code == 1  # empty database: behind the code
    upgraded = run("db", "upgrade")
    head = migrate.head_revision()
    assert upgraded.exit_code == 0 and f"revision {head}" in upgraded.stdout
    current = run("db", "current")
    assert current.exit_code == 0 and f"database: {head}" in current.stdout


def test_sites_import_province_is_idempotent(database_file: Path) -> None:
    first = run("sites", "import-province", "Quảng Ninh")
    assert first.exit_code == 0, first.stderr
    assert "55 unit(s) and 55 site(s) created" in first.stdout
    second = run("sites", "import-province", "Quảng Ninh")
    assert "0 unit(s) and 0 site(s) created, 110 unchanged" in second.stdout
    assert count(database_file, "sites") == 55


def test_sites_import_unknown_province_fails_cleanly(database_file: Path) -> None:
    result = run("sites", "import-province", "Atlantis")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no province named 'Atlantis'")
    assert "Traceback" not in result.output


def test_users_create(database_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_NEW_PASSWORD", "mat-khau-van-phong")
    created = run("users", "create", "vanphong", "--role", "secretariat")
    assert created.exit_code == 0, created.stderr
    again = run("users", "create", "vanphong", "--role", "secretariat")
    assert again.exit_code == 1 and "already exists" in again.stderr
    bad_role = run("users", "create", "x", "--role", "boss")
    assert bad_role.exit_code == 1 and "unknown role" in bad_role.stderr
    monkeypatch.setenv("CONFBRIDGE_NEW_PASSWORD", "short")
    assert run("users", "create", "y", "--role", "viewer").exit_code == 1
    assert count(database_file, "users") == 1


def test_users_create_for_a_unit(database_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_NEW_PASSWORD", "mat-khau-van-phong")
    assert run("users", "create", "goc", "--role", "admin").exit_code == 0
    engine = create_engine(f"sqlite:///{database_file}")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO units (id, name, kind, code, created_at)"
                " VALUES (7, 'Tỉnh Thử', 'province', 'T7', '2026-01-01')"
            )
        )
    created = run("users", "create", "thuky", "--role", "secretariat", "--unit", "T7")
    assert created.exit_code == 0, created.stderr
    assert "unit 7 and below" in created.stdout
    by_id = run("users", "create", "xem", "--role", "viewer", "--unit", "7")
    assert by_id.exit_code == 0, by_id.stderr
    missing = run("users", "create", "khac", "--role", "viewer", "--unit", "T9")
    assert missing.exit_code == 1 and "no unit with code or id 'T9'" in missing.stderr
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT u.username, m.unit_id, m.role FROM users u"
                " JOIN memberships m ON m.user_id = u.id ORDER BY u.id"
            )
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("goc", None, "admin"),
        ("thuky", 7, "secretariat"),
        ("xem", 7, "viewer"),
    ]


def test_users_disable_set_role_reset_password(
    database_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFBRIDGE_NEW_PASSWORD", "mat-khau-van-phong")
    assert run("users", "create", "vanphong", "--role", "viewer").exit_code == 0
    monkeypatch.delenv("CONFBRIDGE_NEW_PASSWORD")
    role = run("users", "set-role", "vanphong", "secretariat")
    assert role.exit_code == 0 and "now has role secretariat" in role.stdout
    assert run("users", "set-role", "vanphong", "boss").exit_code == 1
    disabled = run("users", "disable", "vanphong")
    assert disabled.exit_code == 0 and "disabled" in disabled.stdout
    reset = run("users", "reset-password", "vanphong")
    assert reset.exit_code == 0 and "one-time password (shown once): " in reset.stdout
    assert run("users", "enable", "vanphong").exit_code == 0
    missing = run("users", "disable", "nobody")
    assert missing.exit_code == 1 and missing.stderr == "error: no user named 'nobody'\n"
    monkeypatch.setenv("CONFBRIDGE_NEW_PASSWORD", "vanphong")
    weak = run("users", "reset-password", "vanphong")
    assert weak.exit_code == 1 and "too short" in weak.stderr
    engine = create_engine(f"sqlite:///{database_file}")
    with engine.connect() as connection:
        user = connection.execute(
            text(
                "SELECT m.unit_id, m.role, u.active, u.must_change_password FROM users u "
                "JOIN memberships m ON m.user_id = u.id"
            )
        ).one()
        actions = connection.execute(text("SELECT actor, action FROM audit_log ORDER BY id")).all()
    engine.dispose()
    assert tuple(user) == (None, "secretariat", 1, 1)
    assert [tuple(a) for a in actions] == [
        ("cli", "user_created"),
        ("cli", "user_updated"),
        ("cli", "user_updated"),
        ("cli", "password_reset"),
        ("cli", "user_updated"),
    ]


def test_serve_refuses_a_weak_first_admin_password(
    database_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFBRIDGE_ADMIN_PASSWORD", "x")
    result = run("serve", "--port", str(free_port()))
    assert result.exit_code == 2
    assert result.stderr == (
        "config error: admin_password (CONFBRIDGE_ADMIN_PASSWORD): the password is too short: "
        "it needs at least 12 characters\n"
    )
    assert not database_file.exists()  # refused before the database is touched


def test_config_error_is_one_line_naming_the_key(
    database_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFBRIDGE_MEETINGS__HORIZON_DAYS", "soon")
    result = run("db", "upgrade")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("config error: meetings.horizon_days")


def test_unreachable_database_is_a_clean_error(
    database_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFBRIDGE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = run("db", "upgrade")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot use the database")


def test_sfu_refuses_the_default_node_secret_beyond_loopback(database_file: Path) -> None:
    result = run("sfu", "--host", "0.0.0.0")
    assert result.exit_code == 2
    assert result.stderr.startswith("config error: sfu node_secret: the default value is refused")
    assert "Traceback" not in result.output


def test_sfu_needs_its_own_node_key(database_file: Path) -> None:
    result = run("sfu")
    assert result.exit_code == 2
    assert result.stderr.startswith("config error: sfu.node_key: missing; enrol this node")
    assert "confbridge nodes enroll" in result.stderr and "Traceback" not in result.output


def test_nodes_enroll_list_revoke(database_file: Path) -> None:
    enrolled = run("nodes", "enroll", "sfu-qn-1")
    assert enrolled.exit_code == 0, enrolled.output
    key = enrolled.stdout.split("(shown once): ")[1].split()[0]
    assert key.startswith("cbn_") and "CONFBRIDGE_SFU_NODE_KEY=" in enrolled.stdout
    assert count(database_file, "sfu_node_enrolments") == 1
    engine = create_engine(f"sqlite:///{database_file}")
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT key_hash FROM sfu_node_enrolments")).scalar_one()
    engine.dispose()
    assert key not in stored  # only its hash is kept
    again = run("nodes", "enroll", "sfu-qn-1")
    assert again.exit_code == 1 and "already enrolled" in again.stderr
    rotated = run("nodes", "enroll", "sfu-qn-1", "--rotate")
    assert rotated.exit_code == 0 and key not in rotated.stdout
    bad = run("nodes", "enroll", "local-3")
    assert bad.exit_code == 1 and "belong to `serve`" in bad.stderr
    listed = run("nodes", "list")
    assert listed.stdout.startswith("sfu-qn-1\tnot registered\tremote\tenrolled ")
    assert "1 node(s)" in listed.stdout
    assert run("nodes", "revoke", "sfu-qn-1").stdout == "node sfu-qn-1 revoked\n"
    missing = run("nodes", "revoke", "sfu-qn-1")
    assert missing.exit_code == 1 and "not enrolled" in missing.stderr
    assert count(database_file, "sfu_node_enrolments") == 0
    assert count(database_file, "audit_log") == 3


def test_sfu_without_a_grant_key_fetches_it_or_says_why_not(
    database_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "node" / "grant-key.pub.pem"
    monkeypatch.setenv("CONFBRIDGE_SFU_NODE_KEY", "cbn_enrolled-elsewhere")
    monkeypatch.setenv("CONFBRIDGE_SFU_GRANT_PUBLIC_KEY_FILE", str(key_file))
    monkeypatch.setenv("CONFBRIDGE_SFU_CONTROL_URL", f"http://127.0.0.1:{free_port()}")
    result = run("sfu")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: no grant key at {key_file}, and the control plane")
    assert "CONFBRIDGE_SFU_GRANT_PUBLIC_KEY_FILE" in result.stderr
    assert "Traceback" not in result.output
    assert not key_file.exists()


def _book_past_meetings() -> None:
    """Quảng Ninh in 2025: 4 online January briefings and one review in person."""
    from confbridge.db import Database
    from confbridge.meetings import service as meeting_service
    from confbridge.settings import load_settings
    from confbridge.sites.models import Site, Unit
    from confbridge.timeutil import utcnow

    settings = load_settings()
    database = Database(settings)
    with database.session() as session:
        province = session.query(Unit).filter(Unit.name == "Quảng Ninh").one()
        hall = session.query(Site).filter(Site.unit_id == province.id).one()
        common = {
            "chair_site_id": hall.id,
            "unit_ids": [province.id],
            "skip_holidays": False,
            "record_past": True,  # meetings that took place
        }
        for body in (
            {
                "title": "Giao ban tuần",
                "kind": "giao_ban",
                "mode": "online",
                "rrule": "FREQ=WEEKLY;BYDAY=TU;COUNT=4",
                "dtstart": "2025-01-07T08:00:00",
                "duration_min": 90,
            },
            {
                "title": "Sơ kết quý",
                "kind": "so_ket",
                "mode": "in_person",
                "rrule": "FREQ=DAILY;COUNT=1",
                "dtstart": "2025-03-28T14:00:00",
                "duration_min": 120,
            },
        ):
            meeting_service.create(
                session=session,
                series_in={**body, **common},
                settings=settings.meetings,
                now=utcnow(),
            )
        session.commit()
    database.dispose()


def test_report_online_ratio_prints_a_table_and_writes_xlsx(
    database_file: Path, tmp_path: Path
) -> None:
    from openpyxl import load_workbook

    assert run("sites", "import-province", "Quảng Ninh").exit_code == 0
    _book_past_meetings()
    period = ("--from", "2025-01-01", "--to", "2025-12-31")
    table = run("report", "online-ratio", *period, "--unit", "quang ninh", "--group-by", "quarter")
    assert table.exit_code == 0, table.stderr
    assert "Quảng Ninh" in table.stdout and "Quý I/2025" in table.stdout
    assert "Tổng cộng" in table.stdout and "80.0%" in table.stdout  # 4 of 5 booked online
    assert "xác minh" in table.stdout
    # no media event at all: booked online, but none verified as held on the bridge
    assert "Briefings held online: 0.0% (0/4), chỉ tiêu ≥ 30%: không đạt" in table.stdout
    output = tmp_path / "ty-le.xlsx"
    written = run(
        "report",
        "online-ratio",
        *period,
        "--unit",
        "Quảng Ninh",
        "--format",
        "xlsx",
        "-o",
        str(output),
    )
    assert written.exit_code == 0, written.stderr
    sheet = load_workbook(output)["Tỷ lệ họp trực tuyến"]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert rows[0][:5] == ("Tháng 01/2025", 4, 4, 0, 0)
    assert rows[-1][:9] == ("Tổng cộng", 5, 4, 0, 1, 0.8, 0, 0, 0.0)


def test_report_attendance_as_csv_and_json(database_file: Path) -> None:
    import json

    assert run("sites", "import-province", "Quảng Ninh").exit_code == 0
    _book_past_meetings()
    period = ("--from", "2025-01-01", "--to", "2025-01-31")
    csv_out = run("report", "attendance", *period, "--format", "csv")
    assert csv_out.exit_code == 0, csv_out.stderr
    lines = csv_out.stdout.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("Điểm cầu,Đơn vị,Số cuộc họp được mời,Có mặt")
    assert len(lines) == 1 + 55  # every site was invited, none connected
    report = json.loads(run("report", "attendance", *period, "--format", "json").stdout)
    assert (report["occurrences"], report["invited"], report["absent"]) == (4, 220, 220)
    printed = run("report", "attendance", *period, "--unit", "22")
    assert printed.exit_code == 0 and "0/220 lượt có mặt" in printed.stdout


def test_report_bad_input_fails_cleanly(database_file: Path) -> None:
    reversed_period = run("report", "online-ratio", "--from", "2025-12-31", "--to", "2025-01-01")
    assert reversed_period.exit_code == 1
    assert reversed_period.stderr.startswith("error: from: 2025-12-31 is after to: 2025-01-01")
    unknown = run("report", "attendance", "--unit", "Atlantis")
    assert unknown.exit_code == 1 and "no unit named 'Atlantis'" in unknown.stderr
    no_file = run("report", "online-ratio", "--format", "xlsx")
    assert no_file.exit_code == 1 and "--format xlsx needs --output FILE" in no_file.stderr
    bad_group = run("report", "online-ratio", "--group-by", "week")
    assert bad_group.exit_code == 1 and "group_by: unknown value 'week'" in bad_group.stderr
    assert "Traceback" not in bad_group.output


def _served(monkeypatch: pytest.MonkeyPatch) -> tuple[object, dict]:
    """Run `confbridge serve` up to the point where it hands its app to uvicorn; return the
    app and the options it gives uvicorn (no workers are started, nothing listens)."""
    import logging.config

    import uvicorn

    from confbridge.local_workers import LocalWorkers

    handed: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: handed.update(app=app, **options))
    monkeypatch.setattr(LocalWorkers, "start", lambda self: None)
    monkeypatch.setattr(LocalWorkers, "close", lambda self: None)
    monkeypatch.setattr(logging.config, "dictConfig", lambda config: None)
    result = run("serve", "--port", str(free_port()))
    assert result.exit_code == 0, result.output
    return handed.pop("app"), handed


def test_serve_believes_forwarded_for_only_from_trusted_proxies(
    database_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the uvicorn options `serve` uses, X-Forwarded-For from loopback does not
    spread one address's wrong pairing codes over many, unless loopback is a trusted proxy."""
    import httpx

    from tests.support.servers import ServerThread

    monkeypatch.setenv("CONFBRIDGE_DEMO__ENABLED", "false")
    for trusted, limited in (("", True), ("127.0.0.1", False)):
        monkeypatch.setenv("CONFBRIDGE_TRUSTED_PROXIES", trusted)
        application, options = _served(monkeypatch)
        assert options["proxy_headers"] is True
        server = ServerThread(
            application,
            proxy_headers=options["proxy_headers"],
            forwarded_allow_ips=options.get("forwarded_allow_ips"),
        ).start()
        try:
            statuses = [
                httpx.post(
                    f"{server.url}/api/v1/terminals/pair",
                    json={"code": "AAAA-AAAA"},
                    headers={"X-Forwarded-For": f"192.0.2.{index}"},
                ).status_code
                for index in range(11)
            ]
        finally:
            server.stop()
        assert statuses[:10] == [401] * 10
        assert (statuses[10] == 429) is limited, (trusted, statuses)
