"""The worker's registration with the control plane: a heartbeat with its load every few s."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import httpx

from confbridge_kernel import __version__
from confbridge_kernel.contracts import (
    NODE_HEARTBEAT_PATH,
    GrantRevocation,
    NodeHeartbeat,
    NodeHeartbeatAck,
    NodeLoad,
)
from confbridge_kernel.tasks import OwnedTask
from sfu.metrics import ObservedWorker, WorkerMetrics

if TYPE_CHECKING:
    from sfu.config import WorkerSettings

log = logging.getLogger(__name__)


FIRST_RETRY_S = 1.0
"""Until the control plane has heard from the worker once, retry this often (it may start
after the worker)."""
REQUEST_TIMEOUT_S = 5.0
LISTEN_CHECK_INTERVAL_S = 0.05
ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class ReportingWorker(ObservedWorker, Protocol):
    """What the heartbeat reads of a worker (settings, rooms, load, spool) and the revocation
    list it hands back from the control plane's answer (not `sfu.worker.Worker` itself, which
    builds the heartbeat)."""

    @property
    def settings(self) -> WorkerSettings: ...

    @property
    def metrics(self) -> WorkerMetrics: ...

    async def apply_revocations(self, revocations: Iterable[GrantRevocation]) -> None: ...


class Heartbeat:
    """Owns one task that reports the worker to the control plane; `start()` / `close()`."""

    def __init__(self, worker: ReportingWorker) -> None:
        self._worker = worker
        settings = worker.settings
        self._url = settings.control_url.rstrip("/") + NODE_HEARTBEAT_PATH
        self._headers = {"Authorization": f"Bearer {settings.node_key or ''}"}
        self._task = OwnedTask("sfu-heartbeat")
        self._mark = (time.monotonic(), time.process_time(), 0)
        # this process: the control plane ends the sessions of the previous one when it changes
        self.incarnation = uuid.uuid4().hex
        self.started_at = datetime.now(UTC)
        self.draining = False
        self.beats = 0

    def start(self) -> None:
        self._task.start(self._run())

    async def close(self) -> None:
        await self._task.close()

    def message(self) -> NodeHeartbeat:
        """The heartbeat as of now: load since the previous one."""
        worker, settings = self._worker, self._worker.settings
        wall, cpu = time.monotonic(), time.process_time()
        packets = worker.metrics.totals().packets_forwarded
        last_wall, last_cpu, last_packets = self._mark
        elapsed = max(wall - last_wall, 1e-3)
        self._mark = (wall, cpu, packets)
        peers = sum(
            1 for room in worker.rooms.values() for peer in room.peers.values() if peer.connected
        )
        return NodeHeartbeat(
            node_id=settings.node_id,
            public_url=settings.advertised_public_url,
            internal_url=settings.advertised_internal_url,
            version=__version__,
            capacity_peers=settings.capacity_peers,
            machine_id=settings.machine_id,
            region=settings.region,
            incarnation=self.incarnation,
            started_at=self.started_at,
            load=NodeLoad(
                rooms=len(worker.rooms),
                peers=peers,
                packets_per_s=max(0, packets - last_packets) / elapsed,
                cpu_ratio=max(0.0, cpu - last_cpu) / elapsed,
                spool_events=worker.reporter.depth if worker.reporter else 0,
            ),
        )

    async def _listening(self) -> None:
        """Wait until this worker accepts connections: registered before that, it would be
        sent joins it cannot answer yet (the HTTP server starts after the worker)."""
        settings = self._worker.settings
        host = ANY_ADDRESS.get(settings.host, settings.host)
        while True:
            try:
                _reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, settings.port), timeout=1.0
                )
            except (OSError, TimeoutError):
                await asyncio.sleep(LISTEN_CHECK_INTERVAL_S)
                continue
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
            return

    async def _run(self) -> None:
        await self._listening()
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, headers=self._headers) as http:
            while True:
                try:
                    await self._beat(http)
                except Exception as exc:  # unreachable or refusing: try again next round
                    log.warning("heartbeat to %s failed: %s", self._url, exc)
                interval = self._worker.settings.heartbeat_interval_s
                await asyncio.sleep(interval if self.beats else min(FIRST_RETRY_S, interval))

    async def _beat(self, http: httpx.AsyncClient) -> None:
        body = self.message().model_dump(mode="json")
        response = await http.post(self._url, json=body)
        if response.status_code == 401:
            log.error(
                "the control plane refused this node's key; enrol node %s "
                "(`confbridge nodes enroll`) and set CONFBRIDGE_SFU_NODE_KEY",
                self._worker.settings.node_id,
            )
        elif response.status_code in (403, 422):
            log.error("the control plane refused the registration: %s", response.text[:300])
        response.raise_for_status()
        ack = NodeHeartbeatAck.model_validate_json(response.content)
        if ack.draining != self.draining:
            log.info("node %s is %s", ack.node_id, "draining" if ack.draining else "in service")
        self.draining = ack.draining
        await self._worker.apply_revocations(ack.revocations)
        if not self.beats:
            log.info("registered with the control plane as %s", ack.node_id)
        self.beats += 1
