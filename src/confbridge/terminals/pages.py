"""The kiosk page (`/terminal`): a ward hall's screen that pairs, shows what is next, and joins
by itself. Everything it does goes through the API with the terminal's token."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, status
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


# The kiosk's script and the modules it imports, each with what it does on the screen.
KIOSK_SCRIPTS = {
    "kiosk": "pairing, the agenda, joining and leaving each meeting, the heartbeat",
    "words": "the screen's words in Vietnamese and English",
    "selftest": "the camera and microphone, and their self-test",
    "content": "content sharing (trình chiếu)",
    "countdown": "the countdown's wording",
    "record": "the current agenda item on the programme",
    "recording": "the recording indicator on the programme",
    "documents": "the meeting's documents and their pages on the screen",
}


@router.get("/terminal/{script}.js", name="kiosk_script")
def kiosk_script(script: str) -> FileResponse:
    """The kiosk's script or one of its modules (`KIOSK_SCRIPTS`); anything else is 404."""
    if script not in KIOSK_SCRIPTS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such script")
    return FileResponse(HERE / "static" / f"{script}.js", media_type="text/javascript")


@router.get("/terminal/kiosk.css", name="kiosk_style")
def kiosk_style() -> FileResponse:
    return FileResponse(HERE / "static" / "kiosk.css", media_type="text/css")
