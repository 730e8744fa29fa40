"""`kansa keys`: operators' signing keys."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._common import at_option, moment_of, user_errors


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
@click.option(
    "--passphrase",
    is_flag=True,
    help="Seal the key under a passphrase (asked twice) for the console's sign-in: HOLDER.sealed.",
)
@at_option("the key was made (its key.registered)")
def keys_new(holder: str, out: str | None, by: str, passphrase: bool, at: str | None) -> None:
    """Write a new key file (0600) and print its key.registered event for the manager to append.

    With --passphrase the key is sealed (Argon2id + SecretBox) and never written in clear; put
    the file in the console's keys folder and the manager registers it from their desk."""
    from dialer_core.client import key_registration, new_key

    moment = moment_of(at)
    with user_errors():
        if passphrase:
            from console.keystore import SealedKeyError, write_sealed
            from ledger import Signer

            secret = click.prompt("passphrase", hide_input=True, confirmation_prompt=True)
            path = Path(out or f"{holder}.sealed")
            path.parent.mkdir(parents=True, exist_ok=True)  # `--out keys/op07.sealed` in a new folder
            signer = Signer.generate(holder)
            try:
                write_sealed(path, signer, secret)
            except SealedKeyError as exc:
                raise click.ClickException(str(exc)) from exc
        else:
            path = Path(out or f"{holder}.key")
            path.parent.mkdir(parents=True, exist_ok=True)
            signer = new_key(holder, path)
        click.echo(json.dumps(key_registration(signer, by=by, now=moment), ensure_ascii=False))
        click.echo(f"key file: {path.resolve()} (mode 0600)", err=True)
