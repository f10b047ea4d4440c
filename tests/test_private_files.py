"""The data directory and its files are readable by the service's user alone."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from confbridge.db import Database
from confbridge.private_files import private_dir
from confbridge.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_files_existing_data_dir_loses_group_and_other_access(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    private_dir(data)
    assert mode(data) == 0o700


@pytest.mark.integration
def test_private_files_sqlite_database_is_created_0600(tmp_path: Path) -> None:
    settings = Settings(env="test", data_dir=tmp_path / "data")
    database = Database(settings)
    with database.engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        connection.commit()
    database.dispose()
    files = sorted((tmp_path / "data").iterdir())
    assert files[0].name == "confbridge.sqlite3"
    assert mode(tmp_path / "data") == 0o700
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}


@pytest.mark.integration
def test_private_files_process_umask_covers_what_it_writes_later(tmp_path: Path) -> None:
    """In a child process (the umask is process-wide): a file written after the call is 0600."""
    script = (
        "import os, sys; from pathlib import Path\n"
        "from confbridge.private_files import make_process_private\n"
        "os.umask(0o022); d = Path(sys.argv[1])\n"
        "make_process_private(d); (d / 'spool').mkdir(); (d / 'spool' / 'f').write_text('x')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "d")], check=True)
    assert mode(tmp_path / "d") == 0o700
    assert mode(tmp_path / "d" / "spool") == 0o700
    assert mode(tmp_path / "d" / "spool" / "f") == 0o600
