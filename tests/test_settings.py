"""Settings: config.yaml, environment overrides, one-line errors naming the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from confbridge.settings import DEFAULT_SECRET, ConfigError, load_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "CONFBRIDGE_CONFIG",
        "CONFBRIDGE_ENV",
        "CONFBRIDGE_SECRET_KEY",
        "CONFBRIDGE_DATABASE_URL",
        "CONFBRIDGE_DATA_DIR",
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
    monkeypatch.setenv("CONFBRIDGE_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("CONFBRIDGE_SFU__NODE_SECRET", "n" * 40)
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


def test_settings_default_node_secret_refused_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONFBRIDGE_ENV", "production")
    monkeypatch.setenv("CONFBRIDGE_SECRET_KEY", "x" * 40)
    with pytest.raises(ConfigError, match=r"sfu\.node_secret"):
        load_settings()
    monkeypatch.setenv("CONFBRIDGE_SFU__NODE_SECRET", "short")
    with pytest.raises(ConfigError, match="at least 32"):
        load_settings()
    monkeypatch.setenv("CONFBRIDGE_SFU__NODE_SECRET", "n" * 40)
    assert load_settings().sfu.node_secret == "n" * 40


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
