"""`kansa custody`: the encrypted target data store."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ledger import Submission

from ._common import key_option, now, open_ledger, user_errors


@click.group()
def custody() -> None:
    """Data custody: the encrypted target data store."""


@custody.command("destroy")
@click.argument("batch", required=False)
@click.option(
    "--contract",
    "whole",
    is_flag=True,
    help="At the contract's end: every batch left and the contract's secret (instead of BATCH).",
)
@click.option(
    "--store",
    "store_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The data store (targets.db).",
)
@click.option("--ledger", "db", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--by", required=True, help="The custodian's staff id.")
@key_option
def custody_destroy(
    batch: str | None, whole: bool, store_path: str, db: str, by: str, key: str | None
) -> None:
    """Crypto-shred BATCH (or, with --contract, all the contract's target data and its secret):
    destroy the keys, then append custody.destroyed (kept in STORE.destroyed-pending.jsonl
    until the ledger has it)."""

    from dialer_core.datastore import DataStore, DataStoreError
    from dialer_core.targets import destroy_targets

    if whole == (batch is not None):
        raise click.UsageError("give either BATCH or --contract")
    with user_errors():
        target = open_ledger(db, key, signing=True)
        moment = now()
        with DataStore(store_path) as store:
            try:
                events = destroy_targets(store, batch=batch, custodian=by, now=moment)
            except DataStoreError as exc:
                raise click.ClickException(str(exc)) from exc
        # The keys are gone now: the events must not be lost if the append fails. They are
        # kept beside the store until the ledger has them, for `kansa ledger append`.
        pending = Path(f"{store_path}.destroyed-pending.jsonl")
        lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)
        pending.write_text(lines, encoding="utf-8")
        try:
            appended = target.append([Submission(e) for e in events], now=moment)
        except Exception as exc:
            raise click.ClickException(
                f"the keys were destroyed but custody.destroyed could not be appended ({exc}); "
                f"the events are kept in {pending}: append them with "
                f"`kansa ledger append {db} {pending}`"
            ) from exc
        pending.unlink()
        for event, entry in zip(events, appended, strict=True):
            data = event["data"]
            click.echo(
                f"batch {data['batch']}: key {', '.join(data['keys'])} destroyed;"
                f" custody.destroyed is entry {entry.index}"
            )
