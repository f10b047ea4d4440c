"""Documents' bytes on disk, under `<data_dir>/documents/`: written whole or not at all.

An upload is written to `incoming/<random>.part`, flushed to disk and renamed into place;
only then is its row committed. A crash mid-upload leaves a `.part` file (swept later), a
crash between rename and commit an unreferenced file (swept too): never a row without bytes.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from confbridge.errors import DomainError
from confbridge.private_files import private_dir

DOCUMENTS_DIR = "documents"  # under the data dir
PAGES_DIR = "pages"  # a PDF's pages drawn for the halls' screens, one folder per storage key
CHUNK_BYTES = 1 << 20
# A .part file this old belongs to no upload still running.
STALE_PART_S = 3600


class TooLarge(DomainError):
    status_code = 413


@dataclass(frozen=True)
class Received:
    """A file written to `incoming/`, not yet in place."""

    path: Path
    size: int
    sha256: str


class DocumentStore:
    """The directory of documents' bytes, one file per storage key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / "incoming"

    def _ensure(self) -> None:
        private_dir(self.root)
        private_dir(self.incoming)

    def receive(self, source: BinaryIO, *, max_bytes: int) -> Received:
        """Copy `source` to a new file in `incoming/`, hashing it; TooLarge past `max_bytes`."""
        self._ensure()
        path = self.incoming / f"{secrets.token_hex(16)}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("xb") as target:
                while chunk := source.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(
                            f"file: larger than the limit of {max_bytes // (1 << 20)} MB"
                        )
                    digest.update(chunk)
                    target.write(chunk)
                target.flush()
                os.fsync(target.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Received(path, size, digest.hexdigest())

    def place(self, received: Received) -> str:
        """Move a received file into place; returns its storage key."""
        key = f"{secrets.token_hex(16)}.bin"
        os.replace(received.path, self.root / key)
        _fsync_dir(self.root)
        return key

    def discard(self, received: Received) -> None:
        received.path.unlink(missing_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key

    def pages_dir(self, key: str) -> Path:
        """Where the pages of the document stored under `key` are kept once drawn."""
        return self.root / PAGES_DIR / key.removesuffix(".bin")

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)
        shutil.rmtree(self.pages_dir(key), ignore_errors=True)

    def sweep(self, *, known_keys: Iterable[str], now_s: float | None = None) -> int:
        """Remove stale `.part` files and files no row refers to; returns how many."""
        if not self.root.exists():
            return 0
        now_s = time.time() if now_s is None else now_s
        keep = set(known_keys)
        removed = 0
        for part in self.incoming.glob("*.part") if self.incoming.exists() else ():
            if now_s - part.stat().st_mtime > STALE_PART_S:
                part.unlink(missing_ok=True)
                removed += 1
        for stored in self.root.glob("*.bin"):
            # a file placed a moment ago may wait for its row's commit
            if stored.name not in keep and now_s - stored.stat().st_mtime > STALE_PART_S:
                stored.unlink(missing_ok=True)
                removed += 1
        pages = self.root / PAGES_DIR
        for drawn in pages.iterdir() if pages.exists() else ():
            if f"{drawn.name}.bin" not in keep:
                shutil.rmtree(drawn, ignore_errors=True)
        return removed


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def store_in(data_dir: Path) -> DocumentStore:
    """The documents' store of a data directory."""
    return DocumentStore(data_dir / DOCUMENTS_DIR)
