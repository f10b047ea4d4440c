"""The object store client against a real S3-compatible server (SeaweedFS on loopback)."""

from __future__ import annotations

import hashlib
import io

import pytest

from confbridge.errors import NotFound, RangeNotSatisfiable, Unavailable
from confbridge.object_store import PART_BYTES, ObjectStore
from confbridge.settings import ObjectStoreSettings
from tests.support.object_store import SeaweedFs
from tests.support.servers import free_port


def store(seaweed: SeaweedFs, **overrides: object) -> ObjectStore:
    return ObjectStore(ObjectStoreSettings(**{**seaweed.settings(), **overrides}))


def test_object_store_writes_reads_ranges_lists_and_deletes(seaweed: SeaweedFs) -> None:
    objects = store(seaweed)
    body = bytes(range(256)) * 40
    digest = hashlib.sha256(body).hexdigest()
    objects.put("documents/a.bin", io.BytesIO(body), content_type="application/pdf", sha256=digest)

    # another client sees it below the prefix, with its checksum
    (key,) = seaweed.keys(objects.settings.prefix)
    assert key == f"{objects.settings.prefix}documents/a.bin"
    head = seaweed.client().head_object(Bucket=objects.bucket, Key=key)
    assert head["Metadata"]["sha256"] == digest and head["ContentLength"] == len(body)

    whole = objects.get("documents/a.bin")
    assert whole.status_code == 200 and whole.headers["content-type"] == "application/pdf"
    assert b"".join(whole.chunks()) == body
    part = objects.get("documents/a.bin", "bytes=100-199")
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(body)}"
    assert b"".join(part.chunks()) == body[100:200]
    with pytest.raises(RangeNotSatisfiable):
        objects.get("documents/a.bin", f"bytes={len(body) + 10}-")

    assert [entry.name for entry in objects.list("documents/")] == ["documents/a.bin"]
    objects.delete("documents/a.bin")
    objects.delete("documents/a.bin")  # gone already: nothing to do
    assert seaweed.keys(objects.settings.prefix) == []
    with pytest.raises(NotFound):
        objects.get("documents/a.bin")


def test_object_store_puts_a_large_file_in_parts(seaweed: SeaweedFs, tmp_path) -> None:
    objects = store(seaweed)
    body = hashlib.sha256(b"seed").digest() * ((PART_BYTES * 2 + 12345) // 32)
    objects.put("recordings/big.webm", io.BytesIO(body), content_type="video/webm", sha256="x")
    target = tmp_path / "big.webm"
    objects.download("recordings/big.webm", target)
    assert target.read_bytes() == body
    assert [p.name for p in tmp_path.iterdir()] == ["big.webm"]  # no part file left


def test_object_store_refusals_are_clear(seaweed: SeaweedFs, tmp_path) -> None:
    wrong = store(seaweed, secret_access_key="not-the-secret-key-at-all")
    with pytest.raises(Unavailable, match="refused the request") as refused:
        wrong.check()
    assert refused.value.status_code == 503
    nowhere = store(seaweed, endpoint_url=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(Unavailable, match="cannot be reached"):
        nowhere.put("x", io.BytesIO(b"x"), content_type="text/plain", sha256="")
    with pytest.raises(NotFound):
        store(seaweed).download("documents/missing.bin", tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a part of it
    store(seaweed).check()


def test_object_store_settings_refuse_bad_values() -> None:
    good = {"endpoint_url": "http://s3.local:9000", "bucket": "recordings", "access_key_id": "k",
            "secret_access_key": "very-secret-words"}  # fmt: skip
    assert ObjectStoreSettings(**good, prefix="/hanoi").prefix == "hanoi/"
    assert "very-secret-words" not in repr(ObjectStoreSettings(**good))  # kept out of logs
    for bad in ({"endpoint_url": "s3.local:9000"}, {"bucket": "UPPER"}, {"bucket": "ab"}):
        with pytest.raises(ValueError):
            ObjectStoreSettings(**{**good, **bad})
