"""The control plane's signing key: Ed25519, for join grants (`contracts.GrantClaims`) and
for the tokens of calls to a node's admin API (`contracts.AdminClaims`).

The control plane holds the private key; SFU workers get only the public key, so a worker (or
anyone who reads a worker's disk) can check what was signed but never sign. Below every domain:
the bridge signs grants with it, the node registry its calls to the nodes. Workers check with
`sfu.grants.GrantVerifier`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from functools import lru_cache
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from confbridge.errors import DomainError
from confbridge_kernel.contracts import (
    ADMIN_TOKEN_TTL_S,
    GRANT_ALGORITHM,
    AdminClaims,
    GrantClaims,
)

log = logging.getLogger(__name__)

PRIVATE_KEY_MODE = 0o600
# Next to the private key by default; the worker's `grant_public_key_file` default matches.
PUBLIC_KEY_FILENAME = "grant-key.pub.pem"
_create_lock = threading.Lock()


class GrantKeyError(DomainError):
    """The grant key file cannot be read or created; the message names the file."""

    status_code = 503


class GrantSigner:
    """Signs join grants with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_pem = public_key_pem(private_key.public_key())

    def sign(self, claims: GrantClaims | AdminClaims) -> str:
        return jwt.encode(
            claims.model_dump(mode="json"), self._private_key, algorithm=GRANT_ALGORITHM
        )


def admin_headers(
    signer: GrantSigner, *, node_id: str, method: str, path: str, now_s: float | None = None
) -> dict[str, str]:
    """`Authorization` for one call to one node's admin API: a token for that node, method
    and path, valid for ADMIN_TOKEN_TTL_S (the node checks it with the grant public key)."""
    issued = int(time.time() if now_s is None else now_s)
    claims = AdminClaims(
        sub=node_id,
        method=method.upper(),
        path=path,
        jti=uuid.uuid4().hex,
        iat=issued,
        exp=issued + ADMIN_TOKEN_TTL_S,
    )
    return {"Authorization": f"Bearer {signer.sign(claims)}"}


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise GrantKeyError(f"grant key {path}: cannot read an Ed25519 private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise GrantKeyError(f"grant key {path}: not an Ed25519 key")
    if path.stat().st_mode & 0o077:
        log.warning("grant key %s is readable by other users; chmod 600 it", path)
    return key


def _create_private_key(path: Path) -> None:
    """Write a new key without ever exposing a partial or world-readable file.

    The key goes to a private temporary file first, then is hard-linked into place: the link
    fails if another process created the key meanwhile, and then that key wins.
    """
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.unlink(missing_ok=True)  # left over by a crash of a process with our pid
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_KEY_MODE)
    except OSError as exc:
        raise GrantKeyError(f"grant key {path}: cannot create it: {exc}") from exc
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
            log.info("created the join-grant signing key %s", path)
        except FileExistsError:
            pass
        except OSError as exc:
            raise GrantKeyError(f"grant key {path}: cannot create it: {exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    """The grant signing key at `path`, generated (mode 0600) when the file does not exist."""
    with _create_lock:
        if not path.exists():
            _create_private_key(path)
    return _read_private_key(path)


@lru_cache(maxsize=8)
def signer_for(path: Path) -> GrantSigner:
    """One signer per key file and process: the key is read from disk once."""
    return GrantSigner(load_or_create_private_key(path))


def write_public_key(private_key_path: Path, public_key_path: Path) -> Path:
    """Write the public key for a local worker (which must never see the private key)."""
    public_key_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = public_key_path.with_name(f".{public_key_path.name}.{os.getpid()}.tmp")
    temporary.write_text(signer_for(private_key_path).public_pem)
    os.replace(temporary, public_key_path)
    return public_key_path
