"""The `kansa witness` commands: a C2SP tlog-witness the city runs on its own machine."""

from __future__ import annotations

import json

import click

from ledger.witness import Witness, create_witness_app

from ._common import now, user_errors


@click.group()
def witness() -> None:
    """A witness: cosigns a log's checkpoints only while they stay consistent (C2SP tlog-witness)."""


@witness.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", required=True, help="The witness's key name, e.g. city.nagaoka.example/witness.")
def witness_init(directory: str, name: str) -> None:
    """Create a witness in DIRECTORY (key 0600) and print its verifier key (type 0x04)."""
    with user_errors():
        created = Witness.init(directory, name)
        click.echo(created.vkey)
        click.echo(
            "上の行は証人の検証鍵です。台帳を運用する事業者に渡し（kansa ledger witness add）、"
            "ポリシーのファイルに記載してください。"
            " This is the witness's verifier key: give it to the ledger's host and put it in policies.",
            err=True,
        )


@witness.command("add-log")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--origin", required=True, help="The log's origin line.")
@click.option("--vkey", required=True, help="The log's verifier key (`kansa ledger vkey DB`).")
def witness_add_log(directory: str, origin: str, vkey: str) -> None:
    """Witness the log ORIGIN, whose checkpoints are signed by VKEY."""
    with user_errors(), Witness(directory) as opened:
        opened.add_log(origin, vkey, now=now())
        click.echo(f"台帳 {origin} を見守る対象に登録しました。 witnessing {origin}")


@witness.command("serve")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8740, show_default=True, type=int)
def witness_serve(directory: str, host: str, port: int) -> None:
    """Serve POST /add-checkpoint and GET /<hex SHA-256 of the origin>/checkpoint."""
    import uvicorn

    with user_errors():
        opened = Witness(directory)
    uvicorn.run(create_witness_app(opened, clock=now), host=host, port=port, log_level="warning")


@witness.command("evidence")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--origin", default=None, help="Only this log's.")
def witness_evidence(directory: str, origin: str | None) -> None:
    """Print the refused checkpoints kept as evidence (JSON Lines): each signed by the log, beside
    the checkpoint it contradicts (a fork or a rollback)."""
    with user_errors(), Witness(directory) as opened:
        for kept in opened.evidence(origin):
            click.echo(
                json.dumps(
                    {
                        "origin": kept.origin,
                        "received_at": kept.received_at,
                        "status": kept.status,
                        "reason": kept.reason,
                        "refused": kept.request,
                        "cosigned": kept.latest_note,
                    },
                    ensure_ascii=False,
                )
            )
