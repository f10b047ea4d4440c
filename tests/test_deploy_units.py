"""The systemd units shipped in deploy/: well-formed, sandboxed, secrets kept out of them, and
accepted by `systemd-analyze verify` where systemd is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
UNITS = {"confbridge.service": "serve", "confbridge-sfu.service": "sfu"}
INSTALLED_COMMAND = "/opt/confbridge/bin/confbridge"
SANDBOX = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictSUIDSGID": "yes",
    "UMask": "0077",
    "CapabilityBoundingSet": "",
}


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's unit syntax: [Section], Key=value (repeatable), `\\` continues a line,
    `#`/`;` comments. Anything else is an error."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, equals, value = line.partition("=")
        assert current is not None and equals and key.strip().isidentifier(), (number, raw)
        current.setdefault(key.strip(), []).append(value.strip())
    assert not pending, "a continuation at the end of the file"
    return sections


@pytest.mark.parametrize("name", sorted(UNITS))
def test_deploy_unit_is_sandboxed_and_keeps_secrets_out(name: str) -> None:
    unit = parse_unit((DEPLOY / name).read_text(encoding="utf-8"))
    assert set(unit) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert service["ExecStart"] == [f"{INSTALLED_COMMAND} {UNITS[name]}"]
    assert service["User"][0] not in ("root", "0") and service["Group"] == service["User"]
    for key, value in SANDBOX.items():
        assert service.get(key) == [value], key
    (state,) = service["StateDirectory"]
    assert service["ReadWritePaths"] == [f"/var/lib/{state}"]
    assert service["StateDirectoryMode"] == ["0700"]
    assert service["EnvironmentFile"][0].startswith("/etc/confbridge/")
    assert service["RestartPreventExitStatus"] == ["2"]  # a config error is not retried
    settings = " ".join(service.get("Environment", []))
    assert "SECRET" not in settings and "PASSWORD" not in settings  # only in the env file
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_deploy_unit_parser_refuses_malformed_lines() -> None:
    with pytest.raises(AssertionError):
        parse_unit("[Service]\nExecStart /usr/bin/true\n")
    with pytest.raises(AssertionError):
        parse_unit("User=nobody\n")  # outside a section


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_deploy_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """With the command at this test's own installation (verify checks that it exists)."""
    command = Path(sys.executable).with_name("confbridge")
    assert command.is_file(), command
    for name in UNITS:
        text = (DEPLOY / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace(INSTALLED_COMMAND, str(command)))
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / name) for name in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify warns (unknown keys, bad values) on stderr and still exits 0: both must be clean
    assert (result.returncode, result.stderr.strip()) == (0, ""), result.stderr


SCREEN_UNIT = "confbridge-terminal-screen.service"


def test_deploy_screen_unit_runs_the_agent_with_a_window_in_the_graphical_session() -> None:
    """The hall screen is a user unit of the graphical session; a revoked token is final."""
    from confbridge.cli import TERMINAL_REVOKED_EXIT

    unit = parse_unit((DEPLOY / SCREEN_UNIT).read_text(encoding="utf-8"))
    service = unit["Service"]
    assert service["ExecStart"] == [f"{INSTALLED_COMMAND} terminal --screen --log-format json"]
    assert "User" not in service  # a user unit: it runs as the account that is logged in
    assert unit["Unit"]["PartOf"] == ["graphical-session.target"]
    assert unit["Install"]["WantedBy"] == ["graphical-session.target"]
    assert service["RestartPreventExitStatus"] == [str(TERMINAL_REVOKED_EXIT)]
    assert service["Restart"] == ["always"] and service["StateDirectoryMode"] == ["0700"]
    settings = service["Environment"]
    assert "CONFBRIDGE_TERMINAL_TOKEN_FILE=%S/confbridge-terminal/token" in settings
    assert "CONFBRIDGE_TERMINAL_SCREEN_PROFILE=%S/confbridge-terminal/screen-profile" in settings
    assert not any("TOKEN=" in value for value in settings)  # the token lives in its file


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_deploy_screen_unit_passes_systemd_analyze_verify_as_a_user_unit(tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("confbridge")
    text = (DEPLOY / SCREEN_UNIT).read_text(encoding="utf-8")
    (tmp_path / SCREEN_UNIT).write_text(text.replace(INSTALLED_COMMAND, str(command)))
    runtime = tmp_path / "runtime"  # a user manager needs one, even to verify
    runtime.mkdir(mode=0o700)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--user", str(tmp_path / SCREEN_UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime), "HOME": str(tmp_path)},
    )
    assert (result.returncode, result.stderr.strip()) == (0, ""), result.stderr
