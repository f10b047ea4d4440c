"""Who may call what: bearer resolution and role checks as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer

from confbridge.auth import service as auth_service
from confbridge.auth.models import Role, SfuNodeEnrolment, Terminal, User
from confbridge.auth.scope import Scope, scope_of
from confbridge.auth.service import Principal
from confbridge.deps import SessionDep, SettingsDep
from confbridge.errors import Forbidden, Unauthorized

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_principal(
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    if not token:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    return auth_service.resolve_bearer(session=session, token=token, secret_key=settings.secret_key)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_feed_principal(
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    feed: Annotated[
        str | None,
        Query(
            max_length=200,
            description="a calendar feed token (POST /api/v1/me/feed-token), for calendar "
            "programs that cannot send an Authorization header",
        ),
    ] = None,
) -> Principal:
    """A bearer token as usual, or else `?feed=<token>`: read-only calendars as that user."""
    if token:
        return auth_service.resolve_bearer(
            session=session, token=token, secret_key=settings.secret_key
        )
    if feed:
        return Principal(user=auth_service.resolve_feed_token(session=session, token=feed))
    raise Unauthorized(
        "authentication required: send 'Authorization: Bearer <token>' or '?feed=<feed token>'"
    )


FeedPrincipalDep = Annotated[Principal, Depends(get_feed_principal)]


def signed_in_user(principal: PrincipalDep) -> User:
    """Any signed-in user, also one who must still change a password set by an administrator."""
    if principal.user is None:
        raise Forbidden("terminals may not use this endpoint")
    return principal.user


def require_roles(*roles: Role) -> Callable[[Principal], User]:
    """A dependency that lets through users holding one of `roles` (any role when empty)."""
    allowed = set(roles) | {Role.admin}

    def dependency(principal: PrincipalDep) -> User:
        if principal.user is None:
            raise Forbidden("terminals may not use this endpoint")
        auth_service.check_password_fresh(principal.user)
        if roles and not principal.user.has_role(*allowed):
            names = ", ".join(sorted(r.value for r in allowed))
            shown = principal.user.role or "none"
            raise Forbidden(f"your role '{shown}' may not do this (needs {names})")
        return principal.user

    return dependency


@dataclass(frozen=True)
class Scoped:
    """A user and the scope it acts in for the roles a route needs (`auth.scope`)."""

    user: User
    scope: Scope


def require_scope(*roles: Role) -> Callable[..., Scoped]:
    """A dependency: a user holding one of `roles` (any role when empty) somewhere, and the
    units where it holds them. Routes filter what they read and refuse what they write by it."""
    check = require_roles(*roles)

    def dependency(principal: PrincipalDep, session: SessionDep) -> Scoped:
        user = check(principal)
        return Scoped(user=user, scope=scope_of(session=session, user=user, roles=roles))

    return dependency


def require_terminal(principal: PrincipalDep) -> Terminal:
    if principal.terminal is None:
        raise Forbidden("only a terminal token may use this endpoint")
    return principal.terminal


def require_root(*roles: Role) -> Callable[..., User]:
    """A dependency: a user holding one of `roles` over the whole installation (a membership
    at the root), for what serves every unit at once, such as the SFU nodes."""
    check = require_scope(*roles)

    def dependency(principal: PrincipalDep, session: SessionDep) -> User:
        scoped = check(principal, session)
        if not scoped.scope.whole:
            raise Forbidden("only staff of the whole installation may do this, not of a unit")
        return scoped.user

    return dependency


CurrentUser = Annotated[User, Depends(require_roles())]
SignedInUser = Annotated[User, Depends(signed_in_user)]
AdminUser = Annotated[User, Depends(require_roles(Role.admin))]
SecretariatUser = Annotated[User, Depends(require_roles(Role.secretariat))]
SiteEditor = Annotated[User, Depends(require_roles(Role.secretariat, Role.it))]
ITUser = Annotated[User, Depends(require_roles(Role.it))]
TerminalDep = Annotated[Terminal, Depends(require_terminal)]
# What the user may see (any of its roles), and where it may act as each role.
ReadScope = Annotated[Scoped, Depends(require_scope())]
AdminScope = Annotated[Scoped, Depends(require_scope(Role.admin))]
SecretariatScope = Annotated[Scoped, Depends(require_scope(Role.secretariat))]
SiteEditorScope = Annotated[Scoped, Depends(require_scope(Role.secretariat, Role.it))]
ITScope = Annotated[Scoped, Depends(require_scope(Role.it))]
RootAdminUser = Annotated[User, Depends(require_root(Role.admin))]
RootITUser = Annotated[User, Depends(require_root(Role.it))]

node_bearer = HTTPBearer(
    auto_error=False, description="the SFU node's own key (`confbridge nodes enroll`)"
)


def require_node(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(node_bearer)],
) -> SfuNodeEnrolment:
    """Let through an enrolled SFU node, which presents its own key; returns its enrolment."""
    if credentials is None:
        raise Unauthorized("node authentication required: send 'Authorization: Bearer <node key>'")
    # Looked up by its SHA-256: the stored hash, not the key, is compared.
    enrolment = auth_service.authenticate_node(session=session, key=credentials.credentials)
    if enrolment is None:
        raise Unauthorized("unknown or revoked node key; enrol the node with `confbridge nodes`")
    return enrolment


NodeDep = Annotated[SfuNodeEnrolment, Depends(require_node)]
