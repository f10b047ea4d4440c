"""Worker settings: environment variables `CONFBRIDGE_SFU_*`."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from confbridge_kernel.ports import DEFAULT_UDP_PORT, check_port_range
from confbridge_kernel.redact import (
    TURN_SECRET_MIN_CHARS,
    TURN_SECRET_TOO_SHORT,
    Secret,
    blank_reason,
    is_loopback,
    weakness,
)

DEFAULT_NODE_SECRET = "change-me-in-production"
# Credentials: masked in repr(), so a settings object logged never shows them.
SecretText = Annotated[str, AfterValidator(Secret)]


def _machine_id() -> str:
    """This machine's identity (systemd's machine id, else the host name)."""
    try:
        return Path("/etc/machine-id").read_text().strip() or socket.gethostname()
    except OSError:
        return socket.gethostname()


class WorkerSettings(BaseSettings):
    """One SFU worker process."""

    model_config = SettingsConfigDict(env_prefix="CONFBRIDGE_SFU_", extra="ignore")

    node_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-sfu")
    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=1, le=65535)
    # The address media (ICE host candidates) is gathered on and announced to peers.
    media_ip: str = "127.0.0.1"
    # Announced in host candidates instead of media_ip, for a worker behind a 1:1 NAT.
    announced_ip: str | None = None
    # How peers' media (ICE) sockets are bound. "single": every peer of this worker on one UDP
    # port, `udp_port` (one firewall rule; 0: a port the system picks at start). "range": a
    # socket per peer, in udp_port_min..udp_port_max.
    udp_mode: Literal["single", "range"] = "single"
    udp_port: int = Field(default=DEFAULT_UDP_PORT, ge=0, le=65535)
    # Announced in host candidates instead of the bound port (single mode), for a NAT or a
    # firewall that forwards another port to this one.
    announced_port: int | None = Field(default=None, ge=1, le=65535)
    # Single mode: a packet fanned out to many viewers leaves in one sendmmsg(2) call.
    udp_batch: bool = True
    # Single mode: the worker is an ICE-lite agent (a=ice-lite; it answers the peer's checks
    # and sends none, consent kept by the peer's checks). False: a full ICE agent, as in range
    # mode.
    ice_lite: bool = True
    # UDP ports per-peer media sockets (range mode) and SIP legs' RTP bind in (firewall rules);
    # 0 and 0: any ephemeral port.
    udp_port_min: int = Field(default=0, ge=0, le=65535)
    udp_port_max: int = Field(default=0, ge=0, le=65535)
    control_url: str = "http://127.0.0.1:8000"
    # Where terminals reach this worker (WHIP/WHEP) and where the control plane reaches its
    # admin API; reported in heartbeats. Empty: http://<host>:<port>.
    public_url: str | None = None
    internal_url: str | None = None
    # Workers of one machine extend rooms to each other over pipes; other machines cascade.
    machine_id: str = Field(default_factory=_machine_id, max_length=100)
    # The province this node serves (its code, e.g. "22" for Quảng Ninh): the control plane
    # sends that province's sites here, relaying the room from its origin when it is elsewhere.
    region: str = Field(default="", max_length=20)
    # Sessions (WHIP + WHEP) this worker accepts before the control plane places rooms elsewhere.
    capacity_peers: int = Field(default=300, ge=1)
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=60)
    # Admission of new WHIP/WHEP sessions under a join storm (sfu.admission): at most this many
    # in their ICE/DTLS handshake at once (0: no admission control), at most this many new ones
    # a second (a bucket of `join_burst`), none while the event loop runs later than
    # `join_max_loop_lag_ms` (0: not checked); a join waits up to `join_queue_s` for its turn,
    # then gets 503 with Retry-After.
    join_max_handshakes: int = Field(default=12, ge=0, le=1000)
    join_rate_per_s: float = Field(default=20.0, gt=0, le=1000)
    join_burst: int = Field(default=10, ge=1, le=1000)
    join_queue_s: float = Field(default=2.0, ge=0, le=30)
    join_max_loop_lag_ms: float = Field(default=50.0, ge=0, le=10000)
    # ICE consent freshness (RFC 7675): a check every interval (randomised ×0.8–1.2); a peer
    # that leaves this many in a row unanswered is dropped (defaults: aioice's, about 30 s).
    ice_consent_interval_s: float = Field(default=5.0, gt=0, le=60)
    ice_consent_failures: int = Field(default=6, ge=1, le=100)
    # This node's own key, from its enrolment on the control plane (`confbridge nodes enroll`;
    # `serve` enrols its local workers itself): heartbeats, events and the grant key fetch.
    node_key: SecretText | None = None
    # Only for reading the worker's /metrics and /rooms (Prometheus); never for changes.
    node_secret: SecretText = Secret(DEFAULT_NODE_SECRET)
    # Set by `serve` for its local workers: the worker exits when that process goes.
    parent_pid: int | None = Field(default=None, ge=1)
    grant_public_key_file: Path = Path("data/grant-key.pub.pem")
    spool_dir: Path = Path("data/sfu-spool")
    # Where rooms' recordings are written (`<id>.webm`, and `<id>.json` once finished).
    recordings_dir: Path = Path("data/recordings")
    # Each recording also gets one mixed audio track (the speaker's and the chair's microphones,
    # decoded and encoded again: about 1.5 % of a core per recorded meeting).
    recording_mixed_audio: bool = False
    ice_servers: list[dict[str, Any]] = Field(default_factory=list)
    # TURN with time-limited credentials minted per WHIP/WHEP answer (its Link headers):
    # the server URLs, coturn's static-auth-secret and each credential's lifetime.
    turn_urls: list[str] = Field(default_factory=list)
    turn_secret: SecretText | None = None
    turn_credential_ttl_s: int = Field(default=12 * 3600, ge=60)
    # Video codec of every room: publishers and viewers are answered with this one only.
    video_codec: str = "video/VP8"
    # A room stays open this long after its meeting's end, then closes.
    room_grace_s: float = Field(default=300.0, ge=0)
    stats_interval_s: float = Field(default=10.0, gt=0)
    # auto: text when stderr is a terminal, else JSON (`serve` passes its own decision)
    log_format: Literal["auto", "json", "text"] = "auto"
    # Browsers on the control plane's pages call WHIP/WHEP from another origin.
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])

    @property
    def advertised_public_url(self) -> str:
        """`public_url`, or this worker's own listening address."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def advertised_internal_url(self) -> str:
        return (self.internal_url or self.advertised_public_url).rstrip("/")

    @property
    def udp_port_range(self) -> tuple[int, int] | None:
        """(first, last) media port, or None for ephemeral ports."""
        if not self.udp_port_min and not self.udp_port_max:
            return None
        return self.udp_port_min, self.udp_port_max

    @model_validator(mode="after")
    def _valid_port_range(self) -> WorkerSettings:
        check_port_range(self.udp_port_min, self.udp_port_max)
        if self.announced_port is not None and self.udp_mode != "single":
            raise ValueError("announced_port: applies to udp_mode single only")
        return self

    @field_validator("turn_secret")
    @classmethod
    def _strong_turn_secret(cls, value: str | None) -> str | None:
        if value and len(value.strip()) < TURN_SECRET_MIN_CHARS:
            raise ValueError(TURN_SECRET_TOO_SHORT)
        return value or None

    @model_validator(mode="after")
    def _no_default_secret_off_loopback(self) -> WorkerSettings:
        # The node secret opens /metrics and /rooms: a worker others can reach must not
        # accept the well-known default.
        blank = blank_reason(self.node_secret)
        if blank:
            raise ValueError(f"node_secret: {blank}; set CONFBRIDGE_SFU_NODE_SECRET")
        if is_loopback(self.host):
            return self
        if self.node_secret == DEFAULT_NODE_SECRET:
            raise ValueError(
                "node_secret: the default value is refused when listening beyond loopback; "
                "set CONFBRIDGE_SFU_NODE_SECRET"
            )
        reason = weakness(self.node_secret)
        if reason:
            raise ValueError(
                f"node_secret: {reason}, refused when listening on {self.host} (beyond "
                "loopback); set CONFBRIDGE_SFU_NODE_SECRET to a random string"
            )
        return self
