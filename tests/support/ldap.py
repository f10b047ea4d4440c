"""A real OpenLDAP server (Debian's `slapd`) in a temporary directory on a loopback port, with
people and groups, for the directory sign-in tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ldap3 import Connection, Server

SUFFIX = "dc=example,dc=vn"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "quan-tri-danh-ba"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
START_TIMEOUT_S = 20.0


@dataclass
class Directory:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Kill it (an outage, as the sign-in sees one)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(directory: Path) -> Path:
    data = directory / "data"
    data.mkdir(parents=True)
    lines = [f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS]
    lines += [
        f"pidfile {directory / 'slapd.pid'}",
        "modulepath /usr/lib/ldap",
        "moduleload back_mdb",
        "database mdb",
        "maxsize 10485760",
        f'suffix "{SUFFIX}"',
        f'rootdn "{ROOT_DN}"',
        f"rootpw {ROOT_PASSWORD}",
        f"directory {data}",
    ]
    path = directory / "slapd.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def running_slapd(
    directory: Path, people: dict[str, str], groups: dict[str, list[str]]
) -> Iterator[Directory]:
    """slapd with `people` (uid → password) under ou=people and `groups` (cn → member uids,
    groupOfNames) under ou=groups; stopped at the end."""
    slapd = shutil.which("slapd") or "/usr/sbin/slapd"
    port = _free_port()
    url = f"ldap://127.0.0.1:{port}"
    process = subprocess.Popen(
        [slapd, "-d", "0", "-f", str(_config(directory)), "-h", f"{url}/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    running = Directory(url, process)
    try:
        connection = _connect_as_root(url, process)
        connection.add(SUFFIX, ["dcObject", "organization"], {"o": "Thử", "dc": "example"})
        for unit in ("people", "groups"):
            connection.add(f"ou={unit},{SUFFIX}", ["organizationalUnit"], {"ou": unit})
        for uid, password in people.items():
            connection.add(
                f"uid={uid},ou=people,{SUFFIX}",
                ["inetOrgPerson"],
                {"uid": uid, "cn": f"Cán bộ {uid}", "sn": uid, "userPassword": password},
            )
        for cn, members in groups.items():
            connection.add(
                f"cn={cn},ou=groups,{SUFFIX}",
                ["groupOfNames"],
                {"cn": cn, "member": [f"uid={m},ou=people,{SUFFIX}" for m in members]},
            )
        assert connection.result["result"] == 0, connection.result
        connection.unbind()
        yield running
    finally:
        running.stop()


def _connect_as_root(url: str, process: subprocess.Popen[bytes]) -> Connection:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"slapd exited: {error[-2000:]}")
        try:
            connection = Connection(Server(url, connect_timeout=1), ROOT_DN, ROOT_PASSWORD)
            if connection.bind():
                return connection
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("slapd did not start listening")
        time.sleep(0.1)
