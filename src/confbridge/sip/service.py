"""The SIP gateway as `serve` runs it: a thread with its own event loop beside the HTTP
server (one gateway whatever `--processes` is), started again if it ever fails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading

from prometheus_client import CollectorRegistry

from confbridge.db import Database
from confbridge.settings import Settings
from confbridge.signing import signer_for
from confbridge.sip.gateway import SipGateway
from confbridge.sip.metrics import GatewayMetrics

log = logging.getLogger(__name__)
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
START_TIMEOUT_S = 10.0


def split_host_port(text: str, default_port: int = 5060) -> tuple[str, int]:
    """`127.0.0.1:5060`, `[::1]:5060` or a bare host."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    return host, int(port) if port else default_port


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    sip = settings.sip
    if not (sip.tls_listen and sip.tls_certificate and sip.tls_private_key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(sip.tls_certificate), str(sip.tls_private_key))
    return context


async def run_gateway(
    settings: Settings,
    database: Database,
    stop: asyncio.Event,
    started: threading.Event,
    metrics: GatewayMetrics | None = None,
) -> SipGateway:
    """Listen until `stop` is set; `started` is set once the sockets are open."""
    gateway = SipGateway(settings, database, signer_for(settings.grant_key_path), metrics)
    host, port = split_host_port(settings.sip.listen)
    context = tls_context(settings)
    tls = None
    if context is not None and settings.sip.tls_listen:
        tls_host, tls_port = split_host_port(settings.sip.tls_listen, 5061)
        tls = (tls_host, tls_port, context)
    await gateway.start(host, port, tls=tls)
    started.set()
    try:
        await stop.wait()
    finally:
        await gateway.close()
    return gateway


class SipService:
    """Owns the gateway's thread; `start()` returns once it listens (or has failed once).
    Its counters go to `registry` (the control plane's, so that `/metrics` shows them) and
    outlive a gateway started again after a failure."""

    def __init__(
        self, settings: Settings, database: Database, registry: CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.database = database
        self.metrics = GatewayMetrics(registry)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._closing = threading.Event()
        self.started = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sip-gateway", daemon=True)
        self._thread.start()
        self.started.wait(timeout=START_TIMEOUT_S)

    def _run(self) -> None:
        attempt = 0
        while not self._closing.is_set():
            try:
                asyncio.run(self._serve())
                return
            except OSError as exc:
                log.error("SIP cannot listen on %s: %s", self.settings.sip.listen, exc)
            except Exception:
                log.exception("the SIP gateway failed")
            self.started.set()  # serve goes on without SIP meanwhile
            delay = RESTART_DELAYS_S[min(attempt, len(RESTART_DELAYS_S) - 1)]
            attempt += 1
            if self._closing.wait(delay):
                return

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._closing.is_set():
            return
        await run_gateway(self.settings, self.database, self._stop, self.started, self.metrics)

    def close(self) -> None:
        self._closing.set()
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT_S)
            self._thread = None
