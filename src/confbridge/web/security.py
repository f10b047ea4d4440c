"""Sign-in sessions of the web pages (a signed cookie) and CSRF tokens for their forms.

The session cookie is a short JWT signed with `secret_key`, like the API's access tokens but of
its own type (`typ: web`), so neither can stand in for the other. It names a session row
(`sid`), read with the user on every request: signing out, a password change or a disabled
account end the session at once, on every copy of the cookie.

CSRF: every visitor gets a random `cb_csrf` cookie; forms carry HMAC(secret_key, cookie and
session id) and a state-changing request must present it (form field `csrf_token` or header
`X-CSRF-Token`). Another site can make the browser send the cookie, but cannot read it to
compute the token; and since the token is bound to the sign-in session, a token obtained in
another session (with a cookie planted from a sibling domain, say) does not fit this one.
The cookie is renewed at sign-in and sign-out.

Cookies are `Secure` when the request came over https (as seen by uvicorn, which takes
`X-Forwarded-Proto` only from the configured `trusted_proxies`)
or when the configured `public_url` is https.
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

from confbridge.auth import service as auth_service
from confbridge.auth.models import Role, User
from confbridge.auth.scope import NOTHING, Scope, scope_of
from confbridge.timeutil import utcnow

SESSION_COOKIE = "cb_session"
CSRF_COOKIE = "cb_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TYPE = "web"
JWT_ALGORITHM = "HS256"
# Signed-in staff keep their session through a working day.
SESSION_TTL = timedelta(hours=10)
PASSWORD_PAGE = "/account/password"


class SignInRequired(Exception):
    """The page needs a signed-in user; the handler sends the browser to the sign-in page."""


class PasswordChangeRequired(Exception):
    """The user must replace a password set by an administrator before anything else."""


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
    session_id: str
    must_change_password: bool = False
    # What the pages show (any role) and where the user books or watches (`auth.scope`).
    scope: Scope = NOTHING
    edit_scope: Scope = NOTHING
    it_scope: Scope = NOTHING
    admin_scope: Scope = NOTHING

    @property
    def can_edit(self) -> bool:
        """Book and change meetings, run the floor (secretariat and admin, of some unit)."""
        return not self.edit_scope.empty

    @property
    def display_name(self) -> str:
        return self.full_name or self.username


def is_https(request: Request) -> bool:
    """Whether the browser reached us over https (directly, or through a trusted proxy)."""
    return request.url.scheme == "https"


def _secure(request: Request) -> bool:
    public_url = request.app.state.settings.public_url or ""
    return is_https(request) or public_url.startswith("https://")


def issue_session(
    response: Response, request: Request, *, user: User, session_id: str, secret_key: str
) -> None:
    """Set the session cookie of a session row made by `auth_service.start_session`."""
    now = utcnow()
    claims = {
        "sub": str(user.id),
        "sid": session_id,
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


def _cookie_claims(request: Request, secret_key: str) -> tuple[int, str] | None:
    """The user id and session id of this request's session cookie, if it is genuine."""
    cached = getattr(request.state, "session_claims", False)
    if cached is not False:
        return cached  # type: ignore[no-any-return]
    found = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        try:
            claims: dict[str, Any] = jwt.decode(token, secret_key, algorithms=[JWT_ALGORITHM])
        except jwt.PyJWTError:
            claims = {}
        subject, sid = str(claims.get("sub", "")), claims.get("sid")
        if claims.get("typ") == SESSION_TYPE and subject.isdigit() and isinstance(sid, str):
            found = (int(subject), sid)
    request.state.session_claims = found
    return found


def session_user(request: Request, session: Session, secret_key: str) -> WebUser | None:
    """The signed-in user of this request, if any (a live session of an active account)."""
    claims = _cookie_claims(request, secret_key)
    if claims is None:
        return None
    user_id, session_id = claims
    user = auth_service.session_user(
        session=session,
        session_id=session_id,
        user_id=user_id,
        kind=auth_service.SESSION_WEB,
        now=utcnow(),
    )
    if user is None:
        return None
    return WebUser(
        user.id,
        user.username,
        user.full_name,
        user.role,
        session_id,
        user.must_change_password,
        scope=scope_of(session=session, user=user),
        edit_scope=scope_of(session=session, user=user, roles=[Role.secretariat]),
        it_scope=scope_of(session=session, user=user, roles=[Role.it]),
        admin_scope=scope_of(session=session, user=user, roles=[Role.admin]),
    )


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
    """The token this browser's forms must carry: bound to its CSRF cookie and its session."""
    claims = _cookie_claims(request, secret_key)
    session_id = claims[1] if claims else ""
    message = f"csrf:{csrf_seed(request)}:{session_id}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def check_csrf(request: Request, secret_key: str, submitted: str | None) -> None:
    """Raise `CsrfFailed` unless `submitted` (or the header) is this browser's token."""
    if not request.cookies.get(CSRF_COOKIE):
        raise CsrfFailed
    given = submitted or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(given.encode(), csrf_token(request, secret_key).encode()):
        raise CsrfFailed
