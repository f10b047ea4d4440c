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
            "CONFBRIDGE_SFU_MEDIA_IP": settings.sfu.media_ip,
            "CONFBRIDGE_SFU_CONTROL_URL": self._control_url,
            "CONFBRIDGE_SFU_NODE_SECRET": settings.sfu.node_secret,
            "CONFBRIDGE_SFU_GRANT_PUBLIC_KEY_FILE": str(public_key),
            "CONFBRIDGE_SFU_SPOOL_DIR": str(settings.data_dir / f"sfu-spool-{index}"),
            "CONFBRIDGE_SFU_UDP_PORT_MIN": str(settings.sfu.udp_port_min),
            "CONFBRIDGE_SFU_UDP_PORT_MAX": str(settings.sfu.udp_port_max),
            # handed to WHIP/WHEP clients in Link headers, as in join answers
            "CONFBRIDGE_SFU_ICE_SERVERS": json.dumps(
                [server.model_dump(exclude_none=True) for server in settings.sfu.ice_servers]
            ),
        }
        if settings.sfu.announced_ip:
            environment["CONFBRIDGE_SFU_ANNOUNCED_IP"] = settings.sfu.announced_ip
        return environment

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
