"""Media-plane settings as the control plane sees them: SFU nodes, ICE/TURN, the SIP gateway."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from confbridge.setting_types import HostPort, SecretText, http_base_url, split_host_port
from confbridge_kernel.ports import DEFAULT_UDP_PORT, check_port_range
from confbridge_kernel.redact import (
    TURN_SECRET_MIN_CHARS,
    TURN_SECRET_TOO_SHORT,
    Secret,
)

# The same placeholder as the worker's default, so that a development setup works unconfigured.
DEFAULT_NODE_SECRET = "change-me-in-production"


class IceServer(BaseModel):
    """A STUN/TURN server handed to terminals (the WebRTC `RTCIceServer` dictionary)."""

    model_config = ConfigDict(extra="forbid")

    urls: str | list[str] = Field(min_length=1)
    username: str | None = None
    credential: SecretText | None = None


class TurnSettings(BaseModel):
    """TURN with time-limited credentials (the TURN REST convention, coturn's
    `use-auth-secret`): terminals get username `<expiry unix time>:<site id>` and password
    base64(HMAC-SHA1(shared_secret, username)); coturn checks them with the same secret."""

    model_config = ConfigDict(extra="forbid")

    # e.g. ["turn:turn.example.vn:3478?transport=udp", "turn:turn.example.vn:3478?transport=tcp",
    # "turns:turn.example.vn:443?transport=tcp"]: UDP, then TCP and TLS for halls whose network
    # blocks UDP (browsers try them all; the agent one at a time, see README).
    urls: list[str] = Field(default_factory=list)
    # coturn's static-auth-secret; empty: no TURN credentials are handed out.
    shared_secret: SecretText | None = None
    # A credential is valid this long (at most; a join grant's credential ends with the grant).
    credential_ttl_s: int = Field(default=12 * 3600, ge=60, le=7 * 24 * 3600)

    @field_validator("urls")
    @classmethod
    def _turn_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("turn:", "turns:")):
                raise ValueError(f"must start with turn: or turns:, got {url!r}")
            transport = parse_qs(urlparse(url).query).get("transport", [""])[0]
            # RFC 7065: turn: over UDP or TCP, turns: over TLS on TCP (browsers have no DTLS)
            allowed = ("", "tcp") if url.startswith("turns:") else ("", "udp", "tcp")
            if transport not in allowed:
                raise ValueError(
                    f"{url!r}: transport must be {' or '.join(t for t in allowed if t)}, "
                    f"got {transport!r}"
                )
        return value

    @field_validator("shared_secret")
    @classmethod
    def _strong_turn_secret(cls, value: str | None) -> str | None:
        if not value:
            return None  # empty: no TURN credentials are handed out
        if len(value.strip()) < TURN_SECRET_MIN_CHARS:
            raise ValueError(TURN_SECRET_TOO_SHORT)
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.urls and self.shared_secret)


class SfuSettings(BaseModel):
    """How the control plane and the SFU workers reach and trust each other."""

    # Terminals send WHIP/WHEP here, so it must be reachable from the halls.
    public_url: str = "http://127.0.0.1:8001"
    # The worker's admin API as seen from the control plane; empty: same as public_url.
    internal_url: str | None = None
    # Opens /metrics (control plane and workers) for Prometheus, and workers' read-only
    # GET /rooms. Nodes authenticate with their own keys (`confbridge nodes enroll`).
    node_secret: SecretText = Secret(DEFAULT_NODE_SECRET)
    # Ed25519 private key (PEM) that signs join grants; empty: `<data_dir>/grant-key.pem`.
    grant_key_file: Path | None = None
    # Upper bound of a grant's life; the grant also ends shortly after its meeting.
    grant_ttl_s: int = Field(default=4 * 3600, ge=60, le=48 * 3600)
    join_early_min: int = Field(default=15, ge=0, le=24 * 60)
    ice_servers: list[IceServer] = Field(default_factory=list)
    # `confbridge serve` starts this many worker processes beside the control plane (0: none,
    # e.g. when workers run on other machines); by default one per core, and a room that
    # outgrows its worker is extended to the others.
    local_workers: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 64), ge=0, le=64)
    # Address the local worker gathers media (ICE host candidates) on.
    media_ip: str = "127.0.0.1"
    # Address announced to terminals instead of media_ip (a worker behind a 1:1 NAT).
    announced_ip: str | None = None
    # Media sockets of the local workers. "single": all peers of a worker on one UDP port,
    # udp_port for the first worker and the next ports for the others (0: ports the system
    # picks); "range": a socket per peer in udp_port_min..udp_port_max.
    udp_mode: Literal["single", "range"] = "single"
    udp_port: int = Field(default=DEFAULT_UDP_PORT, ge=0, le=65535)
    # Port announced for the first worker instead of udp_port (NAT port forwarding); +1 each.
    announced_port: int | None = Field(default=None, ge=1, le=65535)
    # Single mode: a packet fanned out to many viewers leaves in one sendmmsg(2) call.
    udp_batch: bool = True
    # Single mode: workers are ICE-lite agents (they answer checks and send none).
    ice_lite: bool = True
    # The local workers' recordings also get one mixed audio track (speaker and chair decoded
    # and encoded again: about 1.5 % of a core per recorded meeting).
    recording_mixed_audio: bool = False
    # UDP ports of per-peer media sockets (range mode) and of SIP legs' RTP, for firewall
    # rules (0 and 0: ephemeral).
    udp_port_min: int = Field(default=0, ge=0, le=65535)
    udp_port_max: int = Field(default=0, ge=0, le=65535)
    # TURN relay with time-limited credentials, handed out beside `ice_servers`.
    turn: TurnSettings = TurnSettings()

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return http_base_url(value)

    @field_validator("internal_url")
    @classmethod
    def _internal_url(cls, value: str | None) -> str | None:
        return http_base_url(value) if value else None

    @model_validator(mode="after")
    def _valid_port_range(self) -> SfuSettings:
        check_port_range(self.udp_port_min, self.udp_port_max)
        if self.announced_port is not None and self.udp_mode != "single":
            raise ValueError("announced_port: applies to udp_mode single only")
        for name in ("udp_port", "announced_port"):
            first = getattr(self, name)
            if first and first + max(self.local_workers, 1) - 1 > 65535:
                raise ValueError(
                    f"{name}: {self.local_workers} local workers need ports {first} and up, "
                    "beyond 65535"
                )
        return self

    @property
    def worker_admin_url(self) -> str:
        """Base URL of the worker's admin API (`internal_url`, else `public_url`)."""
        return self.internal_url or self.public_url


class SipSettings(BaseModel):
    """SIP room systems dialling in (`confbridge sip`, the gateway) and the bridge dialling out."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # UDP and TCP signalling; host:port, an IPv6 host in brackets.
    listen: HostPort = "127.0.0.1:5060"
    # Meetings are dialled at sip:<meeting number>@<domain>; none: the listen host.
    domain: str | None = Field(default=None, min_length=1, max_length=253)
    # The address put into Contact and SDP when the gateway is behind NAT; none: the listen host.
    public_address: str | None = Field(default=None, min_length=1, max_length=253)
    # SIP over TLS (sips:); needs the certificate and its private key (PEM files).
    tls_listen: HostPort | None = None
    tls_certificate: Path | None = None
    # validate_default: checked when absent (required with tls_listen).
    tls_private_key: Path | None = Field(default=None, validate_default=True)
    # Room systems may dial in this many minutes before the start.
    join_early_min: int = Field(default=10, ge=0, le=24 * 60)
    # The bridge dials the upstream bridge (`upstream_sip_uri`) this many minutes before start.
    dial_out_lead_min: int = Field(default=1, ge=0, le=60)
    # SIP requests per second accepted from one source address; more are dropped.
    rate_limit_per_source: int = Field(default=20, ge=1, le=10_000)
    # Wrong PINs in one call before the gateway hangs up.
    max_pin_attempts: int = Field(default=3, ge=1, le=10)

    @field_validator("domain", "public_address")
    @classmethod
    def _no_spaces(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c.isspace() for c in value)):
            raise ValueError(f"a host name or address without spaces, got {value!r}")
        return value.lower() if value is not None else None

    @field_validator("tls_private_key")
    @classmethod
    def _tls_files(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if info.data.get("tls_listen") and not (value and info.data.get("tls_certificate")):
            raise ValueError(
                "sip.tls_listen needs both sip.tls_certificate and sip.tls_private_key (PEM)"
            )
        return value

    @property
    def listen_host(self) -> str:
        return split_host_port(self.listen)[0]

    @property
    def sip_domain(self) -> str:
        """The domain of meeting addresses: `domain`, else the listen host."""
        return self.domain or self.listen_host
