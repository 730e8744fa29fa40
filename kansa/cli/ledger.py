"""The `kansa ledger` commands: the append-only store (docs/verification.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

import click

from ledger import (
    verify_ledger,
    verify_since,
)
from ledger.commands import (
    LineError,
    append_lines,
    backup_ledger,
    consistency_json,
    export_lines,
    inclusion_json,
    init_ledger,
)
from ledger.policy import load_policy
from ledger.receipt import ReceiptError, make_receipt, verify_receipt
from ledger.tiles import write_ledger_tiles
from ledger.witness_client import COSIGNED, add_witness, cosign
from ledger.witnessed import verify_policy

from ._common import (
    clock_from,
    could_not_check,
    key_option,
    now,
    open_ledger,
    progress_bar,
    read_ledger,
    start_at_option,
    user_errors,
)


@click.group()
def ledger() -> None:
    """The append-only, signed, hash-chained ledger (docs/verification.md)."""


@ledger.command("init")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--origin", required=True, help="The log's name, e.g. nagaoka.example/kansa/nhi-2026.")
@click.option("--contract", required=True, help="The contract profile id, e.g. nagaoka-nhi-2026.")
@key_option
def ledger_init(db: str, origin: str, contract: str, key: str | None) -> None:
    """Create the ledger DB and its signing key (kept outside the database file)."""
    with user_errors():
        created, key_path = init_ledger(db, origin=origin, contract=contract, key_path=key, now=now())
        click.echo(f"created ledger {db} for {contract}")
        click.echo(f"signing key: {key_path.resolve()} (mode 0600; keep it off the database host's backups)")
        click.echo(f"verifier key: {created.verifier.vkey}")


@ledger.command("append")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.argument("file", type=click.File("r", encoding="utf-8"))
@key_option
def ledger_append(db: str, file: TextIO, key: str | None) -> None:
    """Append events from FILE (JSON Lines, or - for stdin); print each entry's index.

    A line is an event envelope, signed here with the ledger's key, or
    {"event": ..., "sig": {"key", "ed25519"}} signed by a registered key.
    One bad line appends nothing.
    """
    with user_errors():
        target = open_ledger(db, key, signing=True)
        try:
            results = append_lines(target, file, now=now())
        except LineError as exc:
            raise click.ClickException(f"{exc}; nothing from this file was appended") from exc
        for result in results:
            click.echo(result.index)
            if not result.created:
                click.echo(f"entry {result.index} was already in the ledger (same id and content)", err=True)


@ledger.command("checkpoint")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the witnesses' cosignatures (when witnesses are configured).",
)
@key_option
def ledger_checkpoint(db: str, wait: float, key: str | None) -> None:
    """Sign a checkpoint of the current size, have the witnesses cosign it, print the note.

    Exit 0 when every witness cosigned, 1 when one refused it as inconsistent,
    2 when one could not be reached (the note is stored and printed either way).
    """
    with user_errors():
        target = open_ledger(db, key, signing=True)
        outcome = cosign(target, target.sign_checkpoint(now=now()), now=now(), wait=wait)
    click.echo(outcome.checkpoint.note, nl=False)
    for result in outcome.results:
        if result.status != COSIGNED:
            click.echo(f"{result.status}: {result.detail}", err=True)
    sys.exit(outcome.exit_code)


@ledger.group("witness")
def ledger_witness() -> None:
    """The witnesses that cosign this ledger's checkpoints (C2SP tlog-witness)."""


@ledger_witness.command("add")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True, help="The witness's key name.")
@click.option("--url", required=True, help="Its submission prefix, e.g. http://witness.example:8740.")
@click.option("--vkey", required=True, help="Its verifier key (type 0x04), from `kansa witness init`.")
def ledger_witness_add(db: str, name: str, url: str, vkey: str) -> None:
    """Ask the witness NAME at URL to cosign every new checkpoint."""
    with user_errors():
        added = add_witness(open_ledger(db), name=name, url=url, vkey=vkey, now=now())
        click.echo(f"witness {added.name} at {added.url}")


@ledger.command("vkey")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
def ledger_vkey(db: str) -> None:
    """Print the verifier key line."""
    with user_errors():
        click.echo(read_ledger(db).verifier.vkey)


@ledger.command("export")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--from", "start", type=click.IntRange(min=0), default=0, help="First index.")
@click.option("--to", "stop", type=click.IntRange(min=0), default=None, help="Stop before this index.")
def ledger_export(db: str, start: int, stop: int | None) -> None:
    """Print entries as JSON Lines: {"index", "leaf" (base64), "leaf_hash"}."""
    with user_errors():
        for line in export_lines(read_ledger(db), start, stop):
            click.echo(line)


@ledger.command("prove")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.argument("index", type=click.IntRange(min=0))
@click.option(
    "--size", type=click.IntRange(min=1), default=None, help="Tree size (default: the latest checkpoint's)."
)
@click.option(
    "--receipt",
    is_flag=True,
    help="Print a C2SP tlog-proof receipt instead (the cosigned checkpoint and the entry's leaf).",
)
def ledger_prove(db: str, index: int, size: int | None, receipt: bool) -> None:
    """Print the RFC 6962 inclusion proof of entry INDEX in the tree of --size entries."""
    with user_errors():
        target = read_ledger(db)
        if receipt:
            if size is not None:
                raise click.ClickException("a receipt is for the latest checkpoint: drop --size")
            click.echo(make_receipt(target, index).text, nl=False)
            return
        if size is None:
            latest = target.latest_checkpoint()
            if latest is None:
                raise click.ClickException("no checkpoint yet: give --size")
            size = latest.size
        click.echo(json.dumps(inclusion_json(target, index, size)))


@ledger.command("verify-receipt")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--policy",
    "policy_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The C2SP tlog-policy to hold it to (the log's key, the witnesses, the quorum).",
)
def ledger_verify_receipt(file: TextIO, policy_file: str) -> None:
    """Check a tlog-proof receipt offline: the leaf, its inclusion, the checkpoint and its quorum."""
    with user_errors():
        policy = load_policy(policy_file)
        text = file.read()
    try:
        checked = verify_receipt(text, policy)
    except ReceiptError as exc:
        click.echo(f"FAILED: {exc}")
        sys.exit(1)
    who = ", ".join(checked.cosigners) or "no witness (quorum none)"
    click.echo(f"OK: entry {checked.index} is in the checkpoint of size {checked.size}, cosigned by {who}")


@ledger.command("consistency")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1))
def ledger_consistency(db: str, old: int, new: int) -> None:
    """Print the RFC 6962 consistency proof from tree size OLD to NEW."""
    with user_errors():
        click.echo(json.dumps(consistency_json(read_ledger(db), old, new)))


@ledger.command("verify")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--checkpoint",
    "checkpoint",
    type=click.File("r", encoding="utf-8"),
    help="A signed checkpoint you kept: catches truncation and rewritten history.",
)
@click.option(
    "--since-checkpoint",
    "since",
    type=click.File("r", encoding="utf-8"),
    help="Verify incrementally from this trusted checkpoint.",
)
@click.option("--vkey", help="The verifier key you trust (default: the one stored in DB).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes (default: cores).")
@click.option("--events", "check_events", is_flag=True, help="Also check every event against the vocabulary.")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A C2SP tlog-policy file: also demand its quorum of cosignatures, and ask its witnesses.",
)
def ledger_verify(
    db: str,
    checkpoint: Any,
    since: Any,
    vkey: str | None,
    workers: int | None,
    check_events: bool,
    policy_file: str | None,
) -> None:
    """Check the chain, every signature, column, tree node and checkpoint.

    Exit 0 when all holds; 1 when the ledger fails verification (the first bad index and
    why); 2 when it could not be checked (missing, unreadable, not a ledger, I/O error).
    """
    kept = checkpoint.read() if checkpoint else None
    with progress_bar("verifying") as progress:
        if since is not None:
            report = verify_since(
                db,
                since.read(),
                checkpoint=kept,
                vkey=vkey,
                workers=workers,
                progress=progress,
                check_events=check_events,
            )
        else:
            report = verify_ledger(
                db, checkpoint=kept, vkey=vkey, workers=workers, progress=progress, check_events=check_events
            )
    click.echo(report.summary())
    if not report.ok:
        sys.exit(report.exit_code)
    if policy_file is not None:
        with could_not_check():
            policy = load_policy(policy_file)
        checked = verify_policy(db, policy)
        for line in checked.lines:
            click.echo(line)
        sys.exit(checked.exit_code)


@ledger.command("backup")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.argument("dest", type=click.Path(dir_okay=False))
def ledger_backup(db: str, dest: str) -> None:
    """Copy DB to DEST as one consistent file (even while the service writes), then verify the copy.

    Exit 0 when the copy verifies, 1 when it does not, 2 when it could not be made or checked.
    """
    with could_not_check():
        backup_ledger(db, dest)
    report = verify_ledger(dest)
    click.echo(f"{dest}: {report.summary()}")
    if not report.ok:
        sys.exit(report.exit_code)


@ledger.command("tiles")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Publish only up to the latest checkpoint that carries this tlog-policy's quorum.",
)
def ledger_tiles(db: str, directory: str, policy_file: str | None) -> None:
    """Write the log up to its latest checkpoint as static C2SP tlog-tiles in DIRECTORY (incrementally)."""
    with user_errors():
        policy = load_policy(policy_file) if policy_file else None
        written = write_ledger_tiles(read_ledger(db), directory, policy=policy)
        click.echo(
            f"{directory}: size {written.size} (was {written.previous}), {written.files - 1} new tile(s)"
            " and the checkpoint"
        )


@ledger.command("serve")
@click.argument("db", type=click.Path(exists=True))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Loopback by default; put TLS and client certificates in a reverse proxy.",
)
@click.option("--port", default=8730, show_default=True, type=int)
@click.option(
    "--checkpoint-seconds",
    default=60.0,
    show_default=True,
    type=float,
    help="Sign a checkpoint at least this often while entries arrive.",
)
@click.option(
    "--checkpoint-entries",
    default=1000,
    show_default=True,
    type=int,
    help="... and at least every this many entries.",
)
@click.option(
    "--key-requests-from",
    default="manager",
    show_default=True,
    help="The role whose signed requests to POST /v1/keys are appended as key events ('' turns it off).",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A C2SP tlog-policy: GET /checkpoint (tiles) serves only a checkpoint its quorum cosigned.",
)
@start_at_option
@key_option
def ledger_serve(
    db: str,
    host: str,
    port: int,
    checkpoint_seconds: float,
    checkpoint_entries: int,
    key_requests_from: str,
    policy_file: str | None,
    start_at: str | None,
    key: str | None,
) -> None:
    """Serve the ledger to operators' clients over HTTP (POST /v1/events, proofs, checkpoints, tiles).

    DB may be a directory: every *.db ledger in it (key beside each) is served under /<origin>/.
    With --start-at the ledger's clock (`received`, checkpoints) is a rehearsal's: only for a
    rehearsal or training ledger, never for the contract's.
    """
    import uvicorn

    from contract.staff import designated
    from ledger.hosting import serve_app
    from ledger.service import ServiceConfig

    config = ServiceConfig(checkpoint_seconds, checkpoint_entries)
    key_policy = designated(key_requests_from) if key_requests_from else None
    clock = clock_from(start_at)
    if start_at is not None:
        click.echo(f"rehearsal: the ledger's clock starts at {start_at} (never the contract's)", err=True)
    with user_errors():
        policy = load_policy(policy_file) if policy_file else None
        if key is not None and Path(db).is_dir():
            raise click.UsageError("--key is for one ledger; in a directory each DB's key is DB.key")
        app = serve_app(db, key_path=key, clock=clock, config=config, key_policy=key_policy, policy=policy)
    uvicorn.run(app, host=host, port=port, log_level="warning")
