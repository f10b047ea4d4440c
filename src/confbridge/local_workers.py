"""SFU worker processes that `confbridge serve` runs beside the control plane."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from urllib.parse import urlparse

from confbridge.bridge.grants import PUBLIC_KEY_FILENAME, write_public_key
from confbridge.settings import Settings

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 10.0


def _next_port(url: str, offset: int) -> str:
    """`url` with its port raised by `offset` (worker i listens on the base port + i)."""
    if offset == 0:
        return url
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return parts._replace(netloc=f"{host}:{port + offset}").geturl()


class LocalWorkers:
    """Owns the worker subprocesses: `start()` launches them, `close()` stops them."""

    def __init__(self, settings: Settings, *, control_url: str) -> None:
        self._settings = settings
        self._control_url = control_url
        self._processes: list[subprocess.Popen[bytes]] = []

    def environment(self, index: int) -> dict[str, str]:
        settings = self._settings
        public_key = write_public_key(
            settings.grant_key_path, settings.data_dir / PUBLIC_KEY_FILENAME
        )
        port = urlparse(settings.sfu.worker_admin_url).port or 8001
        environment = {
            **os.environ,
            "CONFBRIDGE_SFU_NODE_ID": f"local-{index}",
            "CONFBRIDGE_SFU_PORT": str(port + index),
            # each worker registers with its own address (the next port for each one)
            "CONFBRIDGE_SFU_PUBLIC_URL": _next_port(settings.sfu.public_url, index),
            "CONFBRIDGE_SFU_INTERNAL_URL": _next_port(settings.sfu.worker_admin_url, index),
            "CONFBRIDGE_SFU_MEDIA_IP": settings.sfu.media_ip,
            "CONFBRIDGE_SFU_CONTROL_URL": self._control_url,
            "CONFBRIDGE_SFU_NODE_SECRET": settings.sfu.node_secret,
            "CONFBRIDGE_SFU_GRANT_PUBLIC_KEY_FILE": str(public_key),
            "CONFBRIDGE_SFU_SPOOL_DIR": str(settings.data_dir / f"sfu-spool-{index}"),
            "CONFBRIDGE_SFU_LOG_FORMAT": settings.log_format,
            "CONFBRIDGE_SFU_UDP_PORT_MIN": str(settings.sfu.udp_port_min),
            "CONFBRIDGE_SFU_UDP_PORT_MAX": str(settings.sfu.udp_port_max),
            # handed to WHIP/WHEP clients in Link headers, as in join answers
            "CONFBRIDGE_SFU_ICE_SERVERS": json.dumps(
                [server.model_dump(exclude_none=True) for server in settings.sfu.ice_servers]
            ),
        }
        turn = settings.sfu.turn
        if turn.enabled:
            # the worker mints its own TURN credentials for its Link headers
            environment["CONFBRIDGE_SFU_TURN_URLS"] = json.dumps(turn.urls)
            environment["CONFBRIDGE_SFU_TURN_SECRET"] = turn.shared_secret or ""
            environment["CONFBRIDGE_SFU_TURN_CREDENTIAL_TTL_S"] = str(turn.credential_ttl_s)
        if settings.sfu.announced_ip:
            environment["CONFBRIDGE_SFU_ANNOUNCED_IP"] = settings.sfu.announced_ip
        return environment

    @property
    def processes(self) -> tuple[subprocess.Popen[bytes], ...]:
        """The worker processes, in the order of their node ids (`local-<index>`)."""
        return tuple(self._processes)

    def start(self) -> None:
        for index in range(self._settings.sfu.local_workers):
            command = [sys.executable, "-m", "confbridge.cli", "sfu"]
            process = subprocess.Popen(command, env=self.environment(index))
            self._processes.append(process)
            log.info("started SFU worker %d (pid %d)", index, process.pid)

    def close(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
