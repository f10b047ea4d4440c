"""TURN credentials (the TURN REST convention, coturn's `use-auth-secret`): handed out by the
control plane with a join grant and by a worker to its WHIP/WHEP clients."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any


def turn_rest_credential(*, secret: str, user: str, expires_at_unix: int) -> tuple[str, str]:
    """A TURN REST credential (coturn `use-auth-secret`): username `<expiry>:<user>`,
    password base64(HMAC-SHA1(secret, username)). Valid until `expires_at_unix`."""
    username = f"{expires_at_unix}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def turn_ice_server(
    *, urls: list[str], secret: str, user: str, ttl_s: int, now_unix: float | None = None
) -> dict[str, Any]:
    """An RTCIceServer dictionary for the TURN `urls` with a credential valid for `ttl_s`."""
    expires = int((time.time() if now_unix is None else now_unix) + ttl_s)
    username, credential = turn_rest_credential(secret=secret, user=user, expires_at_unix=expires)
    return {"urls": list(urls), "username": username, "credential": credential}
