"""Settings: `config.yaml`, overridden by `CONFBRIDGE_*` environment variables."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from confbridge.media_settings import SfuSettings, SipSettings
from confbridge.packaged import packaged_path
from confbridge.setting_types import SecretText, http_base_url
from confbridge_kernel.redact import (
    PUBLIC_PLACEHOLDERS,
    Secret,
    SecretUrl,
    blank_reason,
    is_loopback,
    weakness,
)

# Long enough for HMAC-SHA256 (PyJWT warns below 32 bytes); public, so refused in production
# and whenever the service listens beyond loopback.
DEFAULT_SECRET = "development-only-secret-key-not-for-use-beyond-loopback"
GRANT_KEY_FILENAME = "grant-key.pem"
SQLITE_FILENAME = "confbridge.sqlite3"
CONFIG_ENV_VAR = "CONFBRIDGE_CONFIG"
DEFAULT_CONFIG_PATH = Path("config.yaml")
# A database URL with its password masked in repr() (a settings object printed or logged).
DatabaseUrl = Annotated[str, AfterValidator(SecretUrl)]


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line naming the key."""


class MeetingSettings(BaseModel):
    default_tz: str = "Asia/Ho_Chi_Minh"
    # Occurrences of open-ended rules are materialised this far ahead; the server extends daily.
    horizon_days: int = Field(default=400, ge=7, le=3660)
    max_occurrences_per_series: int = Field(default=2000, ge=1, le=100_000)
    max_duration_min: int = Field(default=24 * 60, ge=1)
    agenda_size: int = Field(default=10, ge=1, le=100)
    # A meeting nobody ended or extended runs over its end by this much (the halls stay
    # connected, the console shows a notice), then ends by itself.
    overrun_grace_min: int = Field(default=10, ge=0, le=240)

    @field_validator("default_tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class TerminalSettings(BaseModel):
    """Ward-hall terminals: pairing, heartbeats, readiness before a meeting."""

    model_config = ConfigDict(extra="forbid")

    # Terminals report this often...
    heartbeat_interval_s: int = Field(default=30, ge=1, le=3600)
    # ...and count as offline when silent for longer than this.
    offline_after_s: int = Field(default=90, ge=2, le=24 * 3600)
    # This many minutes before an occurrence, every invited site needs a terminal online, or
    # IT staff get a `terminal_offline` alert.
    readiness_lead_min: int = Field(default=30, ge=0, le=24 * 60)
    # A pairing code works once, within this many minutes.
    pairing_code_ttl_min: int = Field(default=15, ge=1, le=24 * 60)
    # Wrong pairing codes from one address within the window before it must wait.
    pairing_max_failures: int = Field(default=10, ge=1, le=1000)
    pairing_failure_window_s: int = Field(default=300, ge=1, le=24 * 3600)


# The meeting kinds of `meetings.models.MeetingKind`, repeated here because settings are loaded
# before any model (a test checks that the two lists agree).
KindName = Literal["giao_ban", "so_ket", "tong_ket", "tap_huan", "chuyen_de", "khac"]


class AttendanceRule(BaseModel):
    """How a site's media at an occurrence becomes present / partial / absent."""

    model_config = ConfigDict(extra="forbid")

    # Present: media flowed from or to the hall for at least this share of the scheduled
    # meeting; partial: less; absent: none (a bare connection is not attendance).
    present_min_ratio: float = Field(default=0.8, gt=0, le=1)
    # A first join later than start + this is "joined late".
    late_grace_min: int = Field(default=5, ge=0, le=24 * 60)
    # A last leave earlier than end - this is "left early".
    early_leave_grace_min: int = Field(default=5, ge=0, le=24 * 60)


class Target(BaseModel):
    """One target (chỉ tiêu) the reports show their actual figures against."""

    model_config = ConfigDict(extra="forbid")

    # online_ratio: occurrences of `kinds` held online or hybrid and verified / all held;
    # communes_connected: communes with a site that had media in a verified meeting / all.
    metric: Literal["online_ratio", "communes_connected"]
    kinds: list[KindName] = Field(default_factory=list)
    min_ratio: float = Field(ge=0, le=1)
    label_vi: str = Field(min_length=1, max_length=200)
    label_en: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _kinds_for_online_ratio(self) -> Target:
        if self.metric == "online_ratio" and not self.kinds:
            raise ValueError("kinds: an online_ratio target needs at least one meeting kind")
        if self.metric == "communes_connected" and self.kinds:
            raise ValueError("kinds: a communes_connected target takes no meeting kinds")
        return self


def _default_targets() -> dict[str, Target]:
    return {
        "online_ratio": Target(
            metric="online_ratio",
            kinds=["so_ket", "tong_ket", "tap_huan"],
            min_ratio=0.80,
            label_vi="Tỷ lệ cuộc họp sơ kết, tổng kết, tập huấn trực tuyến",
            label_en="Review and training meetings held online",
        ),
        "briefing_online_ratio": Target(
            metric="online_ratio",
            kinds=["giao_ban"],
            min_ratio=0.30,
            label_vi="Tỷ lệ cuộc họp giao ban trực tuyến",
            label_en="Briefings held online",
        ),
        "communes_connected": Target(
            metric="communes_connected",
            min_ratio=1.00,
            label_vi="Tỷ lệ xã, phường, đặc khu kết nối hội nghị truyền hình",
            label_en="Communes connected to the video bridge",
        ),
    }


class ReportSettings(BaseModel):
    """Attendance rule and the targets of the reports."""

    model_config = ConfigDict(extra="forbid")

    attendance: AttendanceRule = AttendanceRule()
    # An online or hybrid meeting counts as held on the bridge (verified) when the chair site
    # and at least one invited site had media flowing for this share of its scheduled time.
    verified_min_ratio: float = Field(default=0.5, gt=0, le=1)
    # Keyed by a short name (shown in exports); replacing the block replaces all targets.
    targets: dict[str, Target] = Field(default_factory=_default_targets)
    # A province's own targets, by its unit code, in place of `targets` in reports of its
    # units (one installation serving several provinces).
    province_targets: dict[str, dict[str, Target]] = Field(default_factory=dict)


class AlertSettings(BaseModel):
    """Health checks of the bridge and where their alerts go."""

    model_config = ConfigDict(extra="forbid")

    # New alerts are POSTed here as JSON (none: stored and shown only).
    webhook_url: str | None = None
    # Signs each webhook body: header X-ConfBridge-Signature: sha256=<HMAC-SHA256 hex>.
    # Required for a plain-http webhook beyond loopback (validate_default: checked when absent).
    webhook_secret: SecretText | None = Field(default=None, validate_default=True)
    delivery_max_attempts: int = Field(default=8, ge=1, le=100)
    check_interval_s: float = Field(default=5.0, gt=0, le=300)
    # A site's link is bad above this loss or round-trip time...
    link_loss_ratio: float = Field(default=0.05, gt=0, le=1)
    link_rtt_ms: float = Field(default=400.0, gt=0)
    # ...and alerted on when bad for this long in a live meeting.
    link_bad_for_s: float = Field(default=30.0, ge=0, le=3600)
    # A node holding more undelivered events than this gets an alert.
    spool_events: int = Field(default=1000, ge=1)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        return http_base_url(value) if value else None

    @field_validator("webhook_secret")
    @classmethod
    def _signed_unless_private(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Over plain http anyone on the path can forge or alter an alert; the signature is
        # the receiver's only way to tell. Loopback (a local relay) needs none.
        url = info.data.get("webhook_url")
        if value is not None and blank_reason(value):
            raise ValueError(blank_reason(value))
        if url and url.startswith("http://") and not value:
            host = urlparse(url).hostname or ""
            if not is_loopback(host):
                raise ValueError(
                    f"required when alerts.webhook_url is plain http beyond loopback ({url}): "
                    "set CONFBRIDGE_ALERTS__WEBHOOK_SECRET so the receiver can check each "
                    "alert's signature, or use https"
                )
        return value


class LdapGroup(BaseModel):
    """A directory group and the membership its members get."""

    model_config = ConfigDict(extra="forbid")

    group: str = Field(min_length=1, max_length=500)  # the group's DN
    # the unit by its code (`units.code`); none: the whole installation
    unit_code: str | None = Field(default=None, max_length=40)
    role: Literal["admin", "secretariat", "it", "viewer"]


class LdapSettings(BaseModel):
    """Directory sign-in (LDAP or Active Directory); off without `url`.

    A user who is not a local account signs in with the directory: its password is checked by
    binding as `user_dn_template` (with the escaped username), its groups are searched under
    `group_base`, and `groups` maps them to memberships (refreshed at every sign-in). Local
    accounts are checked locally first, so a directory outage never locks them out.
    """

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=300)  # ldap://host:389 or ldaps://…
    user_dn_template: str = Field(
        default="uid={username},ou=people,dc=example,dc=vn", max_length=500
    )
    group_base: str = Field(default="ou=groups,dc=example,dc=vn", max_length=500)
    group_filter: str = Field(
        default="(&(objectClass=groupOfNames)(member={user_dn}))", max_length=500
    )
    groups: list[LdapGroup] = Field(default_factory=list, max_length=500)
    timeout_s: float = Field(default=3.0, gt=0, le=60)


class AuthSettings(BaseModel):
    """Limits on failed sign-ins (the API's and the web form's together)."""

    model_config = ConfigDict(extra="forbid")

    # This many failures for one username within the window lock that username for lockout_s
    # (counted for unknown usernames too, so a lock says nothing about who exists).
    max_failures_per_user: int = Field(default=10, ge=1, le=1000)
    # This many failures from one client address within the window lock that address.
    max_failures_per_address: int = Field(default=50, ge=1, le=100_000)
    failure_window_s: int = Field(default=900, ge=1, le=24 * 3600)
    lockout_s: int = Field(default=900, ge=1, le=24 * 3600)
    ldap: LdapSettings = Field(default_factory=LdapSettings)


class MailSettings(BaseModel):
    """The SMTP server that sends the meetings' notices (invitations, changes, reminders)."""

    model_config = ConfigDict(extra="forbid")

    # None: no e-mail is sent (notices stay queued and are shown on the occurrence page).
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    # Upgrade the connection with STARTTLS before sending (and before logging in).
    starttls: bool = False
    username: str | None = None
    password: SecretText | None = None
    from_address: str = Field(default="confbridge@localhost", min_length=3, max_length=254)
    # A notice the server refuses is tried again (1 min, 2, 4, ... apart) this many times.
    max_attempts: int = Field(default=6, ge=1, le=50)
    timeout_s: float = Field(default=20.0, gt=0, le=300)


class RecordSettings(BaseModel):
    """The meeting record's documents (tài liệu họp) and notices."""

    model_config = ConfigDict(extra="forbid")

    # An upload larger than this is refused (413).
    max_document_mb: int = Field(default=50, ge=1, le=2048)
    # Documents of an occurrence are served this long after its end, then 404 and purged.
    document_retention_days: int = Field(default=365, ge=1, le=36_500)
    mail: MailSettings = MailSettings()


class ObjectStoreSettings(BaseModel):
    """An S3-compatible object store (MinIO, SeaweedFS, Ceph RGW, AWS S3) for the meetings'
    documents and finished recordings, instead of the data dir and the workers' disks."""

    model_config = ConfigDict(extra="forbid")

    endpoint_url: str  # http(s)://host:port of the S3 API
    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]+[a-z0-9]$")
    access_key_id: str = Field(min_length=1)
    secret_access_key: SecretText
    region: str = "us-east-1"
    # Keys are written under this prefix (e.g. "hanoi/"), so one bucket can serve several bridges.
    prefix: str = Field(default="", max_length=200)
    # "path" (http://host/bucket/key) suits most self-hosted stores; "virtual" names the bucket
    # in the host name, as AWS prefers.
    addressing_style: Literal["path", "virtual"] = "path"
    timeout_s: float = Field(default=30.0, gt=0, le=600)

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_base_url(cls, value: str) -> str:
        return http_base_url(value)

    @field_validator("prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, value: str) -> str:
        value = value.strip("/")
        return f"{value}/" if value else ""


class DemoSettings(BaseModel):
    enabled: bool = True
    schedule_file: Path | None = None


class Settings(BaseSettings):
    """All settings of the control plane; one instance per process."""

    model_config = SettingsConfigDict(
        env_prefix="CONFBRIDGE_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("data")
    database_url: DatabaseUrl | None = None
    secret_key: SecretText = Secret(DEFAULT_SECRET)
    admin_password: SecretText | None = None
    access_token_ttl_min: int = Field(default=12 * 60, ge=1, le=30 * 24 * 60)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # The address users and terminals reach the control plane at (https://…): pairing links,
    # calendar subscription links; an https one also makes cookies Secure. None: taken from
    # the request, where that is safe.
    public_url: str | None = None
    # Redis (redis://host:6379/0) shared by control-plane replicas for live events (the pages'
    # updates); none: one process serves the pages.
    redis_url: str | None = None
    # Log lines as JSON objects (with the HTTP request id), or as text for reading in a terminal;
    # auto: text when stderr is a terminal, else JSON (journald, docker logs, files).
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    meetings: MeetingSettings = MeetingSettings()
    demo: DemoSettings = DemoSettings()
    sfu: SfuSettings = SfuSettings()
    alerts: AlertSettings = AlertSettings()
    reports: ReportSettings = ReportSettings()
    terminals: TerminalSettings = TerminalSettings()
    auth: AuthSettings = AuthSettings()
    sip: SipSettings = SipSettings()
    records: RecordSettings = RecordSettings()
    # None: documents under the data dir, recordings on the workers that wrote them.
    object_store: ObjectStoreSettings | None = None
    # Reverse proxies (addresses or CIDR blocks) whose X-Forwarded-For names the client; empty:
    # the header is ignored and a request comes from its connecting peer. A list in YAML; in
    # CONFBRIDGE_TRUSTED_PROXIES, comma-separated.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_trusted_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_trusted_proxies(cls, value: list[str]) -> list[str]:
        networks = []
        for entry in value:
            try:
                networks.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or CIDR block (e.g. 10.0.0.5, 10.0.0.0/8)"
                ) from None
        return networks

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_path = _config_path()
        if config_path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_path))
        return tuple(sources)

    @field_validator("public_url")
    @classmethod
    def _public_base_url(cls, value: str | None) -> str | None:
        return http_base_url(value) if value else None

    @model_validator(mode="after")
    def _secrets_fit_where_it_listens(self) -> Settings:
        problem = secret_problem(self, listen_host=self.host)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def grant_key_path(self) -> Path:
        """Where the join-grant signing key lives (created on first use)."""
        return self.sfu.grant_key_file or self.data_dir / GRANT_KEY_FILENAME

    @property
    def sip_domain(self) -> str:
        """The domain of meeting addresses (`sip:<meeting number>@<domain>`)."""
        return self.sip.sip_domain

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with an explicit driver; SQLite under data_dir by default."""
        if not self.database_url:
            return f"sqlite:///{self.data_dir / SQLITE_FILENAME}"
        return normalise_database_url(self.database_url)


def secret_problem(settings: Settings, *, listen_host: str) -> str | None:
    """Why the secrets cannot be used in this environment on this listen address, else None.

    In every environment a blank secret is refused, and so is a node secret equal to
    `secret_key`. In production, and whenever the service listens beyond loopback (where
    others can send it tokens), the public defaults and short or repetitive secrets are refused.
    """
    secrets = (
        ("secret_key", settings.secret_key, "CONFBRIDGE_SECRET_KEY"),
        ("sfu.node_secret", settings.sfu.node_secret, "CONFBRIDGE_SFU__NODE_SECRET"),
    )
    for key, value, variable in secrets:
        blank = blank_reason(value)
        if blank:
            return f"{key}: {blank}; set {variable}"
    if settings.env == "production" or not is_loopback(listen_host):
        where = (
            "in production"
            if settings.env == "production"
            else f"when listening on {listen_host} (beyond loopback)"
        )
        for key, value, variable in secrets:
            reason = weakness(value)
            if reason:
                return (
                    f"{key}: {reason}, refused {where}; set {variable} to a random string "
                    "(e.g. `openssl rand -hex 32`)"
                )
    if settings.secret_key == settings.sfu.node_secret and (
        settings.secret_key not in PUBLIC_PLACEHOLDERS
    ):
        # every worker holds the node secret; with secret_key it could sign users' tokens
        return "sfu.node_secret: must differ from secret_key; set CONFBRIDGE_SFU__NODE_SECRET"
    return None


def check_listen_address(settings: Settings, host: str) -> None:
    """Refuse (ConfigError) to serve on `host` with secrets unfit for it (`serve --host`)."""
    problem = secret_problem(settings, listen_host=host)
    if problem:
        raise ConfigError(f"config error: {problem}")


def normalise_database_url(url: str) -> str:
    """Map plain `postgresql://` URLs to the psycopg 3 driver that ConfBridge ships with."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _config_path() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV_VAR)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config error: {CONFIG_ENV_VAR}: file {path} does not exist")
        return path
    if DEFAULT_CONFIG_PATH.is_file():
        return DEFAULT_CONFIG_PATH
    # none here: the commented default shipped with ConfBridge (the same values as the code's)
    return packaged_path(DEFAULT_CONFIG_PATH.name)


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning any problem into a one-line `ConfigError` that names the key."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "config"
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"] or message.startswith(f"{key}:"):  # a whole-model check names its key
            raise ConfigError(f"config error: {message}") from None
        raise ConfigError(f"config error: {key}: {message}") from None
    except ConfigError:
        raise
    except Exception as exc:  # a YAML syntax error, an unreadable file
        raise ConfigError(f"config error: {_config_path()}: {exc}".replace("\n", " ")) from None


def config_source() -> str:
    """Which file the settings come from, for the first log line of a service."""
    path = _config_path()
    if path is None:
        return "built-in defaults (no config.yaml)"
    if path == packaged_path(DEFAULT_CONFIG_PATH.name) and not os.environ.get(CONFIG_ENV_VAR):
        return (
            f"{path} (the default shipped with ConfBridge; copy it to ./config.yaml to change it)"
        )
    return str(path)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
