"""The kiosk page (`/terminal`): a ward hall's screen that pairs, shows what is next, and joins
by itself. Everything it does goes through the API with the terminal's token."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from confbridge.headers import page_policy
from confbridge.nodes import service as node_service
from confbridge_kernel import __version__

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(tags=["kiosk"], include_in_schema=False)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def kiosk_url(request: Request, code: str) -> str:
    """The kiosk page that pairs with `code` (for a QR code), never built from a forged Host.

    From the configured `public_url`; without one, from the address the request came to only
    when that is loopback or the configured listen address. Any other Host header may have been
    forged (or rewritten by a proxy), and a QR code pointing elsewhere would hand the code to
    another server: then the URL is relative (`/terminal?code=…`, on this server).
    """
    settings = request.app.state.settings
    path = f"{request.app.url_path_for('kiosk_page')}?{urlencode({'code': code})}"
    if settings.public_url:
        return f"{settings.public_url.rstrip('/')}{path}"
    host = request.url.hostname or ""
    try:
        port = request.url.port
    except ValueError:  # a Host header with a port that is not a number
        return path
    if host in LOOPBACK_HOSTS or (host == settings.host and host not in WILDCARD_HOSTS):
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{port}" if port else ""
        return f"{request.url.scheme}://{netloc}{path}"
    return path


@router.get("/terminal", response_class=HTMLResponse, name="kiosk_page")
def kiosk_page(request: Request) -> HTMLResponse:
    """The kiosk; `?code=ABCD-EFGH` pairs it (the URL in a QR code), `?lang=en` for English."""
    settings = request.app.state.settings
    with request.app.state.db.session() as session:
        # The kiosk sends its media to whichever node holds the room: each may be called.
        media_urls = node_service.public_urls(session=session, settings=settings.sfu)
    return templates.TemplateResponse(
        request,
        "terminal.html",
        {
            "version": __version__,
            "heartbeat_interval_s": settings.terminals.heartbeat_interval_s,
        },
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": page_policy(media_urls),
            "X-Frame-Options": "DENY",
        },
    )


@router.get("/terminal/kiosk.js", name="kiosk_script")
def kiosk_script() -> FileResponse:
    return FileResponse(HERE / "static" / "kiosk.js", media_type="text/javascript")


@router.get("/terminal/content.js", name="kiosk_content_script")
def kiosk_content_script() -> FileResponse:
    """The kiosk's content sharing (trình chiếu), a module of kiosk.js."""
    return FileResponse(HERE / "static" / "content.js", media_type="text/javascript")


@router.get("/terminal/countdown.js", name="kiosk_countdown_script")
def kiosk_countdown_script() -> FileResponse:
    """The countdown's wording, a module of kiosk.js."""
    return FileResponse(HERE / "static" / "countdown.js", media_type="text/javascript")


@router.get("/terminal/record.js", name="kiosk_record_script")
def kiosk_record_script() -> FileResponse:
    """The current agenda item on the programme, a module of kiosk.js."""
    return FileResponse(HERE / "static" / "record.js", media_type="text/javascript")


@router.get("/terminal/documents.js", name="kiosk_documents_script")
def kiosk_documents_script() -> FileResponse:
    """The meeting's documents and their pages on the screen, a module of kiosk.js."""
    return FileResponse(HERE / "static" / "documents.js", media_type="text/javascript")


@router.get("/terminal/kiosk.css", name="kiosk_style")
def kiosk_style() -> FileResponse:
    return FileResponse(HERE / "static" / "kiosk.css", media_type="text/css")
