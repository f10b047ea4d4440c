"""`confbridge serve`: the control plane, with the SFU workers it starts and supervises and
the SIP gateway it runs beside them."""

from __future__ import annotations

import logging.config
import signal
from typing import Annotated, Any

import typer

from confbridge.cli.common import clean_errors, current_settings, open_database
from confbridge.settings import Settings


@clean_errors
def serve(
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port", min=1, max=65535)] = None,
    processes: Annotated[
        int, typer.Option(help="HTTP worker processes (one per core)", min=1, max=64)
    ] = 1,
    access_log: Annotated[bool, typer.Option(help="log a line per HTTP request")] = True,
) -> None:
    """Run the control plane (migrating and seeding a fresh database first)."""
    import uvicorn

    from confbridge.bootstrap import check_admin_password, prepare
    from confbridge.local_workers import LocalWorkers
    from confbridge.main import create_app
    from confbridge.private_files import make_process_private
    from confbridge.settings import check_listen_address, config_source
    from confbridge.sip.service import SipService
    from confbridge_kernel.logs import log_config, resolve_log_format

    settings = current_settings()
    listen_host, listen_port = host or settings.host, port or settings.port
    check_listen_address(settings, listen_host)
    check_admin_password(settings)  # before a line is logged or a file is made
    # decided once, here, and handed to the workers, so that all lines look alike
    settings = settings.model_copy(update={"log_format": resolve_log_format(settings.log_format)})
    logging_config = log_config(settings.log_format, settings.log_level.upper())
    logging.config.dictConfig(logging_config)
    make_process_private(settings.data_dir)
    logging.getLogger("confbridge").info("configuration: %s", config_source())
    database = open_database(settings)
    base_url = _reachable_url(settings, listen_host, listen_port)
    prepare(settings, database, typer.echo, base_url=base_url)
    application = create_app(settings, database=database, run_scheduler=True)
    workers = LocalWorkers(
        settings, control_url=f"http://127.0.0.1:{listen_port}", database=database
    )
    # one process: /metrics is served here and shows the gateway's counters as well
    registry = application.state.metrics.registry if processes == 1 else None
    gateway = SipService(settings, database, registry) if settings.sip.enabled else None
    options: dict[str, Any] = {
        "host": listen_host,
        "port": listen_port,
        "log_level": settings.log_level,
        "proxy_headers": True,
        # X-Forwarded-* from these peers only (uvicorn trusts loopback unless told otherwise)
        "forwarded_allow_ips": settings.trusted_proxies,
        "access_log": access_log,
        "log_config": logging_config,
    }
    # SIGTERM (systemd, docker stop) ends serve as Ctrl-C does: uvicorn shuts down
    # gracefully, then raises the signal again, which lands in `_Terminated` here, so that
    # the workers are stopped before serve goes.
    signal.signal(signal.SIGTERM, _raise_terminated)
    terminated = False
    try:
        workers.start()
        if gateway is not None:
            gateway.start()
        if processes == 1:
            uvicorn.run(application, **options)
        else:
            database.dispose()  # each process opens its own connections
            uvicorn.run(
                "confbridge.main:create_served_app", factory=True, workers=processes, **options
            )
    except _Terminated:
        terminated = True
    finally:
        if gateway is not None:
            gateway.close()
        workers.close()
    if terminated:  # end as a process stopped by SIGTERM, which is what it is
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


class _Terminated(BaseException):
    """SIGTERM arrived (a BaseException, so that no `except Exception` swallows it)."""


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise _Terminated()


def _reachable_url(settings: Settings, host: str, port: int) -> str:
    """Where a person on this machine reaches `serve` (its public URL when configured)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
