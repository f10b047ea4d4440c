"""What every page handler gets: the database session, the user, the language, a renderer."""

from __future__ import annotations

import gettext as gettext_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from confbridge.deps import SessionDep, SettingsDep
from confbridge.headers import page_policy
from confbridge.nodes import service as node_service
from confbridge.settings import Settings
from confbridge.web import i18n
from confbridge.web.security import (
    CSRF_FIELD,
    PASSWORD_PAGE,
    NotAllowed,
    PasswordChangeRequired,
    SignInRequired,
    WebUser,
    check_csrf,
    csrf_token,
    keep_csrf_cookie,
    session_user,
)

TEMPLATES_DIR = Path(__file__).parent / "templates"


@pass_context
def _context_gettext(context: Context, message: str) -> str:
    return context["translations"].gettext(message)  # type: ignore[no-any-return]


@pass_context
def _context_ngettext(context: Context, singular: str, plural: str, count: int) -> str:
    return context["translations"].ngettext(singular, plural, count)  # type: ignore[no-any-return]


def _make_environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n", "jinja2.ext.do"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # The catalogue is the request's (a context variable), so one environment serves all.
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        _context_gettext, _context_ngettext, newstyle=True
    )
    return environment


TEMPLATES = _make_environment()


def language_of(request: Request) -> str:
    return i18n.pick_language(
        request.cookies.get(i18n.LANGUAGE_COOKIE), request.headers.get("accept-language")
    )


@dataclass
class Page:
    """One request's view of the web app."""

    request: Request
    session: Session
    settings: Settings
    user: WebUser | None
    language: str
    translations: gettext_module.NullTranslations = field(repr=False)
    fmt: i18n.Formatter = field(repr=False)

    def _(self, message: str, **values: Any) -> str:
        """Translate `message` and fill in `%(name)s` placeholders."""
        text = self.translations.gettext(message)
        return text % values if values else text

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return render(self.request, template, self.settings, self.user, status_code, **values)

    def media_urls(self) -> list[str]:
        """The media servers a page's script may call (WHIP/WHEP), for its CSP."""
        return node_service.public_urls(session=self.session, settings=self.settings.sfu)

    @property
    def path_with_query(self) -> str:
        url = self.request.url
        return url.path + (f"?{url.query}" if url.query else "")


def render(
    request: Request,
    template: str,
    settings: Settings,
    user: WebUser | None,
    status_code: int = 200,
    *,
    media_urls: Sequence[str] = (),
    **values: Any,
) -> HTMLResponse:
    language = language_of(request)
    translations = i18n.translations(language)
    url = request.url
    here = url.path + (f"?{url.query}" if url.query else "")
    context = {
        "request": request,
        "user": user,
        "language": language,
        "languages": i18n.LANGUAGES,
        "translations": translations,
        "fmt": i18n.Formatter(language, settings.meetings.default_tz),
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token(request, settings.secret_key),
        "here": quote(here, safe="/?=&"),
        **values,
    }
    response = HTMLResponse(TEMPLATES.get_template(template).render(context), status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = page_policy(media_urls)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    keep_csrf_cookie(response, request)
    return response


def get_page(request: Request, session: SessionDep, settings: SettingsDep) -> Page:
    language = language_of(request)
    return Page(
        request=request,
        session=session,
        settings=settings,
        user=session_user(request, session, settings.secret_key),
        language=language,
        translations=i18n.translations(language),
        fmt=i18n.Formatter(language, settings.meetings.default_tz),
    )


def signed_in(page: Annotated[Page, Depends(get_page)]) -> Page:
    if page.user is None:
        raise SignInRequired
    if page.user.must_change_password and page.request.url.path != PASSWORD_PAGE:
        raise PasswordChangeRequired
    return page


def editor(page: Annotated[Page, Depends(signed_in)]) -> Page:
    assert page.user is not None
    if not page.user.can_edit:
        raise NotAllowed
    return page


async def checked_form(request: Request, settings: SettingsDep) -> FormData:
    """The submitted form, once its CSRF token has been checked."""
    form = await request.form(max_files=0, max_fields=50_000)
    token = form.get(CSRF_FIELD)
    check_csrf(request, settings.secret_key, token if isinstance(token, str) else None)
    return form


async def checked_request(request: Request, settings: SettingsDep) -> None:
    """A script's request (fetch): the CSRF token comes in the X-CSRF-Token header."""
    check_csrf(request, settings.secret_key, None)


AnyPage = Annotated[Page, Depends(get_page)]
UserPage = Annotated[Page, Depends(signed_in)]
EditorPage = Annotated[Page, Depends(editor)]
CheckedForm = Annotated[FormData, Depends(checked_form)]
CheckedRequest = Annotated[None, Depends(checked_request)]
Translate = Callable[[str], str]
