"""Sign-in sessions of the web pages (a signed cookie) and CSRF tokens for their forms.

The session cookie is a short JWT signed with `secret_key`, like the API's access tokens but of
its own type (`typ: web`), so neither can stand in for the other. The user is read from the
database on every request: a disabled account is signed out at once.

CSRF: every visitor gets a random `cb_csrf` cookie; forms carry HMAC(secret_key, cookie) and a
state-changing request must present it (form field `csrf_token` or header `X-CSRF-Token`).
Another site can make the browser send the cookie, but cannot read it to compute the token.
The cookie is renewed at sign-in and sign-out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from fastapi import Request, Response
from sqlalchemy.orm import Session

from confbridge.auth.models import Role, User
from confbridge.db import utcnow

SESSION_COOKIE = "cb_session"
CSRF_COOKIE = "cb_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TYPE = "web"
JWT_ALGORITHM = "HS256"
# Signed-in staff keep their session through a working day.
SESSION_TTL = timedelta(hours=10)
EDITOR_ROLES = frozenset({Role.admin.value, Role.secretariat.value})


class SignInRequired(Exception):
    """The page needs a signed-in user; the handler sends the browser to the sign-in page."""


class NotAllowed(Exception):
    """The signed-in user's role may not use this page or action."""


class CsrfFailed(Exception):
    """A state-changing request without the right CSRF token."""


@dataclass(frozen=True)
class WebUser:
    id: int
    username: str
    full_name: str
    role: str

    @property
    def can_edit(self) -> bool:
        """Book and change meetings, run the floor (secretariat and admin)."""
        return self.role in EDITOR_ROLES

    @property
    def display_name(self) -> str:
        return self.full_name or self.username


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def issue_session(response: Response, request: Request, *, user: User, secret_key: str) -> None:
    now = utcnow()
    claims = {
        "sub": str(user.id),
        "typ": SESSION_TYPE,
        "iat": int(now.timestamp()),
        "exp": int((now + SESSION_TTL).timestamp()),
    }
    token = jwt.encode(claims, secret_key, algorithm=JWT_ALGORITHM)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    new_csrf_cookie(response, request)


def end_session(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    new_csrf_cookie(response, request)


def session_user(request: Request, session: Session, secret_key: str) -> WebUser | None:
    """The signed-in user of this request, if any (an active account with a valid cookie)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        claims: dict[str, Any] = jwt.decode(token, secret_key, algorithms=[JWT_ALGORITHM])
    except jwt.PyJWTError:
        return None
    subject = str(claims.get("sub", ""))
    if claims.get("typ") != SESSION_TYPE or not subject.isdigit():
        return None
    user = session.get(User, int(subject))
    if user is None or not user.active:
        return None
    return WebUser(user.id, user.username, user.full_name, user.role)


# --- CSRF ------------------------------------------------------------------------------------


def csrf_seed(request: Request) -> str:
    """This browser's CSRF cookie value, made on the first page it gets."""
    seed = getattr(request.state, "csrf_seed", None)
    if seed is None:
        seed = request.cookies.get(CSRF_COOKIE) or ""
        if len(seed) < 16:
            seed = secrets.token_urlsafe(24)
            request.state.csrf_new = True
        request.state.csrf_seed = seed
    return str(seed)


def new_csrf_cookie(response: Response, request: Request) -> None:
    seed = secrets.token_urlsafe(24)
    request.state.csrf_seed = seed
    request.state.csrf_new = False
    _set_csrf_cookie(response, request, seed)


def _set_csrf_cookie(response: Response, request: Request, seed: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, seed, httponly=True, samesite="lax", secure=_secure(request), path="/"
    )


def keep_csrf_cookie(response: Response, request: Request) -> None:
    """Send the CSRF cookie if this request made it (a first visit)."""
    if getattr(request.state, "csrf_new", False):
        _set_csrf_cookie(response, request, csrf_seed(request))


def csrf_token(request: Request, secret_key: str) -> str:
    """The token this browser's forms must carry."""
    digest = hmac.new(
        secret_key.encode(), b"csrf:" + csrf_seed(request).encode(), hashlib.sha256
    ).hexdigest()
    return digest


def check_csrf(request: Request, secret_key: str, submitted: str | None) -> None:
    """Raise `CsrfFailed` unless `submitted` (or the header) is this browser's token."""
    if not request.cookies.get(CSRF_COOKIE):
        raise CsrfFailed
    given = submitted or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(given.encode(), csrf_token(request, secret_key).encode()):
        raise CsrfFailed
