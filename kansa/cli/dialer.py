"""`kansa dialer run CONFIG.toml`: the seats, the progressive loop and the seats API."""

from __future__ import annotations

import signal
import threading
import time

import click

from ._common import clock_from, start_at_option, user_errors


@click.group()
def dialer() -> None:
    """The dialling core as a service: seats, calls, callbacks (docs/dialer.md)."""


@dialer.command("run")
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.option("--for-seconds", type=float, default=None, help="Stop after this long (default: until Ctrl-C).")
@start_at_option
def dialer_run(config: str, for_seconds: float | None, start_at: str | None) -> None:
    """Run the campaign of CONFIG: follow the ledger, dial for ready seats, serve the seats API."""
    from dialer_core.run import ConfigError, Run, load_config

    clock = clock_from(start_at)
    try:
        cfg = load_config(config)
    except (ConfigError, ValueError) as exc:  # ValueError: a file that is not UTF-8 text
        raise click.ClickException(str(exc)) from exc
    with user_errors():
        run = Run(cfg, clock=clock).start()
    click.echo(
        f"kansa dialer: {len(cfg.seats)} seats, {len(run.plan.cases)} cases of {cfg.month}; "
        f"seats API on {run.api.url if run.api else '-'}",
        err=True,
    )
    # A service manager stops it with SIGTERM: the same clean stop as Ctrl-C (calls ended and
    # recorded, the outbox's last delivery tried), not the interpreter's abrupt exit.
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    try:
        end = time.monotonic() + for_seconds if for_seconds else None
        while not stopping.is_set() and (end is None or time.monotonic() < end):
            stopping.wait(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        run.stop()
        calls = sum(r.calls for r in run.runners)
        click.echo(f"kansa dialer: {calls} calls, {len(run.plan.refused)} refused by the guard", err=True)


@dialer.command("sms")
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--receipts-for", type=float, default=30.0, show_default=True, help="Seconds to wait for receipts."
)
@start_at_option
def dialer_sms(config: str, receipts_for: float, start_at: str | None) -> None:
    """Send the city's SMS list of the month at its time over SMPP (lookup, block or send, receipts)."""
    from dialer_core.run import ConfigError, load_config, run_sms
    from dialer_core.smpp import SmppError

    clock = clock_from(start_at)
    try:
        cfg = load_config(config)
        with user_errors():
            report = run_sms(cfg, clock, receipts_for=receipts_for)
    except (ConfigError, SmppError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"SMS: {report.designated} designated, {report.sent} sent, {report.unconfirmed} unconfirmed, "
        f"{report.blocked} blocked, {report.already} already done earlier; {report.results} results"
    )
