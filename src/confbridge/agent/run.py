"""Starting the agent: its token (given, stored, or obtained by pairing), media, logging."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from confbridge.agent.agent import AgentOptions, TerminalAgent
from confbridge.agent.client import ControlClient, ControlError
from confbridge.agent.content import ContentSource
from confbridge.agent.media import MediaSources
from confbridge.agent.screen import KioskScreen, ScreenOptions
from sfu.rtc.ice import set_consent_timing, use_host_addresses

log = logging.getLogger("confbridge.agent")

# ICE consent checks every second, three misses and the session counts as lost: a hall notices
# a dead bridge in about 3 s instead of aioice's 30 s, and rejoins.
CONSENT_INTERVAL_S = 1.0
CONSENT_FAILURES = 3


class AgentSetupError(Exception):
    """The agent cannot start (no token, a pairing refused); the message says why."""


async def obtain_token(
    client: ControlClient, *, token: str | None, token_file: Path | None, code: str | None
) -> str:
    """The given token, else the stored one, else one obtained with the pairing code (stored
    in `token_file`, mode 0600, so that a restart does not need a new code)."""
    if token:
        return token
    if token_file is not None and token_file.is_file():
        stored = token_file.read_text().strip()
        if stored:
            return stored
    if not code:
        raise AgentSetupError(
            "no terminal token: give --token, a --token-file holding one, or --pair CODE"
        )
    try:
        answer = await client.pair(code)
    except ControlError as exc:
        raise AgentSetupError(f"pairing failed: {exc.detail}") from None
    log.info(
        "paired as terminal %s of site %s (%s)",
        answer["terminal_id"],
        answer["site_id"],
        answer["site_name"],
        extra={"event": "paired", "terminal_id": answer["terminal_id"]},
    )
    if token_file is not None:
        token_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(answer["token"] + "\n")
    return str(answer["token"])


async def run_agent(
    options: AgentOptions,
    media: MediaSources,
    *,
    token: str | None,
    token_file: Path | None,
    code: str | None,
    host_addresses: Sequence[str] = (),
    screen: ScreenOptions | None = None,
    content: ContentSource | None = None,
) -> None:
    """Pair if needed, then run until cancelled or revoked (raises `Revoked`). With `screen`,
    a kiosk window attends the meetings and the devices are left to it (not opened here).
    With `content`, the hall presents it in every meeting, whenever it may."""
    # systemd stops the service with SIGTERM: leave the meeting (DELETE) before exiting
    main = asyncio.current_task()
    if main is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    set_consent_timing(CONSENT_INTERVAL_S, CONSENT_FAILURES)
    if host_addresses:
        use_host_addresses(list(host_addresses))
    client = ControlClient(options.server)
    try:
        client.token = await obtain_token(client, token=token, token_file=token_file, code=code)
        kiosk = None
        if screen is not None:
            kiosk = KioskScreen(client, screen)
        else:
            await asyncio.to_thread(media.open)
        await TerminalAgent(client, media, options, kiosk, await _opened(content)).run()
    finally:
        media.close()
        if content is not None:
            content.close()
        await client.close()
        log.info("stopped", extra={"event": "stopped"})


async def _opened(content: ContentSource | None) -> ContentSource | None:
    """The content source, opened; None if there is none or it cannot be opened (the hall
    still attends its meetings, and the log says why it presents nothing)."""
    if content is None or not content.configured:
        return None
    try:
        await asyncio.to_thread(content.open)
    except Exception as exc:  # PyAV raises several kinds; all mean "nothing to present"
        log.error(
            "content %s cannot be opened: %s",
            content.file or content.device,
            exc,
            extra={"event": "content_unavailable"},
        )
        return None
    return content
