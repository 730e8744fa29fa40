"""`kansa auditor`: who may sign in to `kansa serve`."""

from __future__ import annotations

import sys

import click


@click.group()
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
