"""Sign-in, sign-out, the user's own password, and the language switch."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response

from confbridge.auth import passwords, signin
from confbridge.auth import service as auth_service
from confbridge.auth.models import User
from confbridge.auth.signin import AccountDisabled
from confbridge.client_address import client_address
from confbridge.errors import DomainError, TooManyRequests, Unauthorized, Unavailable
from confbridge.timeutil import utcnow
from confbridge.web.context import AnyPage, CheckedForm, Page, UserPage
from confbridge.web.domain_messages import explain
from confbridge.web.i18n import LANGUAGE_COOKIE, LANGUAGES
from confbridge.web.security import (
    PASSWORD_PAGE,
    SESSION_TTL,
    SignInRequired,
    end_session,
    issue_session,
)
from confbridge.web.shared import local_path, redirect

router = APIRouter(include_in_schema=False)


def _signed_in(page: AnyPage, user: User, target: str) -> Response:
    """A new web session for `user` (committed), and the redirect to `target` carrying it."""
    web_session = auth_service.start_session(
        session=page.session, user=user, kind=auth_service.SESSION_WEB, ttl=SESSION_TTL
    )
    page.session.commit()
    response = redirect(target)
    issue_session(
        response,
        page.request,
        user=user,
        session_id=web_session.id,
        secret_key=page.settings.secret_key,
    )
    return response


@router.get("/")
def home(page: AnyPage) -> Response:
    return redirect("/calendar" if page.user else "/sign-in")


@router.get("/sign-in")
def sign_in_page(page: AnyPage, next: str | None = None, expired: str | None = None) -> Response:
    notice = None
    if expired and page.user is None:
        notice = page._("Your session has ended. Sign in again to continue.")
    return page.render(
        "sign_in.html", next=local_path(next), username="", error=None, notice=notice
    )


@router.get("/session")
def session_state(page: AnyPage) -> Response:
    """Whether this browser's sign-in still holds (204, or 401 as for any script's request):
    the live pages ask when their event stream keeps failing."""
    if page.user is None:
        raise SignInRequired
    return Response(status_code=204)


def _with_retry_after(response: Response, seconds: object) -> Response:
    if isinstance(seconds, int):
        response.headers["Retry-After"] = str(seconds)
    return response


@router.post("/sign-in")
def sign_in(page: AnyPage, form: CheckedForm) -> Response:
    username = str(form.get("username") or "").strip()[:80]
    password = str(form.get("password") or "")[:200]
    target = local_path(str(form.get("next") or ""))

    def again(status_code: int, error: str) -> Response:
        return page.render("sign_in.html", status_code, next=target, username=username, error=error)

    if not username or not password:
        return again(401, page._("Wrong username or password."))
    try:
        user = signin.sign_in(
            session=page.session,
            username=username,
            password=password,
            address=client_address(page.request),
            via="web",
            limits=signin.SignInLimits.from_settings(page.settings.auth),
            now=utcnow(),
            directory=page.settings.auth.ldap,
        )
    except signin.DirectoryDown:
        page.session.commit()
        return again(503, page._("The directory cannot be reached. Try again later."))
    except signin.NoDirectoryRole:
        page.session.commit()
        return again(
            403, page._("Your directory groups give you no role here. Ask an administrator.")
        )
    except AccountDisabled:
        page.session.commit()
        return again(401, page._("This account is disabled. Ask an administrator."))
    except Unauthorized:
        page.session.commit()  # the failure counts, and stays in the audit log
        return again(401, page._("Wrong username or password."))
    except TooManyRequests as exc:
        wait = int(exc.extra.get("retry_after_s", 60))
        message = page._(
            "Too many failed sign-ins. Try again in %(minutes)s minutes.",
            minutes=max(1, (wait + 59) // 60),
        )
        return _with_retry_after(again(429, message), wait)
    except Unavailable as exc:
        busy = again(503, page._("The server is busy. Try again in a moment."))
        return _with_retry_after(busy, exc.extra.get("retry_after_s"))
    if user.must_change_password:
        target = f"{PASSWORD_PAGE}?next={quote(target, safe='')}"
    return _signed_in(page, user, target)


@router.post("/sign-out")
def sign_out(page: AnyPage, _form: CheckedForm) -> Response:
    if page.user is not None:
        auth_service.revoke_session(session=page.session, session_id=page.user.session_id)
        auth_service.record(
            session=page.session,
            actor=f"user:{page.user.username}",
            action="sign_out",
            entity="user",
            entity_id=page.user.id,
            detail={"via": "web"},
        )
        page.session.commit()
    response = redirect("/sign-in")
    end_session(response, page.request)
    return response


# --- the user's own account -------------------------------------------------------------------


def _password_message(page: Page, exc: DomainError) -> str:
    """The refusal of a new password, in the reader's language."""
    rule = exc.extra.get("rule")
    messages = {
        "too_short": page._(
            "The new password is too short: it needs at least %(count)s characters.",
            count=str(passwords.MIN_LENGTH),
        ),
        "too_long": page._("The new password is too long."),
        "one_character": page._("The new password may not repeat a single character."),
        "username": page._("The new password may not be your username."),
        "common": page._("The new password is too common. Choose another one."),
        "current_wrong": page._("The current password is wrong."),
        "unchanged": page._("The new password must differ from the current one."),
    }
    return messages.get(str(rule)) or explain(page, exc)


@router.get(PASSWORD_PAGE)
def password_page(page: UserPage, next: str | None = None) -> Response:
    return page.render("account_password.html", next=local_path(next), error=None)


@router.post(PASSWORD_PAGE)
def change_password(page: UserPage, form: CheckedForm) -> Response:
    """Change the signed-in user's password: every session of the user ends, and this browser
    gets a new one."""
    assert page.user is not None
    target = local_path(str(form.get("next") or ""))
    current = str(form.get("current_password") or "")[:200]
    new = str(form.get("new_password") or "")[:201]
    again = str(form.get("new_password_again") or "")[:201]
    user = page.session.get(User, page.user.id)
    assert user is not None
    error = None
    if new != again:
        error = page._("The two new passwords differ.")
    else:
        try:
            auth_service.change_password(
                session=page.session, user=user, current_password=current, new_password=new
            )
        except DomainError as exc:
            page.session.rollback()
            error = _password_message(page, exc)
    if error is not None:
        return page.render("account_password.html", 422, next=target, error=error)
    return _signed_in(page, user, target)


@router.get("/language/{code}")
def switch_language(code: str, next: str | None = None) -> Response:
    response = redirect(local_path(next))
    if code in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, code, max_age=365 * 24 * 3600, samesite="lax", path="/"
        )
    return response
