"""Prometheus counters of the SIP gateway: requests by method and responses by class, each
way, messages dropped (rate limit, malformed) and calls out attempted and failed.

`serve` registers them in the control plane's registry, so that its `/metrics` shows them
(with `--processes 1`; the gateway runs in `serve`'s own process, which serves no HTTP when
`--processes` is more than one). Retransmissions count: these are messages on the wire.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from confbridge.sip.message import SipMessage

# Methods are labels: anything else a sender makes up is `other`, so the series stay few.
KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "INFO",
        "REGISTER",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "MESSAGE",
        "REFER",
        "UPDATE",
        "PRACK",
    }
)


DROP_REASONS = ("rate_limited", "malformed")


def method_label(method: str | None) -> str:
    return method if method in KNOWN_METHODS else "other"


def status_class(status: int | None) -> str:
    """`2xx` for 200 to 299 (RFC 3261 §7.2), `other` for a status outside 100 to 699."""
    return f"{status // 100}xx" if status is not None and 100 <= status <= 699 else "other"


class GatewayMetrics:
    """The gateway's counters, in `registry` (a private one when none is given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "confbridge_sip_requests",
            "SIP requests received (in) and sent (out), by method",
            ["direction", "method"],
            registry=self.registry,
        )
        self.responses = Counter(
            "confbridge_sip_responses",
            "SIP responses received (in) and sent (out), by class",
            ["direction", "class"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "confbridge_sip_messages_dropped",
            "SIP messages dropped unread: over the rate limit of their source, or malformed",
            ["reason"],
            registry=self.registry,
        )
        for reason in DROP_REASONS:
            self.dropped.labels(reason)  # shown at 0 before the first
        self.dial_outs = Counter(
            "confbridge_sip_dial_outs",
            "calls the bridge tried to make (room systems, the bridge above)",
            registry=self.registry,
        )
        self.dial_outs_failed = Counter(
            "confbridge_sip_dial_outs_failed",
            "calls the bridge tried to make that were not set up",
            registry=self.registry,
        )

    def message(self, message: SipMessage, direction: str) -> None:
        """One message received (`in`) or sent (`out`)."""
        if message.is_request:
            self.requests.labels(direction, method_label(message.method)).inc()
        else:
            self.responses.labels(direction, status_class(message.status)).inc()

    def drop(self, reason: str) -> None:
        self.dropped.labels(reason).inc()
