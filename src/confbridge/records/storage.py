"""Documents' bytes, under `<data_dir>/documents/` or in the object store: written whole or
not at all.

An upload is written to `incoming/<random>.part`, flushed to disk and renamed into place (or
put whole into the object store); only then is its row committed. A crash mid-upload leaves a
`.part` file (swept later), a crash between placing and commit an unreferenced file or object
(swept too): never a row without bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from confbridge.errors import DomainError
from confbridge.object_store import ObjectStore, store_of
from confbridge.private_files import private_dir
from confbridge.settings import Settings

log = logging.getLogger(__name__)

DOCUMENTS_DIR = "documents"  # under the data dir
PAGES_DIR = "pages"  # a PDF's pages drawn for the halls' screens, one folder per storage key
CACHE_DIR = "cache"  # documents fetched from the object store to be served or drawn
OBJECTS_FOLDER = "documents/"  # the documents' names in the object store
# A cached copy unused this long is removed at the next sweep (the store keeps the original).
CACHE_KEEP_S = 24 * 3600
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
        """A local file holding the document's bytes."""
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


class ObjectDocumentStore(DocumentStore):
    """Documents' bytes in the object store; uploads are received, and documents served or
    drawn, from local copies under the data dir."""

    def __init__(self, root: Path, objects: ObjectStore) -> None:
        super().__init__(root)
        self.objects = objects
        self.cache = root / CACHE_DIR

    def place(self, received: Received) -> str:
        key = f"{secrets.token_hex(16)}.bin"
        try:
            with received.path.open("rb") as source:
                self.objects.put(
                    OBJECTS_FOLDER + key,
                    source,
                    content_type="application/octet-stream",
                    sha256=received.sha256,
                )
        finally:
            received.path.unlink(missing_ok=True)
        return key

    def path(self, key: str) -> Path:
        """The cached copy, fetched from the store first if need be (NotFound if it is gone)."""
        cached = self.cache / key
        if not cached.is_file():
            private_dir(self.root)
            private_dir(self.cache)
            self.objects.download(OBJECTS_FOLDER + key, cached)
        os.utime(cached)  # in use: kept by the sweep
        return cached

    def delete(self, key: str) -> None:
        """Remove the object and the local copies; a store that cannot be reached leaves the
        object to a later sweep (its row is gone already)."""
        try:
            self.objects.delete(OBJECTS_FOLDER + key)
        except DomainError as exc:
            log.warning("document %s stays in the object store until a later sweep: %s", key, exc)
        (self.cache / key).unlink(missing_ok=True)
        shutil.rmtree(self.pages_dir(key), ignore_errors=True)

    def sweep(self, *, known_keys: Iterable[str], now_s: float | None = None) -> int:
        """As on disk, plus objects no row refers to and cached copies unused for a day."""
        now_s = time.time() if now_s is None else now_s
        keep = set(known_keys)
        removed = super().sweep(known_keys=keep, now_s=now_s)
        for cached in self.cache.iterdir() if self.cache.exists() else ():
            age_s = now_s - cached.stat().st_mtime
            if cached.suffix == ".part":  # a fetch under way, unless it is old
                if age_s > STALE_PART_S:
                    cached.unlink(missing_ok=True)
            elif cached.name not in keep or age_s > CACHE_KEEP_S:
                cached.unlink(missing_ok=True)
        for stored in list(self.objects.list(OBJECTS_FOLDER)):
            key = stored.name.removeprefix(OBJECTS_FOLDER)
            if key not in keep and now_s - stored.modified_s > STALE_PART_S:
                self.objects.delete(stored.name)
                removed += 1
        return removed


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def store_for(settings: Settings) -> DocumentStore:
    """The documents' store: the object store where one is configured, else the data dir."""
    root = settings.data_dir / DOCUMENTS_DIR
    objects = store_of(settings)
    return ObjectDocumentStore(root, objects) if objects is not None else DocumentStore(root)
