"""`confbridge sfu`: one SFU worker process (the media plane's entry point)."""

from __future__ import annotations

from typing import Annotated

import typer

from confbridge.cli.common import clean_errors, fail


@clean_errors
def sfu(
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port", min=1, max=65535)] = None,
) -> None:
    """Run one SFU worker (WHIP/WHEP); settings from CONFBRIDGE_SFU_* variables."""
    import asyncio

    from pydantic import ValidationError

    from confbridge.private_files import make_process_private
    from sfu.config import WorkerSettings
    from sfu.grants import GrantKeyUnavailable, GrantVerifier
    from sfu.main import die_with_parent, run

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    try:
        settings = WorkerSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        key = ".".join(map(str, first["loc"]))
        fail(f"config error: sfu.{key}: {message}" if key else f"config error: sfu {message}", 2)
        return
    if settings.parent_pid is not None:
        die_with_parent(settings.parent_pid)  # a worker of `serve`: it goes when serve goes
    if not settings.node_key:
        fail(
            f"config error: sfu.node_key: missing; enrol this node on the control plane "
            f"(`confbridge nodes enroll {settings.node_id}`) and set CONFBRIDGE_SFU_NODE_KEY",
            2,
        )
        return
    # the spool and the fetched key: this worker's user alone reads them
    make_process_private(settings.spool_dir)
    if not settings.grant_public_key_file.is_file():
        # a node on another machine: the key comes from the control plane it registers with
        try:
            asyncio.run(
                GrantVerifier.load(
                    settings.grant_public_key_file,
                    control_url=settings.control_url,
                    node_key=settings.node_key,
                )
            )
        except (GrantKeyUnavailable, ValueError, OSError) as exc:
            fail(
                f"{exc} (set CONFBRIDGE_SFU_GRANT_PUBLIC_KEY_FILE, or CONFBRIDGE_SFU_CONTROL_URL "
                "and CONFBRIDGE_SFU_NODE_KEY)"
            )
            return
        typer.echo(f"fetched the grant public key into {settings.grant_public_key_file}")
    run(settings)
