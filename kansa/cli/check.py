"""`kansa check`: the contract's rules and KPIs over a ledger."""

from __future__ import annotations

from typing import Any

import click


@click.command("check")
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
