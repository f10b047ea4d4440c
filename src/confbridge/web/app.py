"""Mounting the web pages on the control plane's app."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from confbridge.web import (
    STATIC_DIR,
    admin_pages,
    booking_pages,
    calendar_pages,
    console_pages,
    occurrence_pages,
    signin_pages,
    site_pages,
)
from confbridge.web.context import language_of, render
from confbridge.web.dashboard_pages import router as dashboard_router
from confbridge.web.i18n import translations
from confbridge.web.report_pages import router as report_router
from confbridge.web.security import (
    PASSWORD_PAGE,
    CsrfFailed,
    NotAllowed,
    PasswordChangeRequired,
    SignInRequired,
)


def _error_page(request: Request, status_code: int, message: str) -> Response:
    return render(
        request, "error.html", request.app.state.settings, None, status_code, message=message
    )


def install(app: FastAPI) -> None:
    """Serve the pages at the site's root and the browser's files under /static."""
    for pages in (
        signin_pages,
        calendar_pages,
        booking_pages,
        occurrence_pages,
        console_pages,
        site_pages,
        admin_pages,
    ):
        app.include_router(pages.router)
    app.include_router(report_router)
    app.include_router(dashboard_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _exc: SignInRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/sign-in?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(PasswordChangeRequired)
    async def _password_change(request: Request, _exc: PasswordChangeRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PASSWORD_PAGE}?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(NotAllowed)
    async def _not_allowed(request: Request, _exc: NotAllowed) -> Response:
        _ = translations(language_of(request)).gettext
        return _error_page(request, 403, _("Your role may not use this page."))

    @app.exception_handler(CsrfFailed)
    async def _csrf_failed(request: Request, _exc: CsrfFailed) -> Response:
        _ = translations(language_of(request)).gettext
        return _error_page(
            request, 403, _("The form has expired. Go back, reload the page and try again.")
        )
