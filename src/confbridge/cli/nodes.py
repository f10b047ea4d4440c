"""`confbridge nodes`: SFU nodes (enrol one with its own key, list, revoke)."""

from __future__ import annotations

from typing import Annotated

import typer

from confbridge.cli.common import clean_errors, migrated_session
from confbridge.timeutil import utcnow

app = typer.Typer(
    help="SFU nodes (máy chủ truyền hình): enrol one with its own key, list, revoke.",
    no_args_is_help=True,
)


@app.command("enroll")
@clean_errors
def nodes_enroll(
    node_id: Annotated[str, typer.Argument(help="the node's id (CONFBRIDGE_SFU_NODE_ID)")],
    allow_loopback: Annotated[
        bool, typer.Option(help="it runs on this machine and registers 127.0.0.1 URLs")
    ] = False,
    rotate: Annotated[
        bool, typer.Option(help="already enrolled: issue a new key (the old one stops)")
    ] = False,
) -> None:
    """Enrol an SFU node and print its key once (give it to the node as
    CONFBRIDGE_SFU_NODE_KEY)."""
    from confbridge.nodes import service as node_service

    with migrated_session() as session:
        _enrolment, key = node_service.enrol(
            session=session,
            node_id=node_id,
            by="cli",
            now=utcnow(),
            allow_loopback=allow_loopback,
            rotate=rotate,
        )
        session.commit()
    typer.echo(f"node {node_id} enrolled; its key (shown once): {key}")
    typer.echo(f"on the node: CONFBRIDGE_SFU_NODE_ID={node_id} CONFBRIDGE_SFU_NODE_KEY={key}")


@app.command("list")
@clean_errors
def nodes_list() -> None:
    """List enrolled SFU nodes with their state (never their keys)."""
    from confbridge.nodes import service as node_service
    from confbridge.nodes.models import SfuNode

    with migrated_session() as session:
        now = utcnow()
        enrolments = node_service.list_enrolments(session=session)
        for enrolment in enrolments:
            node = session.get(SfuNode, enrolment.node_id)
            state = node_service.state_of(node, now).value if node else "not registered"
            where = f"\t{node.public_url}" if node else ""
            kind = "local" if enrolment.local else "remote"
            typer.echo(
                f"{enrolment.node_id}\t{state}\t{kind}\tenrolled "
                f"{enrolment.enrolled_at:%Y-%m-%d %H:%M} UTC by {enrolment.enrolled_by}{where}"
            )
        typer.echo(f"{len(enrolments)} node(s)")


@app.command("revoke")
@clean_errors
def nodes_revoke(node_id: Annotated[str, typer.Argument(help="the node's id")]) -> None:
    """Revoke a node's key: it is refused at once and its rooms move at their next join."""
    from confbridge.nodes import service as node_service

    with migrated_session() as session:
        node_service.revoke(session=session, node_id=node_id, by="cli", now=utcnow())
        session.commit()
    typer.echo(f"node {node_id} revoked")
