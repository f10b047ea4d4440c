"""Join grants: verified here with the control plane's public key, no call back needed."""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import ValidationError

from confbridge_kernel.contracts import (
    ADMIN_AUDIENCE,
    GRANT_ALGORITHM,
    GRANT_AUDIENCE,
    GRANT_ISSUER,
    GRANT_KEY_PATH,
    AdminClaims,
    GrantClaims,
)

# Clocks of the control plane and the workers may disagree a little.
CLOCK_LEEWAY_S = 30
KEY_FETCH_TIMEOUT_S = 10.0


class GrantKeyUnavailable(RuntimeError):
    """The worker cannot start: no public key on disk, and the control plane gave none."""


class GrantError(Exception):
    """The grant is missing, malformed, forged or expired."""


class WrongRoom(GrantError):
    """A valid grant, but for another room."""


class GrantVerifier:
    def __init__(self, public_key_pem: bytes) -> None:
        key = load_pem_public_key(public_key_pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the grant public key must be an Ed25519 key")
        self._key = key

    @classmethod
    def from_file(cls, path: Path) -> GrantVerifier:
        return cls(path.read_bytes())

    @classmethod
    async def load(cls, path: Path, *, control_url: str, node_key: str) -> GrantVerifier:
        """The key in `path`; a node on another machine, which has none yet, fetches it from
        the control plane (with its own node key) and keeps it there."""
        if path.exists():
            return cls.from_file(path)
        url = control_url.rstrip("/") + GRANT_KEY_PATH
        try:
            async with httpx.AsyncClient(timeout=KEY_FETCH_TIMEOUT_S) as http:
                response = await http.get(url, headers={"Authorization": f"Bearer {node_key}"})
        except httpx.HTTPError as exc:
            raise GrantKeyUnavailable(
                f"no grant key at {path}, and the control plane at {url} is unreachable: {exc}"
            ) from None
        if response.status_code != 200:
            raise GrantKeyUnavailable(
                f"no grant key at {path}, and the control plane refused it "
                f"({response.status_code}: {response.text[:200]})"
            )
        verifier = cls(response.content)  # checked before it is kept
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(response.content)
        temporary.replace(path)
        return verifier

    def verify_admin(self, token: str, *, node_id: str, method: str, path: str) -> AdminClaims:
        """A control-plane token for this node's admin API, for this very method and path."""
        try:
            claims = AdminClaims.model_validate(
                jwt.decode(
                    token,
                    self._key,
                    algorithms=[GRANT_ALGORITHM],
                    audience=ADMIN_AUDIENCE,
                    issuer=GRANT_ISSUER,
                    leeway=CLOCK_LEEWAY_S,
                    options={"require": ["exp", "iat", "jti", "sub"]},
                )
            )
        except jwt.ExpiredSignatureError:
            raise GrantError("the control plane's token has expired") from None
        except (jwt.PyJWTError, ValidationError) as exc:
            raise GrantError(f"invalid control plane token: {exc}") from None
        if claims.sub != node_id:
            raise GrantError(f"this token is for node {claims.sub!r}, not {node_id!r}")
        if (claims.method, claims.path) != (method.upper(), path):
            raise GrantError(f"this token is for {claims.method} {claims.path}")
        return claims

    def verify(self, token: str, *, room: str | None) -> GrantClaims:
        """The grant's claims; `room` None accepts any room (a SIP leg admitted from the lobby
        learns its room from the grant)."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[GRANT_ALGORITHM],
                audience=GRANT_AUDIENCE,
                issuer=GRANT_ISSUER,
                leeway=CLOCK_LEEWAY_S,
                options={"require": ["exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise GrantError("the join grant has expired; ask for a new one") from None
        except jwt.PyJWTError as exc:
            raise GrantError(f"invalid join grant: {exc}") from None
        try:
            grant = GrantClaims.model_validate(claims)
        except ValidationError as exc:
            raise GrantError(f"invalid join grant: {exc.errors()[0]['msg']}") from None
        if room is not None and grant.room != room:
            raise WrongRoom(f"this grant is for room {grant.room}, not {room}")
        return grant
