"""Worker settings from `CONFBRIDGE_SFU_*`: the media port range and the announced address."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sfu.config import WorkerSettings


def test_config_port_range_defaults_to_ephemeral_ports() -> None:
    settings = WorkerSettings()
    assert settings.udp_port_range is None
    assert settings.announced_ip is None


def test_config_port_range_and_announced_ip_from_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONFBRIDGE_SFU_UDP_PORT_MIN", "40000")
    monkeypatch.setenv("CONFBRIDGE_SFU_UDP_PORT_MAX", "40999")
    monkeypatch.setenv("CONFBRIDGE_SFU_ANNOUNCED_IP", "203.0.113.7")
    monkeypatch.setenv("CONFBRIDGE_SFU_ICE_SERVERS", '[{"urls": "stun:stun.example.vn:3478"}]')
    settings = WorkerSettings()
    assert settings.udp_port_range == (40000, 40999)
    assert settings.announced_ip == "203.0.113.7"
    assert settings.ice_servers == [{"urls": "stun:stun.example.vn:3478"}]


@pytest.mark.parametrize(
    ("low", "high"), [(40000, 0), (0, 40000), (41000, 40000), (80, 90), (40000, 70000)]
)
def test_config_bad_port_range_is_refused_with_its_name(low: int, high: int) -> None:
    with pytest.raises(ValidationError, match="udp_port"):
        WorkerSettings(udp_port_min=low, udp_port_max=high)


def test_config_single_port_mode_is_the_default() -> None:
    settings = WorkerSettings()
    assert (settings.udp_mode, settings.udp_port, settings.announced_port) == ("single", 7882, None)


def test_config_single_port_and_announced_port_from_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONFBRIDGE_SFU_UDP_PORT", "41000")
    monkeypatch.setenv("CONFBRIDGE_SFU_ANNOUNCED_PORT", "51000")
    settings = WorkerSettings()
    assert (settings.udp_port, settings.announced_port) == (41000, 51000)
    with pytest.raises(ValidationError, match="udp_mode"):
        WorkerSettings(udp_mode="mux")
    with pytest.raises(ValidationError, match="announced_port: applies to udp_mode single"):
        WorkerSettings(udp_mode="range")


def test_config_advertised_urls_default_to_the_listening_address() -> None:
    settings = WorkerSettings(host="127.0.0.1", port=8011)
    assert settings.advertised_public_url == "http://127.0.0.1:8011"
    assert settings.advertised_internal_url == "http://127.0.0.1:8011"
    behind_proxy = WorkerSettings(
        public_url="https://sfu1.example.vn/", internal_url="http://10.0.0.7:8001"
    )
    assert behind_proxy.advertised_public_url == "https://sfu1.example.vn"
    assert behind_proxy.advertised_internal_url == "http://10.0.0.7:8001"


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_config_blank_node_secret_is_refused_on_any_address(host: str) -> None:
    with pytest.raises(ValidationError, match="node_secret: is blank"):
        WorkerSettings(host=host, node_secret=" " * 32)


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("change-me-in-production", "the default value is refused"),
        ("short-secret", "at least 32 characters"),
        ("n" * 40, "too repetitive"),
    ],
)
def test_config_weak_node_secret_is_refused_beyond_loopback(secret: str, reason: str) -> None:
    assert WorkerSettings(host="127.0.0.1", node_secret=secret).node_secret == secret
    with pytest.raises(ValidationError, match=reason):
        WorkerSettings(host="0.0.0.0", node_secret=secret)


def test_config_secrets_are_masked_in_repr() -> None:
    settings = WorkerSettings(
        node_secret="worker-node-secret-0123456789abcdef", turn_secret="turn-secret-for-a-test"
    )
    assert "worker-node-secret" not in repr(settings) and "turn-secret" not in repr(settings)
    assert settings.node_secret == "worker-node-secret-0123456789abcdef"


def test_config_short_turn_secret_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match=r"at least 16 characters.*mint TURN credentials"):
        WorkerSettings(turn_secret="x")
    assert WorkerSettings(turn_secret="").turn_secret is None  # empty: no TURN
