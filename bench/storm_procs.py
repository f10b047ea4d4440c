"""The join storm's control plane and publisher, each in a process of its own.

`bench/fanout.py`'s `start_stack` runs the control plane (uvicorn) in a thread of the calling
process, and its `Publisher` in the caller's event loop. In a join storm that process would
then carry the control plane, the publisher and the decoding viewers under one interpreter, and
its starving would be measured as the product's (a publisher that sends nothing for seconds is
"lost"). Here:

- `StackProcess` runs `fanout.start_stack` (the control plane on a fresh SQLite database, an
  occurrence on now, the local workers started and supervised by `LocalWorkers`, as
  `confbridge serve` does) in a spawned process, and hands back a `fanout.Stack` whose
  `join`, `extend`, `viewer_grants` and `admin` work from the caller (HTTP to the control
  plane and the workers; grants signed with the control plane's key file);
- `PublisherProcess` runs `fanout.Publisher` (the pre-encoded VP8 loop over WHIP, encoded in
  that process) and watches, on request, the largest time it sent nothing.

The environment of the caller at start (e.g. `CONFBRIDGE_SFU_JOIN_MAX_HANDSHAKES`) is inherited
by the spawned processes, and so by the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import signal
import time
from pathlib import Path
from typing import Any

from bench import fanout
from sfu.rtc.ice import use_host_addresses

START_TIMEOUT_S = 120.0
WATCH_TICK_S = 0.05


def _stack_main(conn: Any, data_dir: str, workers: int, ice_lite: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent shuts us down
    try:
        stack = fanout.start_stack(Path(data_dir), workers, "single", ice_lite)
    except Exception as exc:
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
        return
    try:
        conn.send(
            {
                "control_url": stack.control.url,
                "worker_pids": stack.worker_pids,
                "worker_urls": stack.worker_urls,
                "occurrence_id": stack.occurrence_id,
                "tokens": stack.tokens,
                "chair_site_id": stack.chair_site_id,
                "ends_at": stack.ends_at,
                "grant_key_path": stack.grant_key_path,
                "node_keys": [stack.workers.node_key(i) for i in range(workers)],
            }
        )
        with contextlib.suppress(EOFError, OSError):
            conn.recv()  # "stop", or the parent went away
    finally:
        stack.close()
        with contextlib.suppress(Exception):
            conn.send("stopped")


class StackProcess:
    """The control plane and its local workers in a spawned process (see the module)."""

    def __init__(self, data_dir: Path, workers: int, ice_lite: bool) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_stack_main, args=(child, str(data_dir), workers, ice_lite), daemon=True
        )
        self.process.start()
        if not self._conn.poll(START_TIMEOUT_S):
            self.close()
            raise RuntimeError("the control plane's process did not start")
        info = self._conn.recv()
        if "error" in info:
            self.close()
            raise RuntimeError(f"the control plane's process: {info['error']}")
        self.info = info
        self.url: str = info["control_url"]
        self._closed = False

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def node_key(self, index: int) -> str:
        return str(self.info["node_keys"][index])

    def stack(self) -> fanout.Stack:
        """A `fanout.Stack` for this process: `control` and `workers` are this object."""
        info = self.info
        return fanout.Stack(
            control=self,  # type: ignore[arg-type]  # .url and .stop() are what Stack uses
            workers=self,
            worker_pids=info["worker_pids"],
            worker_urls=info["worker_urls"],
            occurrence_id=info["occurrence_id"],
            tokens=info["tokens"],
            chair_site_id=info["chair_site_id"],
            ends_at=info["ends_at"],
            grant_key_path=info["grant_key_path"],
        )

    def stop(self) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers and the control plane (idempotent)."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._conn.send("stop")
            self._conn.poll(60)
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)


def _publisher_main(conn: Any, url: str, token: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    use_host_addresses(["127.0.0.1"])
    asyncio.run(_publisher_loop(conn, url, token))


async def _watch_gaps(publisher: fanout.Publisher, gaps: dict[str, float]) -> None:
    """The largest time between two readings (every `WATCH_TICK_S`) that saw none sent."""
    last_count, last_change = -1, time.monotonic()
    while True:
        count = await publisher.packets_sent()
        now = time.monotonic()
        if count != last_count:
            gaps["largest"] = max(gaps["largest"], now - last_change)
            last_count, last_change = count, now
        gaps["since_last"] = now - last_change
        await asyncio.sleep(WATCH_TICK_S)


def _restarts(publisher: fanout.Publisher) -> int:
    """Keyframes the publisher sent when asked (PLI/FIR from the worker) so far."""
    return publisher.video.restarts if publisher.video is not None else 0


async def _publisher_loop(conn: Any, url: str, token: str) -> None:
    loop = asyncio.get_running_loop()
    publisher = fanout.Publisher(url, token, fanout.encode_loop())
    watching: asyncio.Task[None] | None = None
    gaps = {"largest": 0.0, "since_last": 0.0}
    try:
        try:
            await publisher.start()
        except Exception as exc:
            conn.send({"error": f"{type(exc).__name__}: {exc}"})
            return
        conn.send({"live": True})
        while True:
            if not await loop.run_in_executor(None, conn.poll, 1.0):
                continue
            command = conn.recv()
            if command == "watch":
                gaps.update(largest=0.0, since_last=0.0, restarts=float(_restarts(publisher)))
                watching = watching or loop.create_task(_watch_gaps(publisher, gaps))
                conn.send("ok")
            elif command == "gaps":
                conn.send(
                    {
                        "largest_s": max(gaps["largest"], gaps["since_last"]),
                        "connected": publisher.pc.connectionState == "connected",
                        "restarts": _restarts(publisher) - int(gaps.get("restarts", 0)),
                    }
                )
            elif command == "stop":
                break
    finally:
        if watching is not None:
            watching.cancel()
        with contextlib.suppress(Exception):
            await publisher.stop()
        with contextlib.suppress(Exception):
            conn.send("stopped")


class PublisherProcess:
    """The chair's publisher in a spawned process (see the module)."""

    def __init__(self, url: str, token: str) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_publisher_main, args=(child, url, token), daemon=True)
        self.process.start()
        self._closed = False

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def wait_live(self) -> None:
        if not self._conn.poll(START_TIMEOUT_S):
            raise RuntimeError("the publisher's process did not start")
        answer = self._conn.recv()
        if "error" in answer:
            raise RuntimeError(f"publisher: {answer['error']}")

    def ask(self, command: str, timeout_s: float = 30.0) -> Any:
        self._conn.send(command)
        if not self._conn.poll(timeout_s):
            raise TimeoutError(f"the publisher did not answer {command!r}")
        return self._conn.recv()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._conn.send("stop")
            self._conn.poll(20)
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
