"""The data directory and what the services write into it: readable by their user alone.

The SQLite database, the join-grant key and the workers' event spools hold credentials and
personal data; on a shared machine no other account may read them.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create `path` (mode 0700), or take group and other access away from an existing one."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~PRIVATE_DIR_MODE & 0o777:
        try:
            path.chmod(PRIVATE_DIR_MODE)
        except OSError as exc:
            log.warning("data dir %s is open to others (mode %o) and stays so: %s", path, mode, exc)
        else:
            log.info("data dir %s was open to others (mode %o); now 0700", path, mode)


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists (SQLite gives its -wal and -shm
    files the database file's mode)."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))


def make_process_private(directory: Path) -> None:
    """Files this process and its children create are theirs alone (umask 077), and so is
    `directory` (the data directory, or a worker's spool)."""
    os.umask(PRIVATE_UMASK)
    private_dir(directory)
