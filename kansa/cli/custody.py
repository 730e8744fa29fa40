"""`kansa custody`: the encrypted target data store."""

from __future__ import annotations

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
    destroy the keys, then append custody.destroyed."""

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
        appended = target.append([Submission(e) for e in events], now=moment)
        for event, entry in zip(events, appended, strict=True):
            data = event["data"]
            click.echo(
                f"batch {data['batch']}: key {', '.join(data['keys'])} destroyed;"
                f" custody.destroyed is entry {entry.index}"
            )
