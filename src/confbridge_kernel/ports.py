"""UDP port ranges for media sockets, checked alike by the control plane's and the workers'
settings."""

from __future__ import annotations

DEFAULT_UDP_PORT = 7882
"""A worker's media port in single-port mode (`serve`'s local worker i: this + i)."""


def check_port_range(low: int, high: int) -> None:
    """Both 0 (ephemeral ports) or 1024 <= low <= high; ValueError naming the settings if not."""
    if (low or high) and not (1024 <= low <= high):
        raise ValueError(
            "udp_port_min/udp_port_max: set both, with 1024 <= udp_port_min <= udp_port_max "
            f"(got {low}-{high})"
        )
