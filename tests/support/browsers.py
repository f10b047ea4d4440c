"""Debian's Chromium, headless, driven by Playwright, on loopback: where it is, how it is
started, and where screenshots go."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser as AsyncBrowser
    from playwright.sync_api import Browser as SyncBrowser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",  # a 640x480 test pattern and a beeping microphone
    "--use-fake-ui-for-media-stream",  # getUserMedia is granted without a prompt
    "--allow-loopback-in-peer-connection",  # ICE candidates on 127.0.0.1
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--no-first-run",
    # The machine has no route outside: keep Chromium from trying.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def skip_without_chromium() -> None:
    """Skip the calling module where Chromium is missing, except in CI (there it must exist)."""
    if not CHROMIUM.exists() and not os.environ.get("CI"):
        pytest.skip(f"{CHROMIUM} is not installed (CI installs it)", allow_module_level=True)


def artifact(name: str) -> str:
    """The path of a screenshot or trace named `name` in `test-artifacts/`."""
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / name)


@contextmanager
def sync_chromium() -> Iterator[SyncBrowser]:
    """Chromium for Playwright's synchronous API; closed at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@asynccontextmanager
async def async_chromium() -> AsyncIterator[AsyncBrowser]:
    """Chromium for Playwright's asyncio API; closed at the end."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()
