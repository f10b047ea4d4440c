"""Mounting the web pages on the control plane's app."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from confbridge.web import (
    STATIC_DIR,
    admin,
    attendance_pages,
    booking_pages,
    calendar_pages,
    console_pages,
    gallery_pages,
    occurrence_pages,
    record_edit_pages,
    record_pages,
    recording_pages,
    series_record_pages,
    signin_pages,
    site_pages,
)
from confbridge.web.context import language_of, render
from confbridge.web.dashboard_pages import router as dashboard_router
from confbridge.web.i18n import translations
from confbridge.web.report_pages import router as report_router
from confbridge.web.security import (
    PASSWORD_PAGE,
    SESSION_COOKIE,
    CsrfFailed,
    NotAllowed,
    PasswordChangeRequired,
    SignInRequired,
)
from confbridge.web.shared import local_path

# Paths that are not pages: their callers are programs and read JSON.
NOT_PAGES = ("/api/", "/whip", "/whep", "/healthz", "/readyz", "/metrics")
FETCH_HEADER = "x-requested-with"
"""The pages' scripts send `X-Requested-With: fetch`: they get JSON where a browser gets a
page (a 401 instead of a redirect to the sign-in page)."""


def is_fetch(request: Request) -> bool:
    """Whether the request comes from a page's script rather than the browser's navigation."""
    accept = request.headers.get("accept", "")
    return (
        request.headers.get(FETCH_HEADER) == "fetch"
        or "application/json" in accept
        or "text/event-stream" in accept
    )


def _return_to(request: Request) -> str:
    """Where the sign-in should lead back to: the page itself, or for a form's POST the page
    that held the form (its Referer, when it is a path of this site)."""
    url = request.url
    if request.method == "GET":
        return url.path + (f"?{url.query}" if url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc != url.netloc:
        return "/calendar"
    target = referer.path + (f"?{referer.query}" if referer.query else "")
    return local_path(target)


def sign_in_url(request: Request, target: str) -> str:
    """The sign-in page leading back to `target`; it says the session ended if there was one."""
    expired = "&expired=1" if request.cookies.get(SESSION_COOKIE) else ""
    return f"/sign-in?next={quote(target, safe='')}{expired}"


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
        gallery_pages,
        site_pages,
        admin,
        attendance_pages,
        record_pages,
        recording_pages,
        record_edit_pages,
        series_record_pages,
    ):
        app.include_router(pages.router)
    app.include_router(report_router)
    app.include_router(dashboard_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _exc: SignInRequired) -> Response:
        if is_fetch(request):
            # a script cannot follow a redirect to a page: it says so, the same way everywhere
            # (static/js/session.js), and leads back to the page it runs in
            _ = translations(language_of(request)).gettext
            return JSONResponse(
                {"detail": _("Your session has ended. Sign in again to continue."),
                 "code": "session_expired"},
                status_code=401,
            )  # fmt: skip
        return RedirectResponse(sign_in_url(request, _return_to(request)), status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # the API keeps its JSON; a person who mistyped an address gets a page in their language
        path = request.url.path
        if exc.status_code != 404 or path.startswith(NOT_PAGES) or is_fetch(request):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        _ = translations(language_of(request)).gettext
        return _error_page(request, 404, _("This page does not exist."))

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
