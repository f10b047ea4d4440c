"""Sign-in and sign-out, the caller's identity, calendar feed tokens, and user management."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from confbridge.auth import service as auth_service
from confbridge.auth import signin
from confbridge.auth.dependencies import (
    AdminScope,
    CurrentUser,
    PrincipalDep,
    Scoped,
    SignedInUser,
)
from confbridge.auth.models import User
from confbridge.auth.schemas import (
    FeedToken,
    Me,
    PasswordChange,
    PasswordReset,
    PasswordResetDone,
    Token,
    UserCreate,
    UserCreated,
    UserRead,
    UserUpdate,
)
from confbridge.client_address import client_address
from confbridge.deps import SessionDep, SettingsDep
from confbridge.errors import NotFound, Unauthorized
from confbridge.pagination import IdPath
from confbridge.timeutil import utcnow

router = APIRouter(tags=["auth"])
UNAUTHORIZED = {401: {"description": "no valid access token (or the session has ended)"}}
NOT_ADMIN = {403: {"description": "not an administrator"}}
NO_USER = {404: {"description": "no such user"}}


@router.post(
    "/auth/token",
    response_model=Token,
    responses={
        401: {
            "description": "wrong username or password, a disabled account, or directory "
            "groups that give no role"
        },
        429: {"description": "too many failed sign-ins; see Retry-After"},
        503: {
            "description": "too many sign-ins at once (see Retry-After), or the directory "
            "cannot be reached"
        },
    },
)
def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Token:
    """An access token for a username and password (OAuth2 password form)."""
    try:
        user = signin.sign_in(
            session=session,
            username=form.username,
            password=form.password,
            address=client_address(request),
            via="api",
            limits=signin.SignInLimits.from_settings(settings.auth),
            now=utcnow(),
            directory=settings.auth.ldap,
        )
    except (Unauthorized, signin.DirectoryDown):
        session.commit()  # the failure counts, and stays in the audit log
        raise
    ttl_min = settings.access_token_ttl_min
    user_session = auth_service.start_session(
        session=session, user=user, kind=auth_service.SESSION_API, ttl=timedelta(minutes=ttl_min)
    )
    session.commit()
    token = auth_service.issue_access_token(
        user=user, session_id=user_session.id, secret_key=settings.secret_key, ttl_min=ttl_min
    )
    return Token(access_token=token, expires_in=ttl_min * 60)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=UNAUTHORIZED)
def sign_out(
    principal: PrincipalDep,
    session: SessionDep,
    everywhere: Annotated[
        bool, Query(description="end every session of this user, not only this token's")
    ] = False,
) -> None:
    """End this access token's session (or every session of the user): the token stops working."""
    if principal.user is None or principal.session_id is None:
        raise Unauthorized("only a user's access token can sign out")
    user = principal.user
    if everywhere:
        auth_service.revoke_sessions(session=session, user_id=user.id, now=utcnow())
    else:
        auth_service.revoke_session(session=session, session_id=principal.session_id)
    auth_service.record(
        session=session,
        actor=f"user:{user.username}",
        action="sign_out",
        entity="user",
        entity_id=user.id,
        detail={"via": "api", "everywhere": everywhere},
    )
    session.commit()


@router.get("/me", response_model=Me)
def me(principal: PrincipalDep) -> Me:
    if principal.user is not None:
        return Me(kind="user", user=UserRead.model_validate(principal.user))
    assert principal.terminal is not None
    return Me(
        kind="terminal", terminal_id=principal.terminal.id, site_id=principal.terminal.site_id
    )


@router.put(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **UNAUTHORIZED,
        422: {"description": "the current password is wrong, or the new one is too weak"},
    },
)
def change_password(body: PasswordChange, user: SignedInUser, session: SessionDep) -> None:
    """Change your password; every session of yours ends, this token's too: sign in again."""
    auth_service.change_password(
        session=session,
        user=user,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    session.commit()


@router.post(
    "/me/feed-token",
    response_model=FeedToken,
    status_code=status.HTTP_201_CREATED,
    responses={**UNAUTHORIZED, 403: {"description": "a terminal, or a password to change first"}},
)
def create_feed_token(user: CurrentUser, session: SessionDep) -> FeedToken:
    """A secret for calendar subscriptions (`…/calendar.ics?feed=<token>`), shown once.

    It reads calendars with your access and nothing else; a new one replaces the old one.
    """
    token = auth_service.new_feed_token(session=session, user=user)
    auth_service.record(
        session=session,
        actor=f"user:{user.username}",
        action="feed_token_created",
        entity="user",
        entity_id=user.id,
    )
    session.commit()
    return FeedToken(feed_token=token)


@router.delete("/me/feed-token", status_code=status.HTTP_204_NO_CONTENT, responses=UNAUTHORIZED)
def revoke_feed_token(user: SignedInUser, session: SessionDep) -> None:
    """Revoke your calendar feed token: subscriptions using it stop updating."""
    if auth_service.revoke_feed_token(session=session, user=user):
        auth_service.record(
            session=session,
            actor=f"user:{user.username}",
            action="feed_token_revoked",
            entity="user",
            entity_id=user.id,
        )
    session.commit()


# --- administrators -----------------------------------------------------------------------------


def valid_user_id(user_id: IdPath, admin: AdminScope, session: SessionDep) -> User:
    """The user, if the administrator may manage it; else 404 (other units' users are not
    even named to it)."""
    user = auth_service.get(session=session, user_id=user_id)
    if user is None or not _visible(admin, user):
        raise NotFound(f"user {user_id} does not exist")
    return user


def _visible(admin: Scoped, user: User) -> bool:
    if admin.scope.whole:
        return True
    return any(admin.scope.covers(m.unit_id) for m in user.memberships)


UserDep = Annotated[User, Depends(valid_user_id)]


def _granted(body: UserCreate | UserUpdate) -> list[auth_service.MembershipIn]:
    """What the body grants, as memberships (`role` alone: at the root)."""
    granted = [
        auth_service.MembershipIn(unit_id=m.unit_id, role=m.role) for m in body.memberships or []
    ]
    if body.role is not None:
        granted.append(auth_service.MembershipIn(unit_id=None, role=body.role))
    return granted


@router.get("/users", response_model=list[UserRead])
def list_users(admin: AdminScope, session: SessionDep) -> list[UserRead]:
    """Users with a role in your units (every user for an administrator at the root)."""
    users = auth_service.list_(session=session, scope=admin.scope)
    return [UserRead.model_validate(u) for u in users]


@router.post(
    "/users",
    response_model=UserCreated,
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_ADMIN, 409: {"description": "the username is taken"}},
)
def create_user(body: UserCreate, admin: AdminScope, session: SessionDep) -> UserCreated:
    """Create a user with memberships `(unit_id, role)`: each role applies to the unit and
    every unit below it (`unit_id` null: the whole installation, for administrators there).

    You may give roles only in your own units. Without a password, a one-time password is
    returned once and must be changed at the first sign-in."""
    granted = _granted(body)
    auth_service.check_may_grant(admin_scope=admin.scope, memberships=granted)
    generated = None
    password = body.password
    if password is None:
        generated = password = secrets.token_urlsafe(12)
    user = auth_service.create(
        session=session,
        username=body.username,
        password=password,
        memberships=granted,
        full_name=body.full_name,
    )
    user.must_change_password = generated is not None
    auth_service.record(
        session=session,
        actor=f"user:{admin.user.username}",
        action="user_created",
        entity="user",
        entity_id=user.id,
        detail={"username": user.username, "memberships": auth_service.describe(granted)},
    )
    session.commit()
    return UserCreated(**UserRead.model_validate(user).model_dump(), password=generated)


@router.get("/users/{user_id}", response_model=UserRead, responses={**NOT_ADMIN, **NO_USER})
def get_user(user: UserDep) -> UserRead:
    return UserRead.model_validate(user)


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    responses={
        **NOT_ADMIN,
        **NO_USER,
        409: {"description": "it would leave no active administrator, or lock yourself out"},
    },
)
def update_user(
    body: UserUpdate, user: UserDep, admin: AdminScope, session: SessionDep
) -> UserRead:
    """Change a user's memberships (`role` alone: one role over the whole installation),
    name, or disable (`active: false`) or enable the account.

    Disabling ends the user's sessions at once. Users are never deleted: the audit log keeps
    their names. You may manage only users whose roles all lie in your units."""
    auth_service.check_may_manage(session=session, admin_scope=admin.scope, user=user)
    changing = body.role is not None or body.memberships is not None
    if changing:
        auth_service.check_may_grant(admin_scope=admin.scope, memberships=_granted(body))
    auth_service.update(
        session=session,
        user=user,
        actor=admin.user,
        memberships=_granted(body) if changing else None,
        active=body.active,
        full_name=body.full_name,
    )
    session.commit()
    return UserRead.model_validate(user)


@router.post(
    "/users/{user_id}/password-reset",
    response_model=PasswordResetDone,
    responses={**NOT_ADMIN, **NO_USER, 422: {"description": "the given password is too weak"}},
)
def reset_password(
    user: UserDep, admin: AdminScope, session: SessionDep, body: PasswordReset | None = None
) -> PasswordResetDone:
    """Set a password (given, or a generated one-time password returned once).

    The user must change it at the next sign-in; the user's sessions and calendar feed token
    end, and a sign-in lock on the username is lifted.
    """
    auth_service.check_may_manage(session=session, admin_scope=admin.scope, user=user)
    generated = auth_service.reset_password(
        session=session, user=user, actor=admin.user, password=body.password if body else None
    )
    session.commit()
    return PasswordResetDone(
        user=UserRead.model_validate(user), password=generated, must_change_password=True
    )
