"""The `kansa` command: thin click wrappers; each subcommand calls one public function."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import click

from ledger import (
    CheckpointError,
    KeyFileError,
    Ledger,
    LedgerError,
    NoteError,
    ProofError,
    Submission,
    verify_ledger,
    verify_since,
)
from ledger.commands import (
    LineError,
    append_lines,
    consistency_json,
    default_key_path,
    export_lines,
    inclusion_json,
    init_ledger,
)

EXPECTED = (LedgerError, KeyFileError, NoteError, CheckpointError, ProofError, LineError, OSError)


def now() -> datetime:
    """The wall clock, read here at the edge and passed inward."""
    return datetime.now(UTC)


@contextmanager
def user_errors() -> Iterator[None]:
    """Expected failures reach the user as one clear line, never a traceback."""
    try:
        yield
    except EXPECTED as exc:
        raise click.ClickException(str(exc)) from exc


def envelope(kind: str, actor: str, data: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """An event as events.md frames it, with a fresh UUIDv7 id (as events.md recommends)."""
    from dialer_core.client import uuid7

    return {"id": uuid7(moment), "type": kind, "at": moment.isoformat(), "actor": actor, "data": data}


def open_ledger(db: str, key: str | None = None, *, signing: bool = False) -> Ledger:
    key_path = key if key is not None else (str(default_key_path(db)) if signing else None)
    return Ledger.open(db, key_path=key_path)


key_option = click.option(
    "--key",
    "key",
    type=click.Path(dir_okay=False),
    envvar="KANSA_LEDGER_KEY",
    help="The ledger's signing key file (default: DB.key beside the database).",
)


@click.group()
@click.version_option(package_name="kansa")
def main() -> None:
    """Kansa (監査): a verifiable ledger and contract checks for payment-reminder call centers."""


@main.group()
def ledger() -> None:
    """The append-only, signed, hash-chained ledger (shared/spec/verification.md)."""


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
@key_option
def ledger_checkpoint(db: str, key: str | None) -> None:
    """Sign a checkpoint of the current size and print the signed note."""
    with user_errors():
        stored = open_ledger(db, key, signing=True).sign_checkpoint(now=now())
        click.echo(stored.note, nl=False)


@ledger.command("vkey")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
def ledger_vkey(db: str) -> None:
    """Print the verifier key line."""
    with user_errors():
        click.echo(open_ledger(db).verifier.vkey)


@ledger.command("export")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--from", "start", type=click.IntRange(min=0), default=0, help="First index.")
@click.option("--to", "stop", type=click.IntRange(min=0), default=None, help="Stop before this index.")
def ledger_export(db: str, start: int, stop: int | None) -> None:
    """Print entries as JSON Lines: {"index", "leaf" (base64), "leaf_hash"}."""
    with user_errors():
        for line in export_lines(open_ledger(db), start, stop):
            click.echo(line)


@ledger.command("prove")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.argument("index", type=click.IntRange(min=0))
@click.option(
    "--size", type=click.IntRange(min=1), default=None, help="Tree size (default: the latest checkpoint's)."
)
def ledger_prove(db: str, index: int, size: int | None) -> None:
    """Print the RFC 6962 inclusion proof of entry INDEX in the tree of --size entries."""
    with user_errors():
        target = open_ledger(db)
        if size is None:
            latest = target.latest_checkpoint()
            if latest is None:
                raise click.ClickException("no checkpoint yet: give --size")
            size = latest.size
        click.echo(json.dumps(inclusion_json(target, index, size)))


@ledger.command("consistency")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1))
def ledger_consistency(db: str, old: int, new: int) -> None:
    """Print the RFC 6962 consistency proof from tree size OLD to NEW."""
    with user_errors():
        click.echo(json.dumps(consistency_json(open_ledger(db), old, new)))


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
def ledger_verify(
    db: str, checkpoint: Any, since: Any, vkey: str | None, workers: int | None, check_events: bool
) -> None:
    """Check the chain, every signature, column, tree node and checkpoint; exit 1 at the first bad index."""
    kept = checkpoint.read() if checkpoint else None
    with _progress("verifying") as progress:
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
    sys.exit(0 if report.ok else 1)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr when it is a terminal; nothing in scripts."""
    if not sys.stderr.isatty():
        yield None
        return
    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label=label, file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


@ledger.command("serve")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
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
@key_option
def ledger_serve(
    db: str, host: str, port: int, checkpoint_seconds: float, checkpoint_entries: int, key: str | None
) -> None:
    """Serve the ledger to operators' clients over HTTP (POST /v1/events, proofs, checkpoints)."""
    import uvicorn

    from ledger.service import ServiceConfig, create_app

    with user_errors():
        target = open_ledger(db, key, signing=True)
        app = create_app(target, clock=now, config=ServiceConfig(checkpoint_seconds, checkpoint_entries))
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.group()
def keys() -> None:
    """Operators' signing keys."""


@keys.command("new")
@click.option("--holder", required=True, help="Who holds the key: a staff id such as op07.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="The key file to write (default: HOLDER.key).",
)
@click.option("--by", default="system", show_default=True, help="The actor of the key.registered event.")
def keys_new(holder: str, out: str | None, by: str) -> None:
    """Write a new key file (0600) and print its key.registered event for the manager to append."""
    from dialer_core.client import key_registration, new_key

    with user_errors():
        path = Path(out or f"{holder}.key")
        signer = new_key(holder, path)
        click.echo(json.dumps(key_registration(signer, by=by, now=now()), ensure_ascii=False))
        click.echo(f"key file: {path.resolve()} (mode 0600)", err=True)


@main.group()
def client() -> None:
    """The operators' client for scripts: record events to the outbox, deliver them."""


client_options = [
    click.option("--url", default="http://127.0.0.1:8730", show_default=True, help="The ledger service."),
    click.option(
        "--key",
        "key_file",
        required=True,
        type=click.Path(exists=True, dir_okay=False),
        help="The operator's key file.",
    ),
    click.option("--outbox", default="outbox.db", show_default=True, type=click.Path(dir_okay=False)),
]


def _client_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(client_options):
        fn = option(fn)
    return fn


@client.command("send")
@_client_options
@click.argument("kind")
@click.argument("data")
@click.option("--at", default=None, help="When it happened (RFC 3339; default now).")
def client_send(url: str, key_file: str, outbox: str, kind: str, data: str, at: str | None) -> None:
    """Sign and store an event of type KIND with DATA (a JSON object), then deliver the outbox."""
    from dialer_core.client import EventError, OperatorClient

    with user_errors(), OperatorClient(url, key_file, outbox) as operator:
        try:
            event_id = operator.record(kind, json.loads(data), at=datetime.fromisoformat(at) if at else None)
        except (ValueError, EventError) as exc:
            raise click.ClickException(f"not recorded: {exc}") from exc
        report = operator.deliver(deadline=time.monotonic() + 10)
        click.echo(
            json.dumps({"id": event_id, "entry": operator.entry_of(event_id), "pending": report.pending})
        )


@client.command("deliver")
@_client_options
@click.option("--wait", default=30.0, show_default=True, help="Seconds to keep retrying.")
def client_deliver(url: str, key_file: str, outbox: str, wait: float) -> None:
    """Deliver everything pending in the outbox; exit 1 if anything is left or was refused."""
    from dialer_core.client import OperatorClient

    with user_errors(), OperatorClient(url, key_file, outbox) as operator:
        report = operator.deliver(deadline=time.monotonic() + wait)
        for event_id, error in operator.rejected():
            click.echo(f"refused {event_id}: {error}", err=True)
        click.echo(json.dumps(report.__dict__))
        if report.pending or report.rejected:
            sys.exit(1)


@main.command("check")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--month", required=True, help="YYYY-MM")
@click.option(
    "--format", "fmt", type=click.Choice(["json", "table", "csv"]), default="json", show_default=True
)
@click.option(
    "--checkpoint",
    "checkpoint",
    type=click.File("r", encoding="utf-8"),
    help="Compute from this signed checkpoint (default: the latest stored one).",
)
@click.option("--profile", default=None, help="A contract profile id or .toml file (default: the ledger's).")
@click.option(
    "--results",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write findings and KPIs for Datasette (default: DB.compliance.db beside it).",
)
def check(db: str, month: str, fmt: str, checkpoint: Any, profile: str | None, results: str | None) -> None:
    """The contract's findings and KPIs for MONTH, as of a signed checkpoint."""
    from compliance import CheckError, ProfileError, check_ledger, to_json
    from compliance.results import default_results_path, to_csv, to_table, write_results

    try:
        result = check_ledger(
            db, month, checkpoint=checkpoint.read() if checkpoint else None, profile=profile
        )
        write_results(results or default_results_path(db), result)
    except (CheckError, ProfileError) as exc:
        raise click.ClickException(str(exc)) from exc
    output = {"json": to_json, "table": to_table, "csv": to_csv}[fmt](result)
    click.echo(output, nl=False)


@main.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="demo-out", show_default=True)
@click.option("--months", default="2026-09..2026-11", show_default=True, help="YYYY-MM..YYYY-MM or a list.")
@click.option("--seed", default=1, show_default=True, type=int, help="The simulator's seed.")
@click.option("--scale", default=1.0, show_default=True, type=float, help="Share of the contract's volumes.")
def demo(out: str, months: str, seed: int, scale: float) -> None:
    """Simulate months of the NHI contract into a ledger, check them, and print a summary."""
    from compliance import load_profile

    from .demo import parse_months, run_demo

    chosen = parse_months(months)
    days = len(chosen) * load_profile("nagaoka-nhi-2026").campaign_days
    with user_errors(), click.progressbar(length=days, label="simulating", file=sys.stderr) as bar:

        def progress(label: str) -> None:  # called once per calling day
            bar.label = label
            bar.update(1)

        summary: list[str] = []
        try:
            run_demo(
                Path(out),
                now=now(),
                echo=summary.append,
                months=chosen,
                seed=seed,
                scale=scale,
                progress=progress,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    for line in summary:  # after the progress bar has closed its line
        click.echo(line)


@main.group()
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


if __name__ == "__main__":  # pragma: no cover
    main()


@main.command("serve")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback by default; put TLS in front.")
@click.option("--port", default=8001, show_default=True, type=int)
@click.option(
    "--session-hours", default=8.0, show_default=True, type=float, help="Sign-ins expire after this long."
)
def serve(db: str, host: str, port: int, session_hours: float) -> None:
    """Datasette for city auditors on the ledger DB, its compliance results and its access log."""
    import uvicorn

    from datasette_plugins import make_datasette
    from datasette_plugins.auditors import AuditorError
    from datasette_plugins.site import SiteError, site_of

    with user_errors():
        try:
            datasette = make_datasette(Path(db), session_seconds=int(session_hours * 3600))
        except (SiteError, AuditorError) as exc:
            raise click.ClickException(str(exc)) from exc
    site = site_of(datasette)
    click.echo(
        f"監査画面 auditors' Datasette: http://{host}:{port}/  (閲覧記録 access log: {site.access_path})"
    )
    try:
        uvicorn.run(datasette.app(), host=host, port=port, log_level="warning")
    finally:
        site.log.close()


@main.group()
def auditor() -> None:
    """City auditors who may sign in to `kansa serve`."""


ledger_for_auditors = click.option(
    "--ledger",
    "db",
    required=True,
    envvar="KANSA_LEDGER",
    type=click.Path(exists=True, dir_okay=False),
    help="The ledger whose Datasette they sign in to (the auditors file is DB's stem + .auditors.json).",
)


@auditor.command("add")
@click.argument("name")
@ledger_for_auditors
@click.option("--sql", is_flag=True, help="Also allow ad-hoc SQL (read-only).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def auditor_add(name: str, db: str, sql: bool, password_stdin: bool) -> None:
    """Add (or reset) auditor NAME; only a PBKDF2 hash of the password is stored."""
    from datasette_plugins.auditors import AuditorError, add_auditor, default_auditors_path

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("パスワード password", hide_input=True, confirmation_prompt=True)
    path = default_auditors_path(db)
    try:
        added = add_auditor(path, name, password, roles=("auditor", "sql") if sql else ("auditor",))
    except AuditorError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"auditor {added.name} ({', '.join(added.roles)}) saved in {path}; restart `kansa serve` to apply"
    )


@auditor.command("remove")
@click.argument("name")
@ledger_for_auditors
def auditor_remove(name: str, db: str) -> None:
    """Remove auditor NAME (takes effect when `kansa serve` restarts)."""
    from datasette_plugins.auditors import AuditorError, default_auditors_path, remove_auditor

    try:
        remove_auditor(default_auditors_path(db), name)
    except AuditorError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"auditor {name} removed")


@auditor.command("list")
@ledger_for_auditors
def auditor_list(db: str) -> None:
    """The auditors and their roles."""
    from datasette_plugins.auditors import AuditorError, default_auditors_path, read_auditors

    try:
        auditors = read_auditors(default_auditors_path(db))
    except AuditorError as exc:
        raise click.ClickException(str(exc)) from exc
    for a in sorted(auditors.values(), key=lambda a: a.name):
        click.echo(f"{a.name}\t{','.join(a.roles)}")


@main.command("report")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--month", required=True, help="YYYY-MM")
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False), help="The HTML report to write."
)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A kept signed checkpoint note (default: the latest stored).",
)
@click.option(
    "--deliverables",
    "deliverables_dir",
    type=click.Path(file_okay=False),
    help="Also write the contract's deliverables here (Excel and CSV with BOM).",
)
@click.option(
    "--pdf", "pdf", type=click.Path(dir_okay=False), help="Also print the report to PDF (chromium)."
)
@click.option(
    "--store",
    "store_path",
    type=click.Path(exists=True, dir_okay=False),
    help="The encrypted data store: adds the city's case numbers to the deliverables (each read is logged).",
)
@click.option("--by", help="Who makes the report (a staff id): needed with --store and --submit.")
@click.option("--submit", is_flag=True, help="Record each deliverable file's SHA-256 as report.submitted.")
@click.option("--to", default="city", show_default=True, help="Recipient named in report.submitted.")
@key_option
def report(
    db: str,
    month: str,
    out: str,
    checkpoint_file: str | None,
    deliverables_dir: str | None,
    pdf: str | None,
    store_path: str | None,
    by: str | None,
    submit: bool,
    to: str,
    key: str | None,
) -> None:
    """The monthly review notebook as one offline HTML file, and the city's deliverables."""
    from compliance import CheckError
    from compliance.deliverables import all_deliverables

    from .report import (
        ReportError,
        fill_case_numbers,
        html_to_pdf,
        render_report,
        write_deliverables,
    )

    if (store_path or submit) and not by:
        raise click.UsageError("--store and --submit need --by (who makes the report)")
    if submit and not deliverables_dir:
        raise click.UsageError("--submit needs --deliverables DIR")
    note = Path(checkpoint_file).read_text("utf-8") if checkpoint_file else None
    with user_errors():
        try:
            click.echo(f"{month}: 台帳を検証して月次レビューを作成中 verifying and reviewing …", err=True)
            rendered = render_report(db, month, checkpoint=note)
        except (CheckError, ReportError) as exc:
            raise click.ClickException(str(exc)) from exc
        Path(out).write_text(rendered.html, encoding="utf-8")
        cp = rendered.review.checkpoint
        verified = rendered.review.verification
        click.echo(
            f"report: {out}  (checkpoint {cp['origin']} size {cp['size']},"
            f" notebook sha256 {rendered.notebook_sha256[:16]}…)"
        )
        if verified is not None and not verified.ok:
            raise click.ClickException(
                f"the ledger does NOT verify: {verified.summary()} (the report says so too)"
            )
        if pdf:
            try:
                html_to_pdf(Path(out), Path(pdf))
            except ReportError as exc:
                raise click.ClickException(f"PDF: {exc}") from exc
            click.echo(f"pdf: {pdf}")
        if not deliverables_dir:
            return
        deliverables = all_deliverables(rendered.review)
        target = open_ledger(db, key, signing=True) if (store_path or submit) else None
        if store_path:
            from dialer_core.datastore import DataStore, DataStoreError

            assert target is not None and by is not None

            def log_view(data: dict[str, Any]) -> None:
                moment = now()
                target.append([Submission(envelope("access.viewed", by, data, moment))], now=moment)

            with DataStore(store_path) as store:

                def lookup(ref: str) -> str:
                    try:
                        return store.read_case(ref, person=by, purpose="report", log=log_view).case_number
                    except DataStoreError:
                        return "（削除済み destroyed）"

                fill_case_numbers(deliverables, lookup)
        written = write_deliverables(deliverables, Path(deliverables_dir))
        for f in written:
            click.echo(f"  {f.path}  sha256 {f.sha256}")
        if submit:
            assert target is not None and by is not None
            moment = now()
            events = [
                envelope(
                    "report.submitted",
                    by,
                    {"kind": f.kind, "covers": f.covers, "sha256": f.sha256, "to": to},
                    moment,
                )
                for f in written
            ]
            appended = target.append([Submission(e) for e in events], now=moment)
            click.echo(f"report.submitted: entries {appended[0].index}..{appended[-1].index}")
