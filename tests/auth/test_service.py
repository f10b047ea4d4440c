"""Password hashing, first admin and audit entries."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.auth import service as auth_service
from confbridge.auth.models import AuditEntry, Role, User
from confbridge.errors import Conflict


def test_password_hash_is_not_the_password() -> None:
    hashed = auth_service.hash_password("mat-khau-123")
    assert "mat-khau-123" not in hashed
    assert auth_service.verify_password(hashed, "mat-khau-123")
    assert not auth_service.verify_password(hashed, "mat-khau-124")
    assert not auth_service.verify_password("garbage", "mat-khau-123")


def test_ensure_first_admin_uses_given_password_once(session: Session) -> None:
    assert auth_service.ensure_first_admin(session=session, password="cho-truoc-mot-1") is None
    admin = session.scalar(select(User).where(User.username == "admin"))
    assert admin is not None and admin.role == Role.admin
    assert auth_service.verify_password(admin.password_hash, "cho-truoc-mot-1")
    assert auth_service.ensure_first_admin(session=session, password="khac-nua-hai-2") is None
    assert session.scalar(select(User).where(User.username == "admin")) is admin


def test_ensure_first_admin_generates_a_password(session: Session) -> None:
    generated = auth_service.ensure_first_admin(session=session, password=None)
    assert generated and len(generated) >= 12
    admin = session.scalar(select(User).where(User.username == "admin"))
    assert admin is not None and auth_service.verify_password(admin.password_hash, generated)


def test_record_appends_audit_entry(session: Session) -> None:
    auth_service.record(
        session=session,
        actor="user:a",
        action="x_done",
        entity="site",
        entity_id=3,
        detail={"k": 1},
    )
    session.flush()
    entry = session.scalar(select(AuditEntry))
    assert entry is not None and (entry.action, entry.entity_id, entry.detail) == (
        "x_done",
        3,
        {"k": 1},
    )


def test_update_keeps_one_active_administrator(session: Session) -> None:
    admin = auth_service.create(
        session=session, username="admin", password="mat-khau-quan-tri", role=Role.admin
    )
    with pytest.raises(Conflict, match="last active administrator"):
        auth_service.update(session=session, user=admin, actor="cli", active=False)
    with pytest.raises(Conflict, match="last active administrator"):
        auth_service.update(session=session, user=admin, actor="cli", role=Role.it)
    other = auth_service.create(
        session=session, username="admin2", password="mat-khau-quan-tri", role=Role.admin
    )
    with pytest.raises(Conflict, match="your own account"):
        auth_service.update(session=session, user=other, actor=other, active=False)
    changes = auth_service.update(session=session, user=admin, actor=other, role=Role.it)
    assert changes == {"memberships": [["admin@root"], ["it@root"]]} and admin.role == "it"
