"""An S3-compatible object store (settings `object_store`), through boto3.

The meetings' documents and finished recordings live there when it is configured. Objects are
named below the settings' `prefix`; each carries its SHA-256 in its metadata. Every failure of
the store becomes a refusal a caller understands: NotFound for a missing object, 416 for a range
outside it, 503 when the store cannot be reached or refuses the bridge's credentials.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from confbridge.errors import NotFound, RangeNotSatisfiable, Unavailable
from confbridge.settings import ObjectStoreSettings, Settings

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
# Files above this go up in parts of this size (S3's multipart upload): a recording of a
# long meeting is several GB.
PART_BYTES = 16 << 20
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
RETRY_AFTER_S = 30

_clients: dict[tuple[str, ...], Any] = {}
_clients_lock = threading.Lock()


@dataclass
class StoredObject:
    """An object (or the byte range asked for) on its way from the store; `chunks()` reads
    it and closes the connection."""

    status_code: int  # 200, or 206 for a range
    headers: dict[str, str]  # content-type, content-length, content-range, accept-ranges
    body: Any

    def chunks(self) -> Iterator[bytes]:
        try:
            yield from self.body.iter_chunks(CHUNK_BYTES)
        finally:
            self.body.close()


@dataclass(frozen=True)
class Listed:
    name: str  # below the prefix
    modified_s: float  # seconds since the epoch


class ObjectStore:
    """One bucket of an S3-compatible store, below the settings' prefix."""

    def __init__(self, settings: ObjectStoreSettings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._client = _client_for(settings)

    def key(self, name: str) -> str:
        return self.settings.prefix + name

    def describe(self) -> str:
        return f"{self.settings.endpoint_url}/{self.bucket}"

    def put(self, name: str, source: BinaryIO, *, content_type: str, sha256: str) -> None:
        """Write the object whole (in parts when large): readers see all of it or nothing."""
        extra = {"ContentType": content_type, "Metadata": {"sha256": sha256}}
        config = TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES)
        with self._failures(name):
            self._client.upload_fileobj(
                source, self.bucket, self.key(name), ExtraArgs=extra, Config=config
            )

    def get(self, name: str, byte_range: str | None = None) -> StoredObject:
        """The object, or the part `byte_range` (an HTTP `Range` value) names."""
        arguments = {"Bucket": self.bucket, "Key": self.key(name)}
        if byte_range:
            arguments["Range"] = byte_range
        with self._failures(name):
            answer = self._client.get_object(**arguments)
        headers = {
            "content-type": answer.get("ContentType") or "application/octet-stream",
            "content-length": str(answer["ContentLength"]),
            "accept-ranges": "bytes",
        }
        if answer.get("ContentRange"):
            headers["content-range"] = answer["ContentRange"]
        status = answer["ResponseMetadata"]["HTTPStatusCode"]
        return StoredObject(status_code=status, headers=headers, body=answer["Body"])

    def download(self, name: str, target: Path) -> None:
        """Copy the object to the file `target` (replaced whole, never left half written)."""
        # a name of its own: two requests may fetch the same object at once
        partial = target.with_name(f"{target.name}.{secrets.token_hex(6)}.part")
        try:
            with self._failures(name), partial.open("wb") as out:
                self._client.download_fileobj(self.bucket, self.key(name), out)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)

    def delete(self, name: str) -> None:
        """Remove the object (nothing to do when it is already gone)."""
        with self._failures(name):
            self._client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def list(self, folder: str) -> Iterator[Listed]:
        """The objects whose names start with `folder`, with their last modification."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.key(folder)
        )
        with self._failures(folder):
            for page in pages:
                for entry in page.get("Contents", ()):
                    name = entry["Key"].removeprefix(self.settings.prefix)
                    yield Listed(name=name, modified_s=entry["LastModified"].timestamp())

    def check(self) -> None:
        """Unavailable unless the bucket answers to the bridge's credentials."""
        with self._failures(""):
            self._client.head_bucket(Bucket=self.bucket)

    def _failures(self, name: str) -> _StoreFailures:
        return _StoreFailures(self, name)


class _StoreFailures:
    """Turns boto3's exceptions into the bridge's refusals (a context manager)."""

    def __init__(self, store: ObjectStore, name: str) -> None:
        self.store = store
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, _tb: object) -> bool:
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in MISSING_CODES:
                raise NotFound(f"{self.name} is missing from the object store") from None
            if code == "InvalidRange":
                raise RangeNotSatisfiable(f"{self.name}: no such byte range") from None
            log.warning("object store %s refused %s: %s", self.store.describe(), self.name, exc)
            raise Unavailable(
                f"the object store {self.store.describe()} refused the request ({code})",
                retry_after_s=RETRY_AFTER_S,
            ) from None
        if isinstance(exc, BotoCoreError):
            log.warning("object store %s unreachable: %s", self.store.describe(), exc)
            raise Unavailable(
                f"the object store {self.store.describe()} cannot be reached, try again",
                retry_after_s=RETRY_AFTER_S,
            ) from None
        return False


def _client_for(settings: ObjectStoreSettings) -> Any:
    """One boto3 client per store (they are thread-safe and slow to make)."""
    identity = (
        settings.endpoint_url,
        settings.region,
        settings.access_key_id,
        str(settings.secret_access_key),
        settings.addressing_style,
        str(settings.timeout_s),
    )
    with _clients_lock:
        client = _clients.get(identity)
        if client is None:
            config = Config(
                s3={"addressing_style": settings.addressing_style},
                connect_timeout=min(settings.timeout_s, 10),
                read_timeout=settings.timeout_s,
                retries={"max_attempts": 3, "mode": "standard"},
                signature_version="s3v4",
            )
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=settings.endpoint_url,
                region_name=settings.region,
                aws_access_key_id=settings.access_key_id,
                aws_secret_access_key=str(settings.secret_access_key),
                config=config,
            )
            _clients[identity] = client
    return client


def store_of(settings: Settings) -> ObjectStore | None:
    """The object store the settings name, or None (files on local disks)."""
    configured = settings.object_store
    return ObjectStore(configured) if configured is not None else None
