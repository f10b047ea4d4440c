"""coturn's `turnserver` with time-limited credentials (TURN REST, `use-auth-secret`) on a
given address: UDP and TCP on one port, TLS on another when a certificate is given; and a
self-signed certificate for it."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TURNSERVER = shutil.which("turnserver")
TURN_SECRET = "turn-shared-secret-for-tests"
TURN_START_TIMEOUT_S = 10.0


def skip_without_coturn() -> None:
    """Skip the calling module where coturn is missing, except in CI (there it must exist)."""
    if TURNSERVER is None and not os.environ.get("CI"):
        pytest.skip(
            "coturn's turnserver is not installed (CI installs it)", allow_module_level=True
        )


def free_port(address: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `address` (at the time of asking)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((address, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((address, port))
                except OSError:
                    continue
                return port


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for an IP address, as a private CA would issue it."""

    cert: Path
    key: Path


def self_signed_certificate(directory: Path, address: str) -> Certificate:
    """A self-signed certificate (its own CA) whose subjectAltName is `address`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"turn {address}")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    made = Certificate(directory / "turn-cert.pem", directory / "turn-key.pem")
    made.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    made.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return made


def turn_settings(coturn: Coturn) -> dict[str, Any]:
    """`sfu.turn` settings for all of `coturn`'s URLs (UDP, TCP, then TLS if it has it)."""
    urls = [coturn.url, coturn.tcp_url, *([coturn.tls_url] if coturn.tls_url else [])]
    return {"urls": urls, "shared_secret": TURN_SECRET, "credential_ttl_s": 600}


class Coturn:
    """`turnserver` on `address` with a temporary configuration; its log is kept. UDP and TCP
    on `port`; TLS on `tls_port` when `certificate` is given. Relays from `address` too."""

    def __init__(
        self, workdir: Path, address: str = "127.0.0.1", certificate: Certificate | None = None
    ) -> None:
        self.address = address
        self.port = free_port(address)
        self.tls_port = free_port(address) if certificate else None
        relay_low = 42_000 + (self.port % 200) * 20
        self.log = workdir / "turnserver.log"
        self.config = workdir / "turnserver.conf"
        if certificate is not None:
            tls = [
                f"tls-listening-port={self.tls_port}",
                f"cert={certificate.cert}",
                f"pkey={certificate.key}",
            ]
        else:
            tls = ["no-tls"]
        self.config.write_text(
            "\n".join(
                [
                    f"listening-ip={address}",
                    f"relay-ip={address}",
                    f"listening-port={self.port}",
                    f"min-port={relay_low}",
                    f"max-port={relay_low + 19}",
                    "use-auth-secret",
                    f"static-auth-secret={TURN_SECRET}",
                    "realm=confbridge.test",
                    # the bridge is on this machine too: coturn refuses loopback peers unless told
                    "allow-loopback-peers",
                    *tls,
                    "no-dtls",
                    "no-cli",
                    "fingerprint",
                    f"pidfile={workdir / 'turnserver.pid'}",
                    f"userdb={workdir / 'turndb'}",
                    "simple-log",
                    "verbose",
                    f"log-file={self.log}",
                    "",
                ]
            )
        )
        where = f"{address}:{self.port}"
        self.url = f"turn:{where}?transport=udp"
        self.tcp_url = f"turn:{where}?transport=tcp"
        self.tls_url = f"turns:{address}:{self.tls_port}?transport=tcp" if certificate else None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Coturn:
        assert TURNSERVER is not None
        self._process = subprocess.Popen(
            [TURNSERVER, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + TURN_START_TIMEOUT_S
        while not self._listening():
            assert self._process.poll() is None, f"turnserver exited: {self.log_text()}"
            assert time.monotonic() < deadline, "turnserver did not start"
            time.sleep(0.1)
        return self

    def _listening(self) -> bool:
        text = self.log_text()
        listeners = [f"UDP listener opened on: {self.address}:{self.port}"]
        if self.tls_port is not None:
            listeners.append(f"TLS/TCP listener opened on : {self.address}:{self.tls_port}")
        return all(listener in text for listener in listeners)

    def log_text(self) -> str:
        # coturn adds the date to the file name it is given
        found = sorted(self.log.parent.glob("turnserver*.log"))
        return "\n".join(f.read_text(errors="replace") for f in found)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
