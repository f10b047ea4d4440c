"""Join grants: the signing key on disk, signatures a worker checks with the public key only
(`sfu.grants.GrantVerifier`, what the workers run)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from confbridge import signing
from confbridge.bridge.service import GRANT_OVERRUN_MARGIN, grant_expiry
from confbridge_kernel.contracts import GrantClaims, PeerRole
from sfu.grants import GrantError, GrantVerifier

NOW = datetime(2030, 3, 4, 0, 15, tzinfo=UTC)


def claims(**changes: object) -> GrantClaims:
    values: dict[str, object] = {
        "jti": "a" * 32,
        "room": "occ-7",
        "occurrence_id": 7,
        "site_id": 3,
        "site_name": "Hội trường UBND Phường Một",
        "role": PeerRole.site,
        "chair_site_id": 1,
        "starts_at": NOW + timedelta(minutes=15),
        "ends_at": NOW + timedelta(minutes=105),
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(hours=2)).timestamp()),
    }
    values.update(changes)
    return GrantClaims.model_validate(values)


def fresh_claims(**changes: object) -> GrantClaims:
    now = datetime.now(UTC)
    return claims(
        iat=int(now.timestamp()), exp=int((now + timedelta(hours=1)).timestamp()), **changes
    )


def verify(token: str, public_pem: str) -> GrantClaims:
    """As a worker checks a grant for the room of `claims()`."""
    return GrantVerifier(public_pem.encode()).verify(token, room="occ-7")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_grant_key_created_private_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "grant-key.pem"
    first = signing.load_or_create_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    second = signing.load_or_create_private_key(path)
    assert signing.public_key_pem(first.public_key()) == signing.public_key_pem(second.public_key())
    assert [p.name for p in path.parent.iterdir()] == ["grant-key.pem"]  # no temporary left


def test_grant_key_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "grant-key.pem"
    barrier = threading.Barrier(8)
    keys: list[str] = []

    def load() -> None:
        barrier.wait()
        keys.append(signing.public_key_pem(signing.load_or_create_private_key(path).public_key()))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and len(set(keys)) == 1


def test_grant_key_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "grant-key.pem"
    path.write_text("not a key")
    with pytest.raises(signing.GrantKeyError, match=r"grant-key\.pem"):
        signing.load_or_create_private_key(path)


def test_grant_key_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "grant-key.pem"
    other = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(signing.GrantKeyError, match="not an Ed25519 key"):
        signing.load_or_create_private_key(path)


def test_grant_signed_verifies_with_the_public_key_only(tmp_path: Path) -> None:
    signer = signing.GrantSigner(signing.load_or_create_private_key(tmp_path / "k.pem"))
    token = signer.sign(fresh_claims())
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    verified = verify(token, signer.public_pem)
    assert verified.room == "occ-7" and verified.role == PeerRole.site
    assert verified.starts_at == NOW + timedelta(minutes=15)
    assert "PRIVATE" not in signer.public_pem


def test_grant_from_another_key_is_refused(tmp_path: Path) -> None:
    ours = signing.GrantSigner(signing.load_or_create_private_key(tmp_path / "ours.pem"))
    theirs = signing.GrantSigner(signing.load_or_create_private_key(tmp_path / "theirs.pem"))
    with pytest.raises(GrantError, match="Signature verification failed"):
        verify(theirs.sign(fresh_claims()), ours.public_pem)


def test_grant_tampered_claims_are_refused(tmp_path: Path) -> None:
    signer = signing.GrantSigner(signing.load_or_create_private_key(tmp_path / "k.pem"))
    header, payload, signature = signer.sign(fresh_claims()).split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["role"] = "chair"
    forged = ".".join([header, b64(json.dumps(body).encode()), signature])
    with pytest.raises(GrantError, match="Signature verification failed"):
        verify(forged, signer.public_pem)


def test_grant_hmac_signed_with_the_public_key_is_refused(tmp_path: Path) -> None:
    """Algorithm confusion: an HS256 token keyed with the (public) PEM must not pass."""
    signer = signing.GrantSigner(signing.load_or_create_private_key(tmp_path / "k.pem"))
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(fresh_claims(role="chair").model_dump_json().encode())
    mac = hmac.new(signer.public_pem.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    with pytest.raises(GrantError, match="alg"):
        verify(f"{header}.{payload}.{b64(mac.digest())}", signer.public_pem)


def test_grant_expired_is_refused(tmp_path: Path) -> None:
    signer = signing.GrantSigner(signing.load_or_create_private_key(tmp_path / "k.pem"))
    past = datetime.now(UTC) - timedelta(hours=3)
    token = signer.sign(
        claims(iat=int(past.timestamp()), exp=int((past + timedelta(hours=2)).timestamp()))
    )
    with pytest.raises(GrantError, match="expired"):
        verify(token, signer.public_pem)


def test_grant_public_key_written_for_a_worker(tmp_path: Path) -> None:
    private = tmp_path / "data" / "grant-key.pem"
    public = signing.write_public_key(private, tmp_path / "worker" / signing.PUBLIC_KEY_FILENAME)
    text = public.read_text()
    assert text.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in text
    token = signing.signer_for(private).sign(fresh_claims())
    assert verify(token, text).site_id == 3


def test_grant_expiry_ends_shortly_after_the_meeting() -> None:
    end_at = NOW + timedelta(minutes=105)
    assert (
        grant_expiry(end_at=end_at, now=NOW, grant_ttl_s=4 * 3600) == end_at + GRANT_OVERRUN_MARGIN
    )


def test_grant_expiry_capped_by_the_ttl() -> None:
    """A long meeting: the grant lasts grant_ttl_s, and the terminal asks again later."""
    end_at = NOW + timedelta(hours=9)
    assert grant_expiry(end_at=end_at, now=NOW, grant_ttl_s=3600) == NOW + timedelta(hours=1)
