"""Settings: config.yaml, environment overrides, one-line errors naming the key."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import jwt
import pytest

from confbridge.settings import DEFAULT_SECRET, ConfigError, load_settings

# random-looking secrets as an operator makes them (`openssl rand -hex 20`)
STRONG_KEY = "9f2c4e7a1b8d3f6e0a5c2b9d7e4f1a3c6b8d0e2f"
STRONG_NODE_SECRET = "3b7e1d9a5c2f8e4b0d6a1c7f3e9b5d2a8c4f0e6b"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "CONFBRIDGE_CONFIG",
        "CONFBRIDGE_ENV",
        "CONFBRIDGE_SECRET_KEY",
        "CONFBRIDGE_DATABASE_URL",
        "CONFBRIDGE_DATA_DIR",
        "CONFBRIDGE_HOST",
        "CONFBRIDGE_SFU__NODE_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)


def test_settings_defaults_without_file() -> None:
    settings = load_settings()
    assert settings.env == "development"
    assert settings.meetings.default_tz == "Asia/Ho_Chi_Minh"
    assert settings.sqlalchemy_url == "sqlite:///data/confbridge.sqlite3"


def test_settings_read_yaml_and_env_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.yaml").write_text("port: 9000\nmeetings:\n  horizon_days: 100\n")
    assert load_settings().port == 9000
    monkeypatch.setenv("CONFBRIDGE_PORT", "9100")
    monkeypatch.setenv("CONFBRIDGE_MEETINGS__HORIZON_DAYS", "200")
    settings = load_settings()
    assert (settings.port, settings.meetings.horizon_days) == (9100, 200)


def test_settings_invalid_value_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("meetings:\n  horizon_days: soon\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "meetings.horizon_days" in message
    assert "\n" not in message


def test_settings_unknown_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("prot: 9000\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings()


def test_settings_missing_explicit_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_CONFIG", "/nonexistent/confbridge.yaml")
    with pytest.raises(ConfigError, match="CONFBRIDGE_CONFIG"):
        load_settings()


def test_settings_broken_yaml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("port: [9000\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "\n" not in str(caught.value)


def test_settings_unknown_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_MEETINGS__DEFAULT_TZ", "Asia/Hanoi_City")
    with pytest.raises(ConfigError, match=r"meetings\.default_tz"):
        load_settings()


def test_settings_default_secret_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_ENV", "production")
    with pytest.raises(ConfigError, match="secret_key"):
        load_settings()
    monkeypatch.setenv("CONFBRIDGE_SECRET_KEY", STRONG_KEY)
    monkeypatch.setenv("CONFBRIDGE_SFU__NODE_SECRET", STRONG_NODE_SECRET)
    assert load_settings().secret_key != DEFAULT_SECRET


def test_settings_postgres_url_gets_psycopg_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    assert load_settings().sqlalchemy_url.startswith("postgresql+psycopg://")


def test_settings_sfu_defaults(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "state")
    assert settings.sfu.public_url == "http://127.0.0.1:8001"
    assert settings.sfu.worker_admin_url == settings.sfu.public_url
    assert settings.sfu.join_early_min == 15
    assert settings.sfu.ice_servers == []
    assert settings.sfu.local_workers == min(os.cpu_count() or 1, 64)  # one per core
    assert settings.grant_key_path == tmp_path / "state" / "grant-key.pem"


def test_settings_sfu_from_yaml(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "sfu:\n"
        "  public_url: https://sfu.example.vn/\n"
        "  internal_url: http://10.0.0.5:8001\n"
        "  ice_servers:\n"
        "    - urls: [turn:turn.example.vn:3478]\n"
        "      username: hall\n"
        "      credential: pw\n"
    )
    sfu = load_settings().sfu
    assert sfu.public_url == "https://sfu.example.vn"  # trailing slash dropped
    assert sfu.worker_admin_url == "http://10.0.0.5:8001"
    assert sfu.ice_servers[0].model_dump(exclude_none=True) == {
        "urls": ["turn:turn.example.vn:3478"],
        "username": "hall",
        "credential": "pw",
    }


def test_settings_sfu_bad_url_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_SFU__PUBLIC_URL", "sfu.example.vn")
    with pytest.raises(ConfigError, match=r"sfu\.public_url"):
        load_settings()


def test_settings_sfu_media_port_range_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_SFU__UDP_PORT_MIN", "40000")
    with pytest.raises(ConfigError, match="udp_port_min/udp_port_max: set both"):
        load_settings()
    monkeypatch.setenv("CONFBRIDGE_SFU__UDP_PORT_MAX", "40999")
    assert (load_settings().sfu.udp_port_min, load_settings().sfu.udp_port_max) == (40000, 40999)


def test_settings_sfu_single_media_port_per_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (load_settings().sfu.udp_mode, load_settings().sfu.udp_port) == ("single", 7882)
    monkeypatch.setenv("CONFBRIDGE_SFU__UDP_PORT", "65535")
    monkeypatch.setenv("CONFBRIDGE_SFU__LOCAL_WORKERS", "2")
    with pytest.raises(ConfigError, match=r"udp_port: 2 local workers need ports 65535"):
        load_settings()
    monkeypatch.setenv("CONFBRIDGE_SFU__UDP_MODE", "ranges")
    with pytest.raises(ConfigError, match=r"sfu\.udp_mode"):
        load_settings()


def test_settings_default_node_secret_refused_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONFBRIDGE_ENV", "production")
    monkeypatch.setenv("CONFBRIDGE_SECRET_KEY", STRONG_KEY)
    with pytest.raises(ConfigError, match=r"sfu\.node_secret"):
        load_settings()
    monkeypatch.setenv("CONFBRIDGE_SFU__NODE_SECRET", "short")
    with pytest.raises(ConfigError, match="at least 32"):
        load_settings()
    monkeypatch.setenv("CONFBRIDGE_SFU__NODE_SECRET", "n" * 40)
    with pytest.raises(ConfigError, match="too repetitive"):
        load_settings()
    monkeypatch.setenv("CONFBRIDGE_SFU__NODE_SECRET", STRONG_NODE_SECRET)
    assert load_settings().sfu.node_secret == STRONG_NODE_SECRET


@pytest.mark.parametrize("env", ["development", "test", "production"])
def test_settings_default_secrets_refused_beyond_loopback_in_every_env(
    monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    monkeypatch.setenv("CONFBRIDGE_ENV", env)
    monkeypatch.setenv("CONFBRIDGE_HOST", "0.0.0.0")
    with pytest.raises(ConfigError, match=r"^config error: secret_key: is the public default"):
        load_settings()
    monkeypatch.setenv("CONFBRIDGE_SECRET_KEY", STRONG_KEY)
    with pytest.raises(ConfigError, match=r"^config error: sfu\.node_secret: is the public def"):
        load_settings()
    monkeypatch.setenv("CONFBRIDGE_SFU__NODE_SECRET", STRONG_NODE_SECRET)
    assert load_settings().host == "0.0.0.0"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_settings_default_secrets_serve_loopback_in_development(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv("CONFBRIDGE_HOST", host)
    assert load_settings().secret_key == DEFAULT_SECRET


def test_settings_whitespace_secret_refused_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_SECRET_KEY", " " * 32)
    with pytest.raises(ConfigError, match=r"secret_key: is blank"):
        load_settings()  # development, loopback
    monkeypatch.setenv("CONFBRIDGE_ENV", "production")
    monkeypatch.setenv("CONFBRIDGE_SFU__NODE_SECRET", STRONG_NODE_SECRET)
    with pytest.raises(ConfigError, match=r"secret_key: is blank"):
        load_settings()
    # padding does not count towards the length
    monkeypatch.setenv("CONFBRIDGE_SECRET_KEY", " " * 28 + "a1b2c3d4e5")
    with pytest.raises(ConfigError, match=r"secret_key: must be at least 32 characters"):
        load_settings()


def test_settings_node_secret_equal_to_secret_key_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_SECRET_KEY", STRONG_KEY)
    monkeypatch.setenv("CONFBRIDGE_SFU__NODE_SECRET", STRONG_KEY)
    with pytest.raises(ConfigError, match=r"sfu\.node_secret: must differ from secret_key"):
        load_settings()


def test_settings_short_turn_secret_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONFBRIDGE_SFU__TURN__SHARED_SECRET", "x")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).startswith(
        "config error: sfu.turn.shared_secret: must be at least 16 characters"
    )
    assert "mint TURN credentials" in str(refused.value)
    monkeypatch.setenv("CONFBRIDGE_SFU__TURN__SHARED_SECRET", " " * 20)
    with pytest.raises(ConfigError, match="at least 16"):
        load_settings()
    monkeypatch.setenv("CONFBRIDGE_SFU__TURN__SHARED_SECRET", "a-long-turn-secret")
    assert load_settings().sfu.turn.shared_secret == "a-long-turn-secret"


@pytest.mark.parametrize(
    ("url", "secret", "accepted"),
    [
        ("http://alerts.example.vn/hook", None, False),
        ("http://10.0.0.9:9000/hook", None, False),
        ("http://alerts.example.vn/hook", "webhook-signing-secret", True),
        ("https://alerts.example.vn/hook", None, True),
        ("http://127.0.0.1:9000/hook", None, True),
        ("http://[::1]:9000/hook", None, True),
    ],
)
def test_settings_plain_http_webhook_needs_a_secret_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch, url: str, secret: str | None, accepted: bool
) -> None:
    monkeypatch.setenv("CONFBRIDGE_ALERTS__WEBHOOK_URL", url)
    if secret:
        monkeypatch.setenv("CONFBRIDGE_ALERTS__WEBHOOK_SECRET", secret)
    if accepted:
        assert load_settings().alerts.webhook_url == url
        return
    with pytest.raises(ConfigError, match=r"^config error: alerts\.webhook_secret: required"):
        load_settings()


def test_settings_repr_and_logs_never_show_secrets(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = {
        "CONFBRIDGE_SECRET_KEY": STRONG_KEY,
        "CONFBRIDGE_SFU__NODE_SECRET": STRONG_NODE_SECRET,
        "CONFBRIDGE_ADMIN_PASSWORD": "quan-tri-vien-mat-khau",
        "CONFBRIDGE_SFU__TURN__SHARED_SECRET": "turn-static-auth-secret",
        "CONFBRIDGE_ALERTS__WEBHOOK_SECRET": "webhook-signing-secret",
        "CONFBRIDGE_DATABASE_URL": "postgresql://bridge:db-password-123@10.0.0.5:5432/cb",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    with caplog.at_level(logging.INFO):
        logging.getLogger("tests.settings").info("settings: %s / %r", settings, settings)
    shown = repr(settings) + str(settings) + caplog.text
    for value in (*secrets.values(), "db-password-123"):
        if "://" in value:
            assert "postgresql://bridge:**********@10.0.0.5:5432/cb" in shown
            continue
        assert value not in shown, value
    # the values still work as strings where they are used
    assert settings.secret_key == STRONG_KEY and settings.sfu.node_secret.encode()


def test_settings_default_key_signs_without_a_key_length_warning() -> None:
    from confbridge.auth.service import JWT_ALGORITHM

    settings = load_settings()
    assert len(settings.secret_key.encode()) >= 32
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyJWT's InsecureKeyLengthWarning would raise
        token = jwt.encode({"sub": "1"}, settings.secret_key, algorithm=JWT_ALGORITHM)
    assert jwt.decode(token, settings.secret_key, algorithms=[JWT_ALGORITHM]) == {"sub": "1"}


def test_settings_without_config_file_use_the_shipped_default(tmp_path: Path) -> None:
    from confbridge.packaged import packaged_path
    from confbridge.settings import config_source

    shipped = packaged_path("config.yaml")
    assert shipped is not None and shipped.is_file()
    assert not (tmp_path / "config.yaml").exists()  # the test runs in an empty directory
    assert config_source().startswith(f"{shipped} (the default shipped with ConfBridge")
    assert load_settings().reports.targets["communes_connected"].min_ratio == 1.0


def test_settings_trusted_proxies_from_yaml_or_env_and_refused_when_not_addresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONFBRIDGE_TRUSTED_PROXIES", raising=False)
    assert load_settings().trusted_proxies == []
    (tmp_path / "config.yaml").write_text("trusted_proxies: [10.0.0.5, 'fd00::/8']\n")
    assert load_settings().trusted_proxies == ["10.0.0.5/32", "fd00::/8"]
    monkeypatch.setenv("CONFBRIDGE_TRUSTED_PROXIES", "192.0.2.0/24, 127.0.0.1")
    assert load_settings().trusted_proxies == ["192.0.2.0/24", "127.0.0.1/32"]
    for bad in ("*", "proxy.example.org", "10.0.0.0/40"):
        monkeypatch.setenv("CONFBRIDGE_TRUSTED_PROXIES", bad)
        with pytest.raises(ConfigError, match=r"^config error: trusted_proxies: .* not an IP"):
            load_settings()


def test_settings_sip_defaults_and_domain_from_the_listen_host() -> None:
    settings = load_settings()
    sip = settings.sip
    assert (sip.enabled, sip.listen, sip.domain) == (True, "127.0.0.1:5060", None)
    assert (sip.join_early_min, sip.dial_out_lead_min) == (10, 1)
    assert (sip.rate_limit_per_source, sip.max_pin_attempts) == (20, 3)
    assert settings.sip_domain == "127.0.0.1"
    assert load_settings(sip={"listen": "[::1]:5070"}).sip_domain == "[::1]"
    assert load_settings(sip={"domain": "Hop.HaLong.gov.vn"}).sip_domain == "hop.halong.gov.vn"


@pytest.mark.parametrize(
    ("sip", "message"),
    [
        ({"listen": "127.0.0.1"}, "sip.listen: give host:port"),
        ({"listen": "::1:5060"}, "sip.listen: put an IPv6 host in brackets"),
        ({"listen": "[::1:5060"}, "sip.listen: an IPv6 host needs its closing bracket"),
        ({"listen": "[zz::1]:5060"}, "sip.listen: [zz::1] is not an IPv6 address"),
        ({"listen": "0.0.0.0:70000"}, "sip.listen: give host:port"),
        ({"tls_listen": "0.0.0.0:5061"}, "sip.tls_private_key: sip.tls_listen needs both"),
        (
            {"tls_listen": "0.0.0.0:5061", "tls_certificate": "c.pem"},
            "sip.tls_private_key: sip.tls_listen needs both",
        ),
        ({"domain": "hop example"}, "sip.domain: a host name or address without spaces"),
        ({"max_pin_attempts": 0}, "sip.max_pin_attempts"),
        ({"rate_limit_per_source": 0}, "sip.rate_limit_per_source"),
        ({"lister": "x"}, "sip.lister: Extra inputs are not permitted"),
    ],
)
def test_settings_sip_refuses_bad_values_naming_the_key(sip: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(sip=sip)
    assert str(caught.value).startswith(f"config error: {message}")


def test_settings_sip_tls_with_both_files_and_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tls = load_settings(
        sip={"tls_listen": "[::]:5061", "tls_certificate": "c.pem", "tls_private_key": "k.pem"}
    ).sip
    assert (tls.tls_listen, tls.tls_certificate, tls.tls_private_key) == (
        "[::]:5061",
        Path("c.pem"),
        Path("k.pem"),
    )
    monkeypatch.setenv("CONFBRIDGE_SIP__LISTEN", "0.0.0.0:5080")
    monkeypatch.setenv("CONFBRIDGE_SIP__PUBLIC_ADDRESS", "203.0.113.7")
    sip = load_settings().sip
    assert (sip.listen, sip.public_address, sip.listen_host) == (
        "0.0.0.0:5080",
        "203.0.113.7",
        "0.0.0.0",
    )
