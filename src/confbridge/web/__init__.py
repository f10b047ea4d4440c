"""Web pages and the browser's static files (the WebRTC terminal code lives in `static/js/`)."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
"""Served as-is to browsers; nothing in it may load from outside the bridge (closed networks)."""
