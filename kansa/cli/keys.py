"""`kansa keys`: operators' signing keys."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._common import now, user_errors


@click.group()
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
