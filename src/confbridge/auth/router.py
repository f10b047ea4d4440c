"""Sign-in, the caller's identity, and user management."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from confbridge.auth import service as auth_service
from confbridge.auth.dependencies import AdminUser, CurrentUser, PrincipalDep
from confbridge.auth.schemas import Me, PasswordChange, Token, UserCreate, UserRead
from confbridge.deps import SessionDep, SettingsDep
from confbridge.errors import Invalid

router = APIRouter(tags=["auth"])


@router.post("/auth/token", response_model=Token)
def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> Token:
    user = auth_service.authenticate(
        session=session, username=form.username, password=form.password
    )
    token = auth_service.issue_access_token(
        user=user, secret_key=settings.secret_key, ttl_min=settings.access_token_ttl_min
    )
    return Token(access_token=token, expires_in=settings.access_token_ttl_min * 60)


@router.get("/me", response_model=Me)
def me(principal: PrincipalDep) -> Me:
    if principal.user is not None:
        return Me(kind="user", user=UserRead.model_validate(principal.user))
    assert principal.terminal is not None
    return Me(
        kind="terminal", terminal_id=principal.terminal.id, site_id=principal.terminal.site_id
    )


@router.put("/me/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(body: PasswordChange, user: CurrentUser, session: SessionDep) -> None:
    if not auth_service.verify_password(user.password_hash, body.current_password):
        raise Invalid("the current password is wrong")
    auth_service.set_password(session=session, user=user, password=body.new_password)
    auth_service.record(
        session=session,
        actor=f"user:{user.username}",
        action="password_changed",
        entity="user",
        entity_id=user.id,
    )
    session.commit()


@router.get("/users", response_model=list[UserRead])
def list_users(_admin: AdminUser, session: SessionDep) -> list[UserRead]:
    return [UserRead.model_validate(u) for u in auth_service.list_(session=session)]


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, admin: AdminUser, session: SessionDep) -> UserRead:
    user = auth_service.create(
        session=session,
        username=body.username,
        password=body.password,
        role=body.role,
        full_name=body.full_name,
    )
    auth_service.record(
        session=session,
        actor=f"user:{admin.username}",
        action="user_created",
        entity="user",
        entity_id=user.id,
        detail={"role": user.role},
    )
    session.commit()
    return UserRead.model_validate(user)
