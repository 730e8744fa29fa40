"""`kansa console`: the operators' console and the manager's and city's desks."""

from __future__ import annotations

import click

from ._common import clock_from, start_at_option, user_errors


@click.group()
def console() -> None:
    """The operators' console and the desks of the manager and the city (docs/console.md)."""


@console.command("serve")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default=None, help="Overrides the configuration's host.")
@click.option("--port", default=None, type=int, help="Overrides the configuration's port.")
@start_at_option
def console_serve(config: str, host: str | None, port: int | None, start_at: str | None) -> None:
    """Serve the console described by CONFIG (TOML) to the center's browsers.

    With --start-at (a rehearsal or a training day, with `kansa dialer run --start-at` and the
    simulator) every page and every event the console writes follows that clock."""
    import uvicorn

    from console import ConfigError, Console, ConsoleConfig, create_app
    from ledger import KeyFileError

    with user_errors():
        try:
            settings = ConsoleConfig.load(config)
            app = create_app(Console(settings, clock=clock_from(start_at)))
        except (ConfigError, KeyFileError) as exc:
            raise click.ClickException(str(exc)) from exc
    bind_host, bind_port = host or settings.host, port or settings.port
    click.echo(f"コンソール console: http://{bind_host}:{bind_port}/")
    uvicorn.run(app, host=bind_host, port=bind_port, log_level="warning")
