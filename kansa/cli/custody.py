"""`kansa custody`: the encrypted target data store."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ledger import Ledger, Submission
from ledger.store import Appended

from ._common import at_option, key_option, ledger_or_print, moment_of, now, open_ledger, record, user_errors


def _refuse_if_pending(pending: Path, db: str) -> None:
    """An earlier run's events that never reached the ledger are in `pending`: they go first
    (a second file would overwrite it, and the store already holds what they record)."""
    if pending.exists():
        raise click.ClickException(
            f"{pending} holds events of an earlier run that the ledger does not have yet: append"
            f" them first (`kansa ledger append {db} {pending}`), then remove the file"
        )


def _append_keeping(
    target: Ledger, events: list[dict[str, Any]], pending: Path, db: str, what: str, moment: datetime
) -> list[Appended]:
    """Appends `events`, kept in `pending` until the ledger has them (what they record is done
    already: keys shredded, a batch in the store), for `kansa ledger append`."""
    lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)
    pending.write_text(lines, encoding="utf-8")
    try:
        appended = target.append([Submission(e) for e in events], now=moment)
    except Exception as exc:
        raise click.ClickException(
            f"{what} but its events could not be appended ({exc}); they are kept in {pending}:"
            f" append them with `kansa ledger append {db} {pending}`"
        ) from exc
    pending.unlink()
    return list(appended)


@click.group()
def custody() -> None:
    """Data custody: the encrypted target data store."""


@custody.command("erased")
@click.argument("batch")
@click.option("--media", required=True, help="The media's label, e.g. USB-2026-09 (as imported).")
@click.option("--method", default="overwrite", show_default=True, help="How it was erased.")
@click.option("--by", required=True, help="The custodian's staff id (the event's actor).")
@at_option("the media was erased")
@ledger_or_print()
def custody_erased(
    batch: str,
    media: str,
    method: str,
    by: str,
    at: str | None,
    db: str | None,
    print_only: bool,
    key: str | None,
) -> None:
    """Append custody.media_erased: the media BATCH came on was erased after the import."""
    from ledger.event import envelope

    if not all(v.strip() for v in (batch, media, method, by)):
        raise click.UsageError("BATCH, --media, --method and --by may not be empty")
    data = {"batch": batch, "media": media, "method": method}
    record([envelope("custody.media_erased", by, data, moment_of(at))], db, key, print_only)


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
        pending = Path(f"{store_path}.destroyed-pending.jsonl")
        _refuse_if_pending(pending, db)
        target = open_ledger(db, key, signing=True)
        moment = now()
        with DataStore(store_path) as store:
            try:
                events = destroy_targets(store, batch=batch, custodian=by, now=moment)
            except DataStoreError as exc:
                raise click.ClickException(str(exc)) from exc
        appended = _append_keeping(target, events, pending, db, "the keys were destroyed", moment)
        for event, entry in zip(events, appended, strict=True):
            data = event["data"]
            click.echo(
                f"batch {data['batch']}: key {', '.join(data['keys'])} destroyed;"
                f" custody.destroyed is entry {entry.index}"
            )


@custody.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--store",
    "store_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The data store (targets.db; created by the first import).",
)
@click.option("--ledger", "db", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--batch", required=True, help="The batch's name, e.g. B2026-09 (one per file handed over).")
@click.option("--month", required=True, help="The campaign month the file is for, YYYY-MM.")
@click.option("--by", required=True, help="The custodian's staff id (the actor of the custody events).")
@click.option("--from", "received_from", required=True, help="The city's person who handed the file over.")
@click.option("--media", required=True, help="The media's label, e.g. USB-2026-09.")
@click.option("--transport", default="hand_delivery", show_default=True, help="How the media came.")
@click.option("--encrypted/--not-encrypted", default=True, show_default=True, help="Was the media encrypted?")
@key_option
def custody_import(
    file: str,
    store_path: str,
    db: str,
    batch: str,
    month: str,
    by: str,
    received_from: str,
    media: str,
    transport: str,
    encrypted: bool,
    key: str | None,
) -> None:
    """Import the city's target FILE (docs/targets.md) into the encrypted store and append
    custody.received, custody.imported and one case.opened per case (by the custodian).

    All or nothing: a bad row is reported with its line and nothing is imported."""

    from dialer_core.datastore import DataStore, DataStoreError
    from dialer_core.targets import TargetFileError, import_targets

    if not all(v.strip() for v in (batch, month, by, received_from, media, transport)):
        raise click.UsageError("--batch, --month, --by, --from, --media and --transport may not be empty")
    with user_errors():
        pending = Path(f"{store_path}.imported-pending.jsonl")
        _refuse_if_pending(pending, db)
        target = open_ledger(db, key, signing=True)
        moment = now()
        events: list[dict[str, object]] = []
        with DataStore(store_path) as store:
            try:
                parsed = import_targets(
                    file,
                    batch=batch,
                    month=month,
                    store=store,
                    append=events.extend,
                    custodian=by,
                    received_from=received_from,
                    media=media,
                    encrypted=encrypted,
                    transport=transport,
                    now=moment,
                )
            except (TargetFileError, DataStoreError) as exc:
                raise click.ClickException(str(exc)) from exc
        appended = _append_keeping(target, events, pending, db, f"batch {batch} is in the store", moment)
        click.echo(
            f"batch {batch}: {len(parsed.residents)} cases imported for {month};"
            f" entries {appended[0].index}..{appended[-1].index}"
        )
