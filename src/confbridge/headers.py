"""Security headers on every response, and the Content-Security-Policy of the pages.

Every response says `nosniff` and may not be framed; over https (directly, or through a proxy
that uvicorn trusts for `X-Forwarded-Proto`) it also carries HSTS. Pages set their own policy
(`page_policy`); any other response gets one that lets it load nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A year; subdomains are left out: other services of the same domain may not speak https yet.
HSTS = "max-age=31536000"
# JSON, files, calendars: nothing in them is a document that loads anything.
NON_PAGE_POLICY = "default-src 'none'; frame-ancestors 'none'"
# HTML that sets no policy of its own (the API documentation pages): at least never framed.
OTHER_HTML_POLICY = "frame-ancestors 'none'"


def origin(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, or None for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def page_policy(media_urls: Iterable[str] = ()) -> str:
    """The policy of a page: only this site's scripts and styles, no inline code.

    Pages that play or send media (the kiosk, the chair console) talk WHIP/WHEP to the media
    servers, which may live at other origins: `media_urls` are added to connect-src. ICE and
    the media itself are not fetches, so the policy does not reach them.
    """
    origins = sorted({o for o in (origin(url) for url in media_urls) if o})
    connect = " ".join(["'self'", *origins])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"media-src 'self' blob: mediastream:; connect-src {connect}; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
    )


class SecurityHeaders:
    """ASGI middleware adding the headers above (a plain ASGI one: event streams pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
                if "content-security-policy" not in headers:
                    html = headers.get("content-type", "").startswith("text/html")
                    headers["Content-Security-Policy"] = (
                        OTHER_HTML_POLICY if html else NON_PAGE_POLICY
                    )
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
