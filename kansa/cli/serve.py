"""`kansa serve`: the auditors' Datasette."""

from __future__ import annotations

from pathlib import Path

import click

from ledger.policy import load_policy

from ._common import user_errors


@click.command("serve")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback by default; put TLS in front.")
@click.option("--port", default=8001, show_default=True, type=int)
@click.option(
    "--session-hours", default=8.0, show_default=True, type=float, help="Sign-ins expire after this long."
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A C2SP tlog-policy file: the status page shows the cosignatures and whether it is met.",
)
def serve(db: str, host: str, port: int, session_hours: float, policy_file: str | None) -> None:
    """Datasette for city auditors on the ledger DB, its compliance results and its access log."""
    import uvicorn

    from datasette_plugins import make_datasette
    from datasette_plugins.auditors import AuditorError
    from datasette_plugins.site import SiteError, site_of

    with user_errors():
        policy = load_policy(policy_file) if policy_file else None
        try:
            datasette = make_datasette(Path(db), session_seconds=int(session_hours * 3600), policy=policy)
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
