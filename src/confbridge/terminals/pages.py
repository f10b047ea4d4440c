"""The kiosk page (`/terminal`): a ward hall's screen that pairs, shows what is next, and joins
by itself. Everything it does goes through the API with the terminal's token."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from confbridge import __version__

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(tags=["kiosk"], include_in_schema=False)


@router.get("/terminal", response_class=HTMLResponse, name="kiosk_page")
def kiosk_page(request: Request) -> HTMLResponse:
    """The kiosk; `?code=ABCD-EFGH` pairs it (the URL in a QR code), `?lang=en` for English."""
    settings = request.app.state.settings
    return templates.TemplateResponse(
        request,
        "terminal.html",
        {
            "version": __version__,
            "heartbeat_interval_s": settings.terminals.heartbeat_interval_s,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/terminal/kiosk.js", name="kiosk_script")
def kiosk_script() -> FileResponse:
    return FileResponse(HERE / "static" / "kiosk.js", media_type="text/javascript")
