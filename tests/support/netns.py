"""Separate hosts for multi-node tests: Linux network namespaces on one bridge.

Each host is a namespace with one veth interface on a bridge in the test's own namespace,
which holds the gateway address; the test process (control plane, terminals) reaches every
host through the bridge, and hosts reach each other and the gateway. Nothing is routed
beyond the bridge. Needs root and `ip` (iproute2).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def netns_missing() -> str | None:
    """Why namespaces cannot be made here, or None if they can."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Hosts:
    """The namespaces made by `hosts()`: a name → its namespace and address."""

    gateway: str
    namespaces: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)

    def command(self, host: str, argv: list[str]) -> list[str]:
        """`argv` run inside `host`'s namespace."""
        return ["ip", "netns", "exec", self.namespaces[host], *argv]


@contextmanager
def hosts(names: list[str]) -> Iterator[Hosts]:
    """Namespaces named after `names`, on a private /24 with the gateway at .1."""
    tag = f"{random.getrandbits(24):06x}"
    subnet = f"10.231.{random.randrange(1, 255)}"
    bridge = f"cbbr{tag}"
    made = Hosts(gateway=f"{subnet}.1")
    veths: list[str] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{made.gateway}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for index, name in enumerate(names):
            namespace = f"cb-{name}-{tag}"
            veth = f"cbv{index}{tag}"
            address = f"{subnet}.{index + 2}"
            _ip("netns", "add", namespace)
            made.namespaces[name] = namespace
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            veths.append(veth)
            _ip("link", "set", veth, "master", bridge, "up")
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            made.addresses[name] = address
        yield made
    finally:
        # the namespaces go away lazily; their veth pairs are deleted now
        for veth in veths:
            subprocess.run(["ip", "link", "del", veth], capture_output=True)
        for namespace in made.namespaces.values():
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


BLOCK_UDP_TABLE = "blockudp"


def block_udp(made: Hosts, host: str) -> None:
    """Drop every UDP datagram `host` sends or receives beyond its loopback (nftables in its
    namespace, with counters), as a hall network that lets only TCP out."""
    rules = (
        f"add table inet {BLOCK_UDP_TABLE}; "
        f"add chain inet {BLOCK_UDP_TABLE} out {{ type filter hook output priority 0; }}; "
        f'add rule inet {BLOCK_UDP_TABLE} out oifname != "lo" meta l4proto udp counter drop; '
        f"add chain inet {BLOCK_UDP_TABLE} in {{ type filter hook input priority 0; }}; "
        f'add rule inet {BLOCK_UDP_TABLE} in iifname != "lo" meta l4proto udp counter drop'
    )
    subprocess.run(made.command(host, ["nft", rules]), check=True, capture_output=True)


def unblock_udp(made: Hosts, host: str) -> None:
    """Let UDP through `host`'s network again (undo `block_udp`)."""
    subprocess.run(
        made.command(host, ["nft", "delete", "table", "inet", BLOCK_UDP_TABLE]),
        check=True,
        capture_output=True,
    )


def route_through_gateway(made: Hosts, host: str) -> None:
    """Give `host` a default route through the gateway, as a hall's network has (browsers
    gather candidates on the interface of the default route)."""
    _ip("-n", made.namespaces[host], "route", "add", "default", "via", made.gateway)


@contextmanager
def udp_blocked_hall() -> Iterator[Hosts]:
    """One host, `hall`, routed through the gateway, whose network lets no UDP through
    (`block_udp`). Skips the test where namespaces or nftables are missing."""
    import pytest

    reason = netns_missing() or (None if shutil.which("nft") else "nftables (nft) is missing")
    if reason:
        pytest.skip(reason)
    with hosts(["hall"]) as made:
        route_through_gateway(made, "hall")
        block_udp(made, "hall")
        yield made


def udp_dropped(made: Hosts, host: str, table: str = BLOCK_UDP_TABLE) -> int:
    """How many UDP datagrams `block_udp` (or the rules of another `table` with counters) has
    dropped in `host` so far."""
    listed = subprocess.run(
        made.command(host, ["nft", "-j", "list", "table", "inet", table]),
        check=True,
        capture_output=True,
        text=True,
    )
    return sum(
        expression["counter"]["packets"]
        for item in json.loads(listed.stdout)["nftables"]
        if "rule" in item
        for expression in item["rule"]["expr"]
        if "counter" in expression
    )


LOSS_TABLE = "loss"


def lose_udp(made: Hosts, host: str, percent: int) -> None:
    """Drop `percent` % of the UDP datagrams `host` sends out, at random (nftables `numgen`,
    with a counter: `udp_dropped(made, host, LOSS_TABLE)`), as a lossy uplink."""
    rules = (
        f"add table inet {LOSS_TABLE}; "
        f"add chain inet {LOSS_TABLE} out {{ type filter hook output priority 0; }}; "
        f'add rule inet {LOSS_TABLE} out oifname != "lo" meta l4proto udp '
        f"numgen random mod 100 < {percent} counter drop"
    )
    subprocess.run(made.command(host, ["nft", rules]), check=True, capture_output=True)
