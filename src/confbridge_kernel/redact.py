"""Secrets that never show in a repr or a log line, and the checks a secret must pass.

Shared by both planes (the control plane's settings and the SFU worker's), so it imports
nothing else from ConfBridge.
"""

from __future__ import annotations

import ipaddress
import re

MASK = "**********"
# The placeholders published in this repository (config.yaml, README, older releases): whoever
# reads them can sign tokens or call a worker, so they are never secrets beyond loopback.
PUBLIC_PLACEHOLDERS = frozenset(
    {"change-me-in-production", "development-only-secret-key-not-for-use-beyond-loopback"}
)
STRONG_SECRET_MIN_CHARS = 32
# A random secret of 32 characters has far more; "xxxx..." or "abab..." has fewer.
STRONG_SECRET_MIN_DISTINCT = 8
# Anyone who guesses coturn's static-auth-secret mints TURN credentials and relays through it.
TURN_SECRET_MIN_CHARS = 16
TURN_SECRET_TOO_SHORT = (
    f"must be at least {TURN_SECRET_MIN_CHARS} characters (not counting spaces): whoever "
    "guesses it can mint TURN credentials and relay traffic through your TURN server; use a "
    "random string, e.g. `openssl rand -hex 32`"
)
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

# Query parameters whose values are credentials: ?token=, ?feed=, ?code= (pairing), ...
_SENSITIVE_QUERY = re.compile(
    r"(?i)([?&][^=&\s\"#]*(?:token|feed|code|password|passwd|secret)[^=&\s\"#]*=)[^&\s\"#]*"
)
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@/\s]*(?P<at>@)")


class Secret(str):
    """A string that works as one (signing, comparing, sending) but shows as a mask in
    `repr()`, so that a settings object printed or logged never reveals it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"'{MASK}'"


class SecretUrl(str):
    """A URL whose password (`scheme://user:password@host`) is masked in `repr()`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(redact_url_password(str(self)))


def redact_url_password(url: str) -> str:
    """`postgresql://user:pw@host/db` → `postgresql://user:**********@host/db`."""
    return _URL_PASSWORD.sub(rf"\g<head>{MASK}\g<at>", url)


def redact_query(text: str) -> str:
    """Mask the values of credential-like query parameters in `text` (a path or a log line):
    `/terminal?code=ABCD-EFGH&lang=en` → `/terminal?code=**********&lang=en`."""
    if "=" not in text:
        return text
    return _SENSITIVE_QUERY.sub(rf"\1{MASK}", text)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: an address only this machine reaches."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name (or 0.0.0.0 / ::): others may reach it


def blank_reason(value: str) -> str | None:
    """Why `value` is no secret at all (empty or only whitespace), else None."""
    return "is blank (only whitespace)" if not value.strip() else None


def weakness(value: str, *, min_chars: int = STRONG_SECRET_MIN_CHARS) -> str | None:
    """Why `value` is too weak to protect a service others can reach, else None."""
    if value in PUBLIC_PLACEHOLDERS:
        return "is the public default"
    blank = blank_reason(value)
    if blank:
        return blank
    stripped = value.strip()
    if len(stripped) < min_chars:
        return f"must be at least {min_chars} characters (not counting surrounding spaces)"
    if len(set(stripped)) < STRONG_SECRET_MIN_DISTINCT:
        return f"is too repetitive (fewer than {STRONG_SECRET_MIN_DISTINCT} different characters)"
    return None
