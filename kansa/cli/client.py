"""`kansa client`: the operators' client for scripts (outbox, delivery)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from ._common import user_errors


@click.group()
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
        _warn_salvage(operator)
        try:
            event_id = operator.record(kind, json.loads(data), at=datetime.fromisoformat(at) if at else None)
        except (ValueError, RecursionError, EventError) as exc:  # RecursionError: JSON nested too deeply
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
        _warn_salvage(operator)
        report = operator.deliver(deadline=time.monotonic() + wait)
        for event_id, error in operator.rejected():
            click.echo(f"refused {event_id}: {error}", err=True)
        click.echo(json.dumps(report.__dict__))
        salvage = operator.salvage
        if report.pending or report.rejected or (salvage and (salvage.unreadable or salvage.after)):
            sys.exit(1)


@client.command("status")
@_client_options
def client_status(url: str, key_file: str, outbox: str) -> None:
    """Count the outbox's pending, delivered and rejected events, and ask the service about each
    delivered or pending one: exit 0 when all agree, 1 when a row disagrees with the ledger,
    2 when the service could not be asked."""
    import httpx

    from dialer_core.client import OperatorClient

    from ._common import CouldNotCheck

    with user_errors(), OperatorClient(url, key_file, outbox) as operator:
        _warn_salvage(operator)
        try:
            status = operator.status()
        except httpx.HTTPError as exc:
            raise CouldNotCheck(f"the ledger service at {url} could not be asked: {exc}") from exc
        click.echo(json.dumps(status.__dict__, ensure_ascii=False))
        for row in status.disagree:
            click.echo(f"disagrees: {row['id']} is {row['state']} here but {row['problem']}", err=True)
        if status.disagree:
            sys.exit(1)


def _warn_salvage(operator: Any) -> None:
    if operator.salvage is not None:
        click.echo(f"warning: {operator.salvage.describe()}", err=True)
