"""The `kansa` command: thin click wrappers, one module per command group; each
subcommand calls one public function (docs/cli.md)."""

from __future__ import annotations

import click

from .auditor import auditor
from .campaign import campaign
from .check import check
from .client import client
from .console import console
from .custody import custody
from .demo import demo
from .dialer import dialer
from .keys import keys
from .ledger import ledger
from .report import report
from .serve import serve
from .staff import staff
from .witness import witness


@click.group()
@click.version_option(package_name="kansa")
def main() -> None:
    """Kansa (監査): a verifiable ledger and contract checks for payment-reminder call centers."""


for command in (
    ledger,
    keys,
    client,
    check,
    demo,
    custody,
    serve,
    auditor,
    report,
    witness,
    console,
    dialer,
    staff,
    campaign,
):
    main.add_command(command)

__all__ = ["main"]
