"""`confbridge terminals ...` for IT staff, and `confbridge terminal` refusing cleanly."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner, Result

from confbridge.cli import TERMINAL_REVOKED_EXIT, app


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_terminals_create_list_revoke(database_file: Path) -> None:
    assert run("sites", "import-province", "Quảng Ninh").exit_code == 0
    created = run("terminals", "create", "--site", "1", "--name", "Tivi hội trường")
    assert created.exit_code == 0, created.output
    match = re.search(
        r"terminal (\d+) \(Tivi hội trường\): pairing code ([A-Z2-9]{4}-[A-Z2-9]{4})",
        created.stdout,
    )
    assert match is not None, created.stdout
    listed = run("terminals", "list")
    assert (
        listed.exit_code == 0
        and "\toffline\t" in listed.stdout
        and "1 terminal(s)" in listed.stdout
    )
    revoked = run("terminals", "revoke", match.group(1))
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    again = run("terminals", "revoke", match.group(1))
    assert again.exit_code == 1 and again.stderr.startswith("error: terminal")
    missing = run("terminals", "create", "--site", "99999")
    assert missing.exit_code == 1 and "site 99999 does not exist" in missing.stderr


def test_terminal_agent_refuses_bad_options_in_one_line(tmp_path: Path) -> None:
    no_token = run(
        "terminal", "--server", "http://127.0.0.1:9", "--token-file", str(tmp_path / "none")
    )
    assert no_token.exit_code == 1
    assert no_token.stderr.strip().startswith("error: no terminal token")
    bad_server = run("terminal", "--server", "ftp://x", "--token", "cbt_x")
    assert bad_server.exit_code == 2 and "--server must start with http" in bad_server.stderr
    both = run(
        "terminal", "--server", "http://127.0.0.1:9", "--token", "cbt_x",
        "--screen", "--camera", "/dev/video0",
    )  # fmt: skip
    assert both.exit_code == 2 and "--screen: the kiosk window uses" in both.stderr
    assert "Traceback" not in no_token.output + bad_server.output + both.output
    assert TERMINAL_REVOKED_EXIT == 3  # the systemd unit's RestartPreventExitStatus
    unit = (
        Path(__file__).resolve().parents[2] / "deploy" / "confbridge-terminal.service"
    ).read_text()
    assert f"RestartPreventExitStatus={TERMINAL_REVOKED_EXIT}" in unit
