"""`confbridge sip`: the SIP gateway on its own (`serve` runs one itself unless `sip.enabled`
is false); for a gateway on another host than the control plane's HTTP server."""

from __future__ import annotations

import logging.config

from confbridge.cli.common import clean_errors, current_settings, fail, open_database


@clean_errors
def sip() -> None:
    """Answer room systems' SIP calls (settings `sip.*`); media goes to the SFU workers."""
    import asyncio
    import threading

    from confbridge.sip.service import run_gateway
    from confbridge_kernel.logs import log_config, resolve_log_format

    settings = current_settings()
    settings = settings.model_copy(update={"log_format": resolve_log_format(settings.log_format)})
    logging.config.dictConfig(log_config(settings.log_format, settings.log_level.upper()))
    database = open_database(settings)

    async def main() -> None:
        await run_gateway(settings, database, asyncio.Event(), threading.Event())

    try:
        asyncio.run(main())
    except OSError as exc:
        fail(f"sip: cannot listen on {settings.sip.listen}: {exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        pass
