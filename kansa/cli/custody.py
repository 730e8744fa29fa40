"""`kansa custody`: the encrypted target data store."""

from __future__ import annotations

import click

from ledger import Submission
from ledger.event import envelope

from ._common import key_option, now, open_ledger, user_errors


@click.group()
def custody() -> None:
    """Data custody: the encrypted target data store."""


@custody.command("destroy")
@click.argument("batch")
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
def custody_destroy(batch: str, store_path: str, db: str, by: str, key: str | None) -> None:
    """Crypto-shred BATCH: destroy its key, then append custody.destroyed."""

    from dialer_core.datastore import DataStore, DataStoreError

    with user_errors():
        target = open_ledger(db, key, signing=True)
        with DataStore(store_path) as store:
            try:
                key_id = store.destroy(batch)
            except DataStoreError as exc:
                raise click.ClickException(str(exc)) from exc
        moment = now()
        event = envelope(
            "custody.destroyed", by, {"batch": batch, "method": "crypto_shred", "keys": [key_id]}, moment
        )
        (appended,) = target.append([Submission(event)], now=moment)
        click.echo(f"batch {batch}: key {key_id} destroyed; custody.destroyed is entry {appended.index}")
