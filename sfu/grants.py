"""Join grants: verified here with the control plane's public key, no call back needed."""

from __future__ import annotations

from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import ValidationError

from confbridge.contracts import GRANT_ALGORITHM, GRANT_AUDIENCE, GRANT_ISSUER, GrantClaims

# Clocks of the control plane and the workers may disagree a little.
CLOCK_LEEWAY_S = 30


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

    def verify(self, token: str, *, room: str) -> GrantClaims:
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
        if grant.room != room:
            raise WrongRoom(f"this grant is for room {grant.room}, not {room}")
        return grant
